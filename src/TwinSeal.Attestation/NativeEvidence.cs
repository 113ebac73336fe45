using System.Formats.Asn1;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Attestation.AwsNitro;
using TwinSeal.Attestation.AzureMaa;
using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Attestation.Sim;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation;

/// <summary>What goes into an evidence envelope besides the platform's native artefact.</summary>
public sealed record NativeEvidenceInputs
{
    /// <summary>
    /// DER certificates to carry with an <c>amd-sev-snp</c> report: the VCEK or VLEK, the ASK or ASVK and optionally
    /// the ARK, recognised by their subject names (<c>SEV-VCEK</c>, <c>SEV-VLEK</c>, <c>SEV-{product}</c>,
    /// <c>SEV-VLEK-{product}</c>, <c>ARK-{product}</c>). Other platforms take none.
    /// </summary>
    public IReadOnlyList<byte[]> Certificates { get; init; } = [];

    /// <summary>Collateral JSON to carry with an <c>intel-tdx</c> / <c>intel-sgx</c> quote (see <see cref="IntelDcapVerifier"/>). Other platforms take none.</summary>
    public string? CollateralJson { get; init; }

    /// <summary>
    /// Products an <c>amd-sev-snp</c> report may come from when neither the report (version 2 has no CPUID) nor the
    /// certificates say which; used only when it names exactly one (e.g. the products of the pinned ARKs).
    /// </summary>
    public IReadOnlyCollection<SevSnpProduct> SevSnpProductHints { get; init; } = [];
}

/// <summary>
/// Turns a platform's native attestation artefact (what the hardware or its tooling hands out) into the
/// <see cref="Evidence"/> envelope that TwinSeal's verifiers take, so people can verify evidence from files:
/// <list type="table">
/// <item><term><c>sim</c></term><description>the COSE_Sign1 document, as is.</description></item>
/// <item><term><c>aws-nitro</c></term><description>the COSE_Sign1 attestation document from the NSM, as is.</description></item>
/// <item><term><c>amd-sev-snp</c></term><description>the raw 1184-byte report, wrapped with the given certificates into a <see cref="SevSnpEvidence"/> envelope.</description></item>
/// <item><term><c>intel-tdx</c>, <c>intel-sgx</c></term><description>the raw DCAP quote, wrapped with optional collateral by <see cref="IntelDcapEvidence.Encode"/>.</description></item>
/// <item><term><c>azure-maa</c></term><description>the JWT text; surrounding white space (a trailing newline) is removed.</description></item>
/// </list>
/// Wrapping checks nothing cryptographic; the verifier does. Usage problems (unknown platform, inputs the platform
/// does not take, certificates that are not AMD's) throw <see cref="ArgumentException"/>; a malformed SEV-SNP report
/// throws <see cref="EvidenceException"/>, as the verifier would.
/// </summary>
public static class NativeEvidence
{
    /// <summary>The platform tags <see cref="Wrap"/> knows, in the order they are listed to people.</summary>
    public static IReadOnlyList<string> Platforms { get; } =
    [
        SimClaims.PlatformTag, AwsNitroVerifier.PlatformTag, SevSnpEvidence.PlatformTag,
        IntelDcapEvidence.TdxPlatform, IntelDcapEvidence.SgxPlatform, AzureMaaVerifier.PlatformTag,
    ];

    /// <summary>Largest native artefact, certificate or collateral file read by <see cref="ReadFile"/> callers (1 MiB).</summary>
    public const int MaxFileBytes = 1024 * 1024;

    private const string ProductNameOid = "1.3.6.1.4.1.3704.1.2";

