namespace TwinSeal.Kms;

/// <summary>Configuration of one KMS instance.</summary>
public sealed class KmsOptions
{
    /// <summary>Folder holding the SQLite store, the master key file and the TLS identity.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>PEM files of simulated-platform roots whose evidence is trusted. Empty means no simulated evidence chains.</summary>
    public IReadOnlyList<string> TrustedSimulatedRoots { get; init; } = [];

    /// <summary>Whether evidence from the simulated TEE is accepted at all. Production configurations set false.</summary>
    public bool AcceptSimulatedEvidence { get; init; }

    /// <summary>PEM of the pinned AWS Nitro Enclaves root; when set, <c>aws-nitro</c> evidence is verified against it.</summary>
    public string? AwsNitroRoot { get; init; }

    /// <summary>JWKS file of the Microsoft Azure Attestation instance; with <see cref="AzureMaaIssuer"/>, enables <c>azure-maa</c> tokens.</summary>
    public string? AzureMaaJwks { get; init; }

    /// <summary>The pinned issuer of accepted Azure Attestation tokens.</summary>
    public string? AzureMaaIssuer { get; init; }

    /// <summary>How long an issued nonce stays usable.</summary>
    public TimeSpan NonceLifetime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a proposal waits for approvals.</summary>
    public TimeSpan ProposalLifetime { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Largest request body accepted, in bytes.</summary>
    public long MaxRequestBodyBytes { get; init; } = 256 * 1024;
}
