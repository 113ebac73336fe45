using System.CommandLine;
using TwinSeal.Attestation;

namespace TwinSeal.Cli;

/// <summary>The command-line options that pin each TEE platform's trust anchors (shared by <c>kms serve</c>, <c>party serve --host-kms</c> and <c>evidence verify</c>).</summary>
public sealed class TrustOptions
{
    /// <summary>Simulated-platform roots.</summary>
    public Option<string[]> SimRoots { get; } = new("--trust-sim-root") { Description = "PEM certificate of a SIMULATED TEE platform root to trust (repeatable)." };
    /// <summary>AWS Nitro root.</summary>
    public Option<string?> NitroRoot { get; } = new("--aws-nitro-root") { Description = "PEM of the AWS Nitro Enclaves root to pin; enables aws-nitro evidence." };
    /// <summary>AMD ARKs.</summary>
    public Option<string[]> AmdArks { get; } = new("--amd-ark") { Description = "PEM holding an AMD ARK (ARK-Milan/Genoa/Turin; an ASK+ARK bundle is fine); enables amd-sev-snp evidence (repeatable)." };
    /// <summary>AMD certificate cache.</summary>
    public Option<string?> AmdCache { get; } = new("--amd-cert-cache") { Description = "Folder of cached AMD ASK/ASVK/VCEK certificates for reports sent without them." };
    /// <summary>Intel root.</summary>
    public Option<string?> IntelRoot { get; } = new("--intel-root-ca") { Description = "Intel SGX Root CA (DER or PEM) to pin; enables intel-tdx and intel-sgx evidence." };
    /// <summary>Accepted Intel TCB statuses.</summary>
    public Option<string[]> IntelTcb { get; } = new("--intel-accept-tcb") { Description = "An Intel TCB status to accept (repeatable; default UpToDate)." };
    /// <summary>Intel collateral folder.</summary>
    public Option<string?> IntelCollateral { get; } = new("--intel-collateral") { Description = "Folder of Intel collateral files (sgx-FMSPC.json, tdx-FMSPC.json)." };
    /// <summary>MAA JWKS.</summary>
    public Option<string?> MaaJwks { get; } = new("--azure-maa-jwks") { Description = "JWKS file of the Azure Attestation instance; enables azure-maa tokens (with --azure-maa-issuer)." };
    /// <summary>MAA issuer.</summary>
    public Option<string?> MaaIssuer { get; } = new("--azure-maa-issuer") { Description = "The pinned issuer of Azure Attestation tokens." };

    /// <summary>Adds every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { SimRoots, NitroRoot, AmdArks, AmdCache, IntelRoot, IntelTcb, IntelCollateral, MaaJwks, MaaIssuer }) command.Options.Add(o);
    }

    /// <summary>The configuration the options describe.</summary>
    public VerifierConfiguration Read(ParseResult pr)
    {
        static string? Full(string? p) => p is null ? null : Path.GetFullPath(p);
        var tcb = pr.GetValue(IntelTcb);
        return new VerifierConfiguration
        {
            SimulatedRoots = (pr.GetValue(SimRoots) ?? []).Select(Path.GetFullPath).ToArray(),
            AwsNitroRoot = Full(pr.GetValue(NitroRoot)),
            AmdArks = (pr.GetValue(AmdArks) ?? []).Select(Path.GetFullPath).ToArray(),
            AmdCertificateCache = Full(pr.GetValue(AmdCache)),
            IntelRootCa = Full(pr.GetValue(IntelRoot)),
            IntelAcceptedTcbStatuses = tcb is { Length: > 0 } ? tcb : ["UpToDate"],
            IntelCollateralDirectory = Full(pr.GetValue(IntelCollateral)),
            AzureMaaJwks = Full(pr.GetValue(MaaJwks)),
            AzureMaaIssuer = pr.GetValue(MaaIssuer),
        };
    }
}
