using System.Formats.Asn1;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.AmdSevSnp;

/// <summary>What an <see cref="SevSnpVerifier"/> accepts beyond a genuine, correctly endorsed report.</summary>
public sealed record SevSnpVerifierOptions
{
    /// <summary>Accept guests launched with the DEBUG policy bit (the host can read their memory). Default false.</summary>
    public bool AllowDebug { get; init; }

    /// <summary>Accept guests whose policy allows a migration agent (MIGRATE_MA), which can read and move their memory. Default false.</summary>
    public bool AllowMigrationAgent { get; init; }

    /// <summary>
    /// Local directory of AMD certificates, used when the evidence envelope lacks them; never fetched from the network.
    /// Layout, per product (<c>Milan</c>, <c>Genoa</c>, <c>Turin</c>):
    /// <c>{dir}/{product}/ask.der</c> or <c>ask.pem</c>, <c>{dir}/{product}/asvk.der</c> or <c>asvk.pem</c>
    /// (a PEM file may hold the KDS <c>cert_chain</c>: its first certificate is used), and
    /// <c>{dir}/{product}/vcek-{hwid}-{tcb}.der</c> where <c>hwid</c> is the lower-case hex CHIP_ID (its first 8 bytes on Turin)
    /// and <c>tcb</c> the REPORTED_TCB as 16 lower-case hex digits of its 64-bit value. VLEKs are not looked up (no chip to key them by).
    /// </summary>
    public string? CertificateCacheDirectory { get; init; }

    /// <summary>Why these options refuse a guest with <paramref name="policy"/>, or null when they accept it.</summary>
    public string? PolicyRefusal(SevSnpGuestPolicy policy)
    {
        if (policy.Debug && !AllowDebug)
            return $"the guest policy (0x{policy.Value:x16}) allows debugging: the host can read the guest's memory";
        if (policy.MigrateMa && !AllowMigrationAgent)
            return $"the guest policy (0x{policy.Value:x16}) allows a migration agent, which can read the guest's memory";
        return null;
    }
}

/// <summary>
/// Verifies <c>amd-sev-snp</c> evidence (a <see cref="SevSnpEvidence"/> envelope) and turns it into
/// <see cref="NormalisedClaims"/>:
/// <list type="number">
/// <item>the envelope and report parse strictly (<see cref="KeyUseRefusal.EvidenceInvalid"/> otherwise);</item>
/// <item>the ARK is the one pinned for the envelope's product, self-signed and valid now; the ASK (VCEK reports) or
/// ASVK (VLEK reports) is issued by it, and the VCEK/VLEK by that; every signature RSASSA-PSS SHA-384 salt 48,
/// checked by hand; every certificate valid at the clock's time;</item>
/// <item>the report signature (ECDSA P-384 SHA-384 over bytes 0x000–0x29F) verifies with the VCEK/VLEK;</item>
/// <item>the endorsement key's product name matches the envelope's product; for a VCEK the report's CHIP_ID equals the
/// certificate's hwID, and for both the REPORTED_TCB equals the certificate's TCB (bootloader, TEE, SNP, microcode,
/// and FMC on Turin); any of these failing is <see cref="KeyUseRefusal.EvidenceUntrusted"/>;</item>
/// <item>the guest policy is acceptable to <see cref="SevSnpVerifierOptions"/>: a debug guest is refused by default with
/// <see cref="KeyUseRefusal.DebugNotAllowed"/>, a migration-agent guest with <see cref="KeyUseRefusal.EvidenceInvalid"/>
/// ("refused by configuration"). A KMS that leaves the debug decision to the reference values sets
/// <see cref="SevSnpVerifierOptions.AllowDebug"/> and reads <see cref="NormalisedClaims.Debug"/>.</item>
/// </list>
/// The report carries no time, so <see cref="NormalisedClaims.IssuedAt"/> is the verifier's clock at verification;
/// freshness comes from the KMS nonce bound in REPORT_DATA.
/// Platform tests: <c>product</c>, <c>signing_key</c> (<c>vcek</c>/<c>vlek</c>), <c>policy</c> (<c>0x</c> + 16 hex digits),
/// <c>vmpl</c>, <c>guest_svn</c>, <c>host_data</c> (hex), and the reported TCB in decimal: <c>tcb.bootloader</c>,
/// <c>tcb.tee</c>, <c>tcb.snp</c>, <c>tcb.microcode</c>, plus <c>tcb.fmc</c> on Turin.
/// </summary>
public sealed class SevSnpVerifier : IEvidenceVerifier
{
    private const string AmdOid = "1.3.6.1.4.1.3704.1.";
    private const string ProductNameOid = AmdOid + "2";
    private const string BlSplOid = AmdOid + "3.1";
    private const string TeeSplOid = AmdOid + "3.2";
    private const string SnpSplOid = AmdOid + "3.3";
    private const string UcodeSplOid = AmdOid + "3.8";
    private const string FmcSplOid = AmdOid + "3.9";
    private const string HwIdOid = AmdOid + "4";
    private const int MaxCachedCertificateBytes = 64 * 1024;

