using TwinSeal.Attestation.AwsNitro;
using TwinSeal.Protocol;

namespace TwinSeal.Enclave.Hardware;

/// <summary>
/// AWS Nitro Enclaves evidence through the Nitro Secure Module — NOT IMPLEMENTED: <see cref="Acquire"/> always throws
/// <see cref="PlatformNotSupportedException"/>. It stands where a Nitro backend plugs in, and says what is missing.
/// </summary>
/// <remarks>
/// What a real implementation needs: open <c>/dev/nsm</c> inside the enclave and issue the NSM driver's
/// <c>NSM_IOCTL_REQUEST</c> ioctl (<c>_IOWR(0x0A, 0, struct nsm_message)</c>, request and response as iovecs) carrying the
/// CBOR request <c>{"Attestation": {"user_data": report data, "nonce": null, "public_key": null}}</c>, then decode the
/// CBOR response <c>{"Attestation": {"document": bytes}}</c> (or <c>{"Error": …}</c>); the document is the COSE_Sign1
/// that <see cref="AwsNitroVerifier"/> checks, with the 64-byte report data in <c>user_data</c>. TwinSeal has no
/// P/Invoke binding for that ioctl yet (the reference implementation is aws-nitro-enclaves-nsm-api's
/// <c>nsm_get_attestation_doc</c>), and no Nitro enclave to test it in.
/// </remarks>
public sealed class NitroNsmEvidenceSource : IEvidenceSource
{
    /// <summary>The NSM device inside a Nitro enclave.</summary>
    public const string DevicePath = "/dev/nsm";

    /// <inheritdoc />
    public string Platform => AwsNitroVerifier.PlatformTag;

    /// <inheritdoc />
    public bool Simulated => false;

    /// <inheritdoc />
    /// <exception cref="PlatformNotSupportedException">Always.</exception>
    public Evidence Acquire(string appName, string measurement, IReadOnlyDictionary<string, string> platformTests, byte[] reportData)
    {
        var device = File.Exists(DevicePath) ? $"{DevicePath} exists on this machine" : $"{DevicePath} does not exist on this machine (not inside a Nitro enclave)";
        throw new PlatformNotSupportedException(
            "AWS Nitro evidence acquisition is not implemented: it needs the NSM_IOCTL_REQUEST ioctl on /dev/nsm with a CBOR "
            + "Attestation request (user_data = the 64-byte report data) and decoding of the CBOR response's COSE_Sign1 document, "
            + $"and TwinSeal has no binding for that ioctl yet; {device}. Use the simulated platform, or an SEV-SNP/TDX guest with configfs-tsm.");
    }
}
