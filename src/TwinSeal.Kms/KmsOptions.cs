using TwinSeal.Attestation;

namespace TwinSeal.Kms;

/// <summary>Configuration of one KMS instance.</summary>
public sealed class KmsOptions
{
    /// <summary>Folder holding the SQLite store, the master key file and the TLS identity.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Which TEE platforms' evidence is verified, and the trust anchors pinned for each.</summary>
    public VerifierConfiguration Verifiers { get; init; } = new();

    /// <summary>Shortcut for <see cref="VerifierConfiguration.SimulatedRoots"/> of <see cref="Verifiers"/>.</summary>
    public IReadOnlyList<string> TrustedSimulatedRoots
    {
        get => Verifiers.SimulatedRoots;
        init => Verifiers = Verifiers with { SimulatedRoots = value };
    }

    /// <summary>Whether evidence from the simulated TEE is accepted at all. Production configurations set false.</summary>
    public bool AcceptSimulatedEvidence { get; init; }

    /// <summary>How long an issued nonce stays usable.</summary>
    public TimeSpan NonceLifetime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a proposal waits for approvals.</summary>
    public TimeSpan ProposalLifetime { get; init; } = TimeSpan.FromHours(24);

    /// <summary>How long an approved key deletion waits (cancellable by any operator) before the key material is destroyed. Zero destroys at once.</summary>
    public TimeSpan DeletionWaitingPeriod { get; init; } = TimeSpan.FromHours(24);

    /// <summary>Largest request body accepted, in bytes.</summary>
    public long MaxRequestBodyBytes { get; init; } = 256 * 1024;
}