    private readonly Dictionary<SevSnpProduct, byte[]> _arks = [];
    private readonly TimeProvider _clock;
    private readonly SevSnpVerifierOptions _options;

    /// <summary>
    /// Creates a verifier trusting exactly the given AMD root keys. Each must be a self-signed RSASSA-PSS certificate
    /// whose common name is <c>ARK-{product}</c>; the verifier keeps a copy of the DER.
    /// </summary>
    /// <param name="pinnedArks">The ARK certificate of each product to accept (e.g. AMD's ARK-Milan); products not listed are refused.</param>
    /// <param name="clock">Time at which certificate validity is judged and claims are issued.</param>
    /// <param name="options">Policy options and the certificate cache; defaults refuse debug and migration-agent guests.</param>
    public SevSnpVerifier(IReadOnlyDictionary<SevSnpProduct, X509Certificate2> pinnedArks, TimeProvider clock, SevSnpVerifierOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(pinnedArks);
        ArgumentNullException.ThrowIfNull(clock);
        if (pinnedArks.Count == 0)
            throw new ArgumentException("at least one ARK must be pinned", nameof(pinnedArks));
        foreach (var (product, certificate) in pinnedArks)
        {
            ArgumentNullException.ThrowIfNull(certificate);
            try
            {
                using var ark = AmdCertificate.Parse(certificate.RawData, $"ARK-{product}");
                if (!ark.IsSelfIssued)
                    throw new ArgumentException($"the pinned {product} ARK is not self-issued", nameof(pinnedArks));
                if (!string.Equals(ark.CommonName, $"ARK-{product}", StringComparison.Ordinal))
                    throw new ArgumentException($"the certificate pinned for {product} is '{ark.CommonName}', not ARK-{product}", nameof(pinnedArks));
                ark.CheckIssuedBy(ark);
            }
            catch (EvidenceException e)
            {
                throw new ArgumentException($"the pinned {product} ARK is not usable: {e.Message}", nameof(pinnedArks), e);
            }
            _arks[product] = certificate.RawData;
        }
        _clock = clock;
        _options = options ?? new SevSnpVerifierOptions();
    }

    /// <inheritdoc />
    public string Platform => SevSnpEvidence.PlatformTag;