    /// <summary>Wraps <paramref name="native"/> into the evidence envelope of <paramref name="platform"/>.</summary>
    /// <exception cref="ArgumentException">Unknown platform, or inputs that platform does not take, or unusable certificates.</exception>
    /// <exception cref="EvidenceException">The SEV-SNP report is malformed.</exception>
    public static Evidence Wrap(string platform, byte[] native, NativeEvidenceInputs? inputs = null)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentNullException.ThrowIfNull(native);
        inputs ??= new NativeEvidenceInputs();
        if (!Platforms.Contains(platform, StringComparer.Ordinal))
            throw new ArgumentException($"unknown platform '{platform}'; use one of {string.Join(", ", Platforms)}");
        var takesCertificates = platform == SevSnpEvidence.PlatformTag;
        var takesCollateral = platform is IntelDcapEvidence.TdxPlatform or IntelDcapEvidence.SgxPlatform;
        if (!takesCertificates && inputs.Certificates.Count > 0)
            throw new ArgumentException($"{platform} evidence carries no separate certificates (only amd-sev-snp does)");
        if (!takesCollateral && inputs.CollateralJson is not null)
            throw new ArgumentException($"{platform} evidence carries no collateral (only intel-tdx and intel-sgx do)");

        return platform switch
        {
            SevSnpEvidence.PlatformTag => SevSnpEnvelope(native, inputs.Certificates, inputs.SevSnpProductHints).ToEvidence(),
            IntelDcapEvidence.TdxPlatform or IntelDcapEvidence.SgxPlatform => new Evidence(platform, IntelDcapEvidence.Encode(native, inputs.CollateralJson)),
            AzureMaaVerifier.PlatformTag => new Evidence(platform, TrimAsciiWhiteSpace(native)),
            _ => new Evidence(platform, native),
        };
    }

    /// <summary>
    /// Builds the <c>amd-sev-snp</c> envelope for a raw report: sorts the certificates into VCEK/VLEK, ASK/ASVK and ARK
    /// by subject name, and takes the product from the report's CPUID (version 3 and later), else from the
    /// certificates, else from <paramref name="productHints"/> when it names exactly one.
    /// </summary>
    /// <exception cref="ArgumentException">A certificate is not an AMD SEV certificate, two have the same role, or they name different products, or the product cannot be told.</exception>
    /// <exception cref="EvidenceException">The report is malformed.</exception>
    public static SevSnpEvidence SevSnpEnvelope(byte[] report, IReadOnlyList<byte[]> certificates, IReadOnlyCollection<SevSnpProduct>? productHints = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(certificates);
        var parsed = SevSnpReport.Parse(report);
        byte[]? vcek = null, vlek = null, ask = null, asvk = null, ark = null;
        var named = new HashSet<SevSnpProduct>();
        foreach (var der in certificates)
        {
            var (role, product) = ClassifyAmdCertificate(der);
            ref var slot = ref vcek;
            switch (role)
            {
                case "VCEK": slot = ref vcek; break;
                case "VLEK": slot = ref vlek; break;
                case "ASK": slot = ref ask; break;
                case "ASVK": slot = ref asvk; break;
                default: slot = ref ark; break;
            }
            if (slot is not null)
            {
                if (slot.AsSpan().SequenceEqual(der))
                    continue;
                throw new ArgumentException($"two different {role} certificates were given");
            }
            slot = der;
            if (product is { } p)
                named.Add(p);
        }
        if (named.Count > 1)
            throw new ArgumentException($"the certificates are for different products ({string.Join(", ", named.Order())})");

        SevSnpProduct chosen;
        if (parsed.CpuidProduct(out _) is { } fromCpuid)
            chosen = fromCpuid;
        else if (named.Count == 1)
            chosen = named.Single();
        else if (productHints is { Count: > 0 } && productHints.Distinct().Count() == 1)
            chosen = productHints.First();
        else
            throw new ArgumentException("cannot tell whether the report is from a Milan, Genoa or Turin processor: the report (version "
                + parsed.Version.ToString(CultureInfo.InvariantCulture) + ") has no CPUID; give the ASK or ARK certificate, or pin exactly one AMD root");
        return new SevSnpEvidence(report, chosen, vcek, vlek, ask, asvk, ark);
    }

    /// <summary>The role (<c>VCEK</c>, <c>VLEK</c>, <c>ASK</c>, <c>ASVK</c>, <c>ARK</c>) and product of an AMD SEV certificate, from its subject name (and, for a VCEK, its product-name extension).</summary>
    /// <exception cref="ArgumentException">The bytes are not a certificate, or not one of AMD's SEV hierarchy.</exception>
    public static (string Role, SevSnpProduct? Product) ClassifyAmdCertificate(byte[] der)
    {
        ArgumentNullException.ThrowIfNull(der);
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadCertificate(der);
        }
        catch (CryptographicException e)
        {
            throw new ArgumentException($"a certificate given for the SEV-SNP report cannot be read: {e.Message}");
        }
        using (certificate)
        {
            var cn = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false) ?? "";
            switch (cn)
            {
                case "SEV-VCEK":
                    return ("VCEK", VcekProduct(certificate));
                case "SEV-VLEK":
                    return ("VLEK", VcekProduct(certificate));
            }
            if (cn.StartsWith("SEV-VLEK-", StringComparison.Ordinal) && TryProduct(cn["SEV-VLEK-".Length..], out var asvkProduct))
                return ("ASVK", asvkProduct);
            if (cn.StartsWith("SEV-", StringComparison.Ordinal) && TryProduct(cn["SEV-".Length..], out var askProduct))
                return ("ASK", askProduct);
            if (cn.StartsWith("ARK-", StringComparison.Ordinal) && TryProduct(cn["ARK-".Length..], out var arkProduct))
                return ("ARK", arkProduct);
            throw new ArgumentException($"certificate '{certificate.Subject}' is not an AMD SEV certificate (SEV-VCEK, SEV-VLEK, SEV-<product>, SEV-VLEK-<product> or ARK-<product>)");
        }
    }

    /// <summary>The products of the self-signed <c>ARK-{product}</c> certificates in PEM files (ASK+ARK bundles are fine).</summary>
    /// <exception cref="ArgumentException">A file cannot be read or holds no PEM certificate.</exception>
    public static IReadOnlyCollection<SevSnpProduct> ArkProducts(IEnumerable<string> pemFiles)
    {
        ArgumentNullException.ThrowIfNull(pemFiles);
        var products = new HashSet<SevSnpProduct>();
        foreach (var path in pemFiles)
        {
            foreach (var der in LoadCertificateFile(path))
            {
                using var c = X509CertificateLoader.LoadCertificate(der);
                var cn = c.GetNameInfo(X509NameType.SimpleName, forIssuer: false) ?? "";
                if (cn.StartsWith("ARK-", StringComparison.Ordinal) && TryProduct(cn[4..], out var p))
                    products.Add(p);
            }
        }
        return products;
    }

    /// <summary>Reads every certificate of a file: PEM (one or more <c>CERTIFICATE</c> blocks) or a single DER certificate.</summary>
    /// <exception cref="ArgumentException">The file cannot be read, is too large, or holds no certificate.</exception>
    public static IReadOnlyList<byte[]> LoadCertificateFile(string path)
    {
        var bytes = ReadFile(path, "certificate file");
        var result = new List<byte[]>();
        if (LooksLikePem(bytes))
        {
            var text = Encoding.ASCII.GetString(bytes).AsSpan();
            while (PemEncoding.TryFind(text, out var fields))
            {
                if (text[fields.Label].SequenceEqual("CERTIFICATE"))
                {
                    try
                    {
                        result.Add(Convert.FromBase64String(text[fields.Base64Data].ToString()));
                    }
                    catch (FormatException)
                    {
                        throw new ArgumentException($"certificate file '{path}' has a PEM block that is not base64");
                    }
                }
                text = text[fields.Location.End..];
            }
        }
        else
        {
            result.Add(bytes);
        }
        if (result.Count == 0)
            throw new ArgumentException($"certificate file '{path}' holds no PEM certificate");
        foreach (var der in result)
        {
            try
            {
                using var _ = X509CertificateLoader.LoadCertificate(der);
            }
            catch (CryptographicException e)
            {
                throw new ArgumentException($"certificate file '{path}' does not hold a readable X.509 certificate: {e.Message}");
            }
        }
        return result;
    }

    /// <summary>Reads a file of at most <see cref="MaxFileBytes"/> bytes.</summary>
    /// <exception cref="ArgumentException">It does not exist, cannot be read, or is larger.</exception>
    public static byte[] ReadFile(string path, string what)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
                throw new ArgumentException($"{what} '{path}' does not exist");
            if (info.Length > MaxFileBytes)
                throw new ArgumentException($"{what} '{path}' is {info.Length} bytes, the limit is {MaxFileBytes}");
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new ArgumentException($"{what} '{path}' cannot be read: {e.Message}");
        }
    }

    /// <summary>The claims as (name, value) rows, in the order people read them: platform, measurement, report data (hex), debug, issued-at, then every platform test by name.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Describe(NormalisedClaims claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        var rows = new List<KeyValuePair<string, string>>
        {
            new("platform", claims.Simulated ? $"{claims.Platform} (SIMULATED)" : claims.Platform),
            new("measurement", claims.Measurement),
            new("report data", claims.ReportData.Length == 0 ? "(none)" : Convert.ToHexStringLower(claims.ReportData)),
            new("debug", claims.Debug ? "true" : "false"),
            new("issued at", claims.IssuedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture)),
        };
        foreach (var (name, value) in claims.PlatformTests.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            rows.Add(new(name, value));
        return rows;
    }

    /// <summary>The claims as indented JSON: <c>platform</c>, <c>simulated</c>, <c>measurement</c>, <c>reportData</c> (hex), <c>debug</c>, <c>issuedAt</c> and <c>platformTests</c> (sorted by name).</summary>
    public static string ToJson(NormalisedClaims claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        var tests = new JsonObject();
        foreach (var (name, value) in claims.PlatformTests.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            tests[name] = value;
        var o = new JsonObject
        {
            ["platform"] = claims.Platform,
            ["simulated"] = claims.Simulated,
            ["measurement"] = claims.Measurement,
            ["reportData"] = Convert.ToHexStringLower(claims.ReportData),
            ["debug"] = claims.Debug,
            ["issuedAt"] = claims.IssuedAt.ToUniversalTime(),
            ["platformTests"] = tests,
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static SevSnpProduct? VcekProduct(X509Certificate2 certificate)
    {
        var ext = certificate.Extensions[ProductNameOid];
        if (ext is null)
            return null;
        try
        {
            var reader = new AsnReader(ext.RawData, AsnEncodingRules.DER);
            var name = reader.ReadCharacterString(UniversalTagNumber.IA5String);
            var dash = name.IndexOf('-', StringComparison.Ordinal);
            return TryProduct(dash < 0 ? name : name[..dash], out var p) ? p : null;
        }
        catch (AsnContentException)
        {
            return null;
        }
    }

    private static bool TryProduct(string name, out SevSnpProduct product)
    {
        (var ok, product) = name switch
        {
            "Milan" => (true, SevSnpProduct.Milan),
            "Genoa" => (true, SevSnpProduct.Genoa),
            "Turin" => (true, SevSnpProduct.Turin),
            _ => (false, default),
        };
        return ok;
    }

    private static bool LooksLikePem(byte[] bytes)
    {
        var head = Encoding.ASCII.GetString(bytes, 0, Math.Min(bytes.Length, 4096));
        return head.Contains("-----BEGIN ", StringComparison.Ordinal);
    }

    private static byte[] TrimAsciiWhiteSpace(byte[] bytes)
    {
        var span = bytes.AsSpan();
        var start = 0;
        var end = span.Length;
        while (start < end && span[start] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
            start++;
        while (end > start && span[end - 1] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
            end--;
        return span[start..end].ToArray();
    }
}
