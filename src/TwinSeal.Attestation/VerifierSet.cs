using System.Security.Cryptography.X509Certificates;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Attestation.AwsNitro;
using TwinSeal.Attestation.AzureMaa;
using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Attestation.Sim;

namespace TwinSeal.Attestation;

/// <summary>Which platforms to verify and what to pin for each. Anything left unset is not accepted.</summary>
public sealed record VerifierConfiguration
{
    /// <summary>PEM files of trusted simulated-platform roots (simulated evidence is always parsed, so its refusal can be explained).</summary>
    public IReadOnlyList<string> SimulatedRoots { get; init; } = [];
    /// <summary>PEM of the pinned AWS Nitro Enclaves root.</summary>
    public string? AwsNitroRoot { get; init; }
    /// <summary>PEM files holding AMD roots (self-signed ARK-Milan/Genoa/Turin; ASK+ARK bundles are fine).</summary>
    public IReadOnlyList<string> AmdArks { get; init; } = [];
    /// <summary>Folder of cached AMD ASK/ASVK/VCEK certificates.</summary>
    public string? AmdCertificateCache { get; init; }
    /// <summary>The pinned Intel SGX Root CA (DER or PEM).</summary>
    public string? IntelRootCa { get; init; }
    /// <summary>Intel TCB statuses accepted at the verifier (default UpToDate; Revoked never).</summary>
    public IReadOnlyList<string> IntelAcceptedTcbStatuses { get; init; } = ["UpToDate"];
    /// <summary>Folder of Intel collateral files that take priority over collateral sent with the evidence.</summary>
    public string? IntelCollateralDirectory { get; init; }
    /// <summary>JWKS file of an Azure Attestation instance.</summary>
    public string? AzureMaaJwks { get; init; }
    /// <summary>Pinned issuer of Azure Attestation tokens.</summary>
    public string? AzureMaaIssuer { get; init; }
    /// <summary>
    /// Let debuggable evidence through as a claim (<see cref="NormalisedClaims.Debug"/>). The KMS sets this and leaves
    /// the decision to the policy's reference values; a standalone check keeps the default (refuse).
    /// </summary>
    public bool PassDebugThrough { get; init; }
}

/// <summary>Builds the evidence verifiers for a configuration: one per accepted platform tag.</summary>
public static class VerifierSet
{
    /// <summary>The verifiers keyed by platform tag. Throws <see cref="InvalidOperationException"/> naming a bad file or value.</summary>
    public static IReadOnlyDictionary<string, IEvidenceVerifier> Create(VerifierConfiguration config, TimeProvider clock)
    {
        var verifiers = new Dictionary<string, IEvidenceVerifier>(StringComparer.Ordinal);
        var roots = new X509Certificate2Collection();
        foreach (var path in config.SimulatedRoots) roots.Add(PemCertificate.Load(Existing(path)));
        verifiers[SimClaims.PlatformTag] = new SimEvidenceVerifier(roots, clock);
        if (config.AwsNitroRoot is { } nitroRoot)
            verifiers[AwsNitroVerifier.PlatformTag] = new AwsNitroVerifier(PemCertificate.Load(Existing(nitroRoot)), clock, new() { AllowDebug = config.PassDebugThrough });
        if (config.AmdArks.Count > 0)
        {
            var arks = new Dictionary<SevSnpProduct, X509Certificate2>();
            foreach (var path in config.AmdArks)
            {
                var all = new X509Certificate2Collection();
                all.ImportFromPemFile(Existing(path));
                foreach (var cert in all.Where(c => c.SubjectName.RawData.AsSpan().SequenceEqual(c.IssuerName.RawData)))
                {
                    var cn = cert.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
                    if (cn.StartsWith("ARK-", StringComparison.Ordinal) && Enum.TryParse<SevSnpProduct>(cn[4..], out var product))
                        arks[product] = cert;
                }
            }
            if (arks.Count == 0) throw new InvalidOperationException("None of the AMD root files holds a self-signed ARK-Milan, ARK-Genoa or ARK-Turin certificate.");
            var snp = new SevSnpVerifier(arks, clock, new() { AllowDebug = config.PassDebugThrough, CertificateCacheDirectory = config.AmdCertificateCache });
            verifiers[snp.Platform] = snp;
        }
        if (config.IntelRootCa is { } intelRoot)
        {
            var der = CertificateBytes(Existing(intelRoot));
            var accepted = config.IntelAcceptedTcbStatuses.Select(ParseTcbStatus).ToHashSet();
            var options = new IntelDcapVerifierOptions { AcceptedTcbStatuses = accepted, AllowDebug = config.PassDebugThrough, CollateralDirectory = config.IntelCollateralDirectory };
            foreach (var tee in new[] { DcapTeeType.Tdx, DcapTeeType.Sgx })
            {
                var v = new IntelDcapVerifier(tee, der, clock, options);
                verifiers[v.Platform] = v;
            }
        }
        if (config.AzureMaaJwks is { } jwks)
            verifiers[AzureMaaVerifier.PlatformTag] = new AzureMaaVerifier(File.ReadAllText(Existing(jwks)),
                config.AzureMaaIssuer ?? throw new InvalidOperationException("An Azure Attestation JWKS needs the issuer it belongs to."), clock, new() { AllowDebug = config.PassDebugThrough });
        return verifiers;
    }

    private static string Existing(string path)
        => File.Exists(path) ? path : throw new InvalidOperationException($"Trust anchor file '{path}' does not exist.");

    private static byte[] CertificateBytes(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length > 10 && bytes[0] == (byte)'-')
        {
            using var c = PemCertificate.Load(path);
            return c.RawData;
        }
        return bytes;
    }

    private static DcapTcbStatus ParseTcbStatus(string s)
        => Enum.TryParse<DcapTcbStatus>(s, ignoreCase: true, out var v) && v != DcapTcbStatus.Revoked
            ? v
            : throw new InvalidOperationException($"'{s}' is not an acceptable Intel TCB status (UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded).");
}