    /// <inheritdoc />
    public NormalisedClaims Verify(Evidence evidence)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        if (!string.Equals(evidence.Platform, Platform, StringComparison.Ordinal))
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, $"evidence is for platform '{evidence.Platform}', this verifier checks '{Platform}'");
        if (evidence.Document is null)
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, "evidence has no document");
        try
        {
            return VerifyDocument(evidence.Document);
        }
        catch (Exception e) when (e is CryptographicException or AsnContentException or FormatException or OverflowException
                                      or InvalidOperationException or ArgumentException or NotSupportedException)
        {
            // Safety net: every check above reports its own refusal; anything else that malformed input provokes is still a clean refusal.
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, $"SEV-SNP evidence cannot be processed: {e.Message}");
        }
    }

    private NormalisedClaims VerifyDocument(byte[] document)
    {
        var envelope = SevSnpEvidence.Decode(document);
        var product = envelope.Product;
        var report = SevSnpReport.Parse(envelope.Report);

        var cpuidProduct = report.CpuidProduct(out var knownCpu);
        if (!knownCpu)
            throw Invalid($"the report's CPUID (family 0x{report.CpuidFamily:x2}, model 0x{report.CpuidModel:x2}) is not a Milan, Genoa or Turin processor");
        if (cpuidProduct is { } fromCpuid && fromCpuid != product)
            throw Invalid($"the envelope says {product}, the report's CPUID says {fromCpuid}");

        var signingKey = report.SigningKey;
        if (signingKey == SevSnpSigningKey.None)
            throw Untrusted("the report is not signed (SIGNING_KEY is none)");
        if (signingKey == SevSnpSigningKey.Vcek && report.MaskChipKey)
            throw Untrusted("the report says the VCEK is masked (MASK_CHIP_KEY), so it carries no VCEK signature");
        var vcek = signingKey == SevSnpSigningKey.Vcek;
        if (vcek ? envelope.Vlek is not null || envelope.Asvk is not null : envelope.Vcek is not null || envelope.Ask is not null)
            throw Invalid($"the report is signed by a {(vcek ? "VCEK" : "VLEK")}, the envelope carries {(vcek ? "VLEK" : "VCEK")} certificates");

        var now = _clock.GetUtcNow();
        if (!_arks.TryGetValue(product, out var pinned))
            throw Untrusted($"no ARK is pinned for {product}");
        if (envelope.Ark is not null && !envelope.Ark.AsSpan().SequenceEqual(pinned))
            throw Untrusted($"the envelope's ARK is not the pinned {product} ARK");

        var intermediateRole = vcek ? "ASK" : "ASVK";
        var leafRole = vcek ? "VCEK" : "VLEK";
        var intermediateDer = (vcek ? envelope.Ask : envelope.Asvk) ?? Cached(product, vcek ? "ask" : "asvk", intermediateRole);
        var leafDer = (vcek ? envelope.Vcek : envelope.Vlek)
            ?? (vcek ? CachedVcek(product, report) : throw Untrusted("a VLEK-signed report needs the VLEK certificate in the envelope"));

        using var ark = AmdCertificate.Parse(pinned, "ARK");
        using var intermediate = AmdCertificate.Parse(intermediateDer, intermediateRole);
        using var leaf = AmdCertificate.Parse(leafDer, leafRole);
        ark.CheckIssuedBy(ark);
        ark.CheckValidAt(now);
        intermediate.CheckIssuedBy(ark);
        intermediate.CheckValidAt(now);
        leaf.CheckIssuedBy(intermediate);
        leaf.CheckValidAt(now);
        var expectedCn = vcek ? "SEV-VCEK" : "SEV-VLEK";
        if (!string.Equals(leaf.CommonName, expectedCn, StringComparison.Ordinal))
            throw Untrusted($"the {leafRole} certificate's subject is '{leaf.CommonName}', not {expectedCn}");

        using (var key = leaf.P384PublicKey())
        {
            if (!key.VerifyData(report.SignedBytes.Span, report.SignatureP1363(), HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
                throw Untrusted($"the report signature does not verify with the {leafRole}");
        }

        var reportedTcb = report.ReportedTcbFor(product);
        try
        {
            CheckProductName(leaf, product);
            if (vcek)
                CheckChipId(leaf, report.ChipId.Span, product);
            else if (leaf.Extension(HwIdOid) is not null)
                throw Untrusted("the VLEK certificate carries a hwID, as only a VCEK does");
            if (SevSnpTcb.Mismatch(reportedTcb, EndorsedTcb(leaf, product)) is { } tcbProblem)
                throw Untrusted(tcbProblem);
        }
        catch (AsnContentException e)
        {
            throw Untrusted($"the {leafRole} certificate has a malformed AMD extension: {e.Message}");
        }

        if (_options.PolicyRefusal(report.Policy) is { } refusal)
        {
            var code = report.Policy.Debug && !_options.AllowDebug ? KeyUseRefusal.DebugNotAllowed : KeyUseRefusal.EvidenceInvalid;
            throw new EvidenceException(code, $"{refusal}; refused by configuration");
        }

        return new NormalisedClaims(
            Platform: SevSnpEvidence.PlatformTag,
            Simulated: false,
            Measurement: Convert.ToHexStringLower(report.Measurement.Span),
            PlatformTests: PlatformTests(report, product, reportedTcb),
            ReportData: report.ReportData.ToArray(),
            IssuedAt: now,
            Debug: report.Policy.Debug);
    }

    private static Dictionary<string, string> PlatformTests(SevSnpReport report, SevSnpProduct product, SevSnpTcb tcb)
    {
        var tests = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["product"] = product.ToString(),
            ["signing_key"] = report.SigningKey == SevSnpSigningKey.Vcek ? "vcek" : "vlek",
            ["policy"] = "0x" + report.Policy.Value.ToString("x16", CultureInfo.InvariantCulture),
            ["vmpl"] = report.Vmpl.ToString(CultureInfo.InvariantCulture),
            ["guest_svn"] = report.GuestSvn.ToString(CultureInfo.InvariantCulture),
            ["host_data"] = Convert.ToHexStringLower(report.HostData.Span),
            ["tcb.bootloader"] = tcb.Bootloader.ToString(CultureInfo.InvariantCulture),
            ["tcb.tee"] = tcb.Tee.ToString(CultureInfo.InvariantCulture),
            ["tcb.snp"] = tcb.Snp.ToString(CultureInfo.InvariantCulture),
            ["tcb.microcode"] = tcb.Microcode.ToString(CultureInfo.InvariantCulture),
        };
        if (tcb.Fmc is { } fmc)
            tests["tcb.fmc"] = fmc.ToString(CultureInfo.InvariantCulture);
        return tests;
    }

    private static void CheckProductName(AmdCertificate leaf, SevSnpProduct product)
    {
        var raw = leaf.Extension(ProductNameOid);
        if (raw is null)
        {
            if (leaf.Role == "VCEK")
                throw Untrusted("the VCEK certificate has no product name");
            return;
        }
        var reader = new AsnReader(raw, AsnEncodingRules.DER);
        var name = reader.ReadCharacterString(UniversalTagNumber.IA5String);
        reader.ThrowIfNotEmpty();
        // KDS product names are the line and stepping, e.g. "Milan-B0".
        if (!string.Equals(name, product.ToString(), StringComparison.Ordinal) && !name.StartsWith($"{product}-", StringComparison.Ordinal))
            throw Untrusted($"the {leaf.Role} certificate is for '{name}', the envelope says {product}");
    }

    private static void CheckChipId(AmdCertificate vcek, ReadOnlySpan<byte> chipId, SevSnpProduct product)
    {
        if (!chipId.ContainsAnyExcept((byte)0))
            throw Untrusted("the report's CHIP_ID is masked (all zero), so it cannot be matched to the VCEK");
        var hwId = vcek.Extension(HwIdOid) ?? throw Untrusted("the VCEK certificate has no hwID");
        // AMD's KDS stores the hwID as raw bytes without an OCTET STRING header; accept the wrapped form too.
        if (hwId.Length is not (64 or 8))
        {
            var reader = new AsnReader(hwId, AsnEncodingRules.DER);
            hwId = reader.ReadOctetString();
            reader.ThrowIfNotEmpty();
        }
        var matches = hwId.Length switch
        {
            64 => CryptographicOperations.FixedTimeEquals(hwId, chipId),
            // Turin VCEKs are keyed by the first 8 bytes of the CHIP_ID; the rest of the field is zero.
            8 when product == SevSnpProduct.Turin => CryptographicOperations.FixedTimeEquals(hwId, chipId[..8]) && !chipId[8..].ContainsAnyExcept((byte)0),
            _ => false,
        };
        if (!matches)
            throw Untrusted("the report's CHIP_ID is not the chip the VCEK was issued to (hwID)");
    }

    private static SevSnpTcb EndorsedTcb(AmdCertificate leaf, SevSnpProduct product)
    {
        byte Spl(string oid, string name)
        {
            var raw = leaf.Extension(oid) ?? throw Untrusted($"the {leaf.Role} certificate has no {name} extension");
            var reader = new AsnReader(raw, AsnEncodingRules.DER);
            if (!reader.TryReadInt32(out var value) || value is < 0 or > 255)
                throw Untrusted($"the {leaf.Role} certificate's {name} is not a byte");
            reader.ThrowIfNotEmpty();
            return (byte)value;
        }
        return new SevSnpTcb(
            Bootloader: Spl(BlSplOid, "blSPL"),
            Tee: Spl(TeeSplOid, "teeSPL"),
            Snp: Spl(SnpSplOid, "snpSPL"),
            Microcode: Spl(UcodeSplOid, "ucodeSPL"),
            Fmc: product == SevSnpProduct.Turin ? Spl(FmcSplOid, "fmcSPL") : null);
    }

    private byte[] CachedVcek(SevSnpProduct product, SevSnpReport report)
    {
        var chipId = report.ChipId.Span;
        var hwId = product == SevSnpProduct.Turin ? chipId[..8] : chipId;
        var tcb = report.ReportedTcb.ToString("x16", CultureInfo.InvariantCulture);
        return Cached(product, $"vcek-{Convert.ToHexStringLower(hwId)}-{tcb}", "VCEK");
    }

    // Names are built from the product enum and hex only, so they cannot leave the cache directory.
    private byte[] Cached(SevSnpProduct product, string baseName, string role)
    {
        if (_options.CertificateCacheDirectory is not { } dir)
            throw Untrusted($"the envelope has no {role} certificate and no certificate cache is configured");
        var productDir = Path.Combine(dir, product.ToString());
        try
        {
            var der = Path.Combine(productDir, baseName + ".der");
            if (File.Exists(der))
                return ReadLimited(der);
            var pem = Path.Combine(productDir, baseName + ".pem");
            if (File.Exists(pem))
            {
                var text = System.Text.Encoding.UTF8.GetString(ReadLimited(pem));
                if (!PemEncoding.TryFind(text, out var fields) || !text.AsSpan(fields.Label).SequenceEqual("CERTIFICATE"))
                    throw Untrusted($"the cached {role} '{pem}' holds no PEM certificate");
                return Convert.FromBase64String(text[fields.Base64Data]);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Untrusted($"the cached {role} certificate cannot be read: {e.Message}");
        }
        throw Untrusted($"the envelope has no {role} certificate and the cache has none at '{Path.Combine(productDir, baseName)}.der'");
    }

    private static byte[] ReadLimited(string path)
    {
        if (new FileInfo(path).Length > MaxCachedCertificateBytes)
            throw Untrusted($"the cached certificate '{path}' is too large");
        return File.ReadAllBytes(path);
    }

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);

    private static EvidenceException Untrusted(string message) => new(KeyUseRefusal.EvidenceUntrusted, message);
}
