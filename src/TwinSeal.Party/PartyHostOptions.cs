using TwinSeal.Kms;
using TwinSeal.Protocol;

namespace TwinSeal.Party;

/// <summary>Configuration of a party host.</summary>
public sealed class PartyHostOptions
{
    /// <summary>The party folder (identity, inbox, transcript).</summary>
    public required string PartyDirectory { get; init; }
    /// <summary>The simulated device (attestation key) of this party's isolated area.</summary>
    public required string DeviceDirectory { get; init; }
    /// <summary>The enclave image folder (executable and app bundle) the isolated area runs from and measures.</summary>
    public required string EnclaveImageDirectory { get; init; }
    /// <summary>Evidence backend of the isolated area: <c>sim</c> (default), <c>amd-sev-snp</c>, <c>intel-tdx</c>, <c>aws-nitro</c>.</summary>
    public string Tee { get; init; } = "sim";
    /// <summary>The KMS to use; null when this host runs the KMS itself (<see cref="HostedKms"/>).</summary>
    public ServiceEndpoint? Kms { get; init; }
    /// <summary>Set to run the KMS inside this party's device.</summary>
    public KmsOptions? HostedKms { get; init; }
    /// <summary>Port to listen on (0 = any free; the CLI's default is <see cref="DefaultPort"/>).</summary>
    public int Port { get; init; }
    /// <summary>The port <c>twinseal party serve</c> listens on unless told otherwise.</summary>
    public const int DefaultPort = 7443;
    /// <summary>Address to listen on: loopback by default; the machine's own address (or 0.0.0.0) when the other party is on another machine.</summary>
    public System.Net.IPAddress ListenAddress { get; init; } = System.Net.IPAddress.Loopback;
    /// <summary>The URL the other party reaches this host at, written to endpoint.json and printed (default: https://LISTEN-ADDRESS:PORT).</summary>
    public string? AdvertiseUrl { get; init; }
    /// <summary>
    /// The folder this host may read table files from on its own disk (<see cref="ImportFolder"/>); null (the default):
    /// tables are only uploaded through the control API.
    /// </summary>
    public string? ImportDirectory { get; init; }
    /// <summary>What one sender may do to the peer API: upload size, uploads per minute, uploads at once.</summary>
    public PeerUploadLimits PeerLimits { get; init; } = new();
    /// <summary>
    /// What an upload is written through on its way into the inbox file (given that file's stream); the file itself by
    /// default. The seam at which storage faults, such as a disk that fills up mid-upload, are reproduced without
    /// filling a disk; the host's handling of them (remove the partial file, answer 507) is the same either way.
    /// </summary>
    public Func<Stream, Stream> InboxWriteStream { get; init; } = file => file;
}
