using System.Collections.Frozen;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.IntelDcap;

/// <summary>Options of <see cref="IntelDcapVerifier"/>.</summary>
public sealed record IntelDcapVerifierOptions
{
    /// <summary>The default accepted TCB statuses: <see cref="DcapTcbStatus.UpToDate"/> only.</summary>
    public static IReadOnlySet<DcapTcbStatus> DefaultAcceptedTcbStatuses { get; } = new[] { DcapTcbStatus.UpToDate }.ToFrozenSet();

    /// <summary>
    /// TCB statuses (after combining platform, TDX module and QE status) that are accepted. Default
    /// <see cref="DcapTcbStatus.UpToDate"/> only; add e.g. <see cref="DcapTcbStatus.SWHardeningNeeded"/> deliberately,
    /// after reviewing the advisories. <see cref="DcapTcbStatus.Revoked"/> can never be accepted.
    /// </summary>
    public IReadOnlySet<DcapTcbStatus> AcceptedTcbStatuses { get; init; } = DefaultAcceptedTcbStatuses;

    /// <summary>Accept debug enclaves/TDs (SGX ATTRIBUTES.DEBUG, TDX TUD.DEBUG), whose memory the host can read. Off by default.</summary>
    public bool AllowDebug { get; init; }

    /// <summary>
    /// Directory of operator-provided collateral files named <c>sgx-&lt;fmspc&gt;.json</c> / <c>tdx-&lt;fmspc&gt;.json</c>
    /// (FMSPC in lower-case hex, content in the <see cref="IntelDcapVerifier"/> collateral layout). When it holds a
    /// file for the quote's FMSPC, that file is used instead of collateral carried in the evidence.
    /// </summary>
    public string? CollateralDirectory { get; init; }

    /// <summary>
    /// Lowest accepted <c>tcbEvaluationDataNumber</c> of TCB info and QE identity, so that collateral older than a TCB
    /// recovery (but still inside its validity window) is refused. Null: no minimum.
    /// </summary>
    public int? MinimumTcbEvaluationDataNumber { get; init; }
}

/// <summary>
/// Verifies Intel DCAP ECDSA quotes: platform <c>intel-tdx</c> (TD quotes v4, and v5 with a TD 1.0/1.5 body) or
/// <c>intel-sgx</c> (enclave quotes v3), wrapped in the <see cref="IntelDcapEvidence"/> envelope, against a pinned
/// Intel SGX Root CA and collateral, entirely offline.
/// </summary>
/// <remarks>
/// <para>Checks, in order (first failure wins; malformed input → <see cref="KeyUseRefusal.EvidenceInvalid"/>, anything
/// that parses but does not verify → <see cref="KeyUseRefusal.EvidenceUntrusted"/>):
/// envelope and quote layout; Intel QE vendor id;
/// PCK chain (leaf → PCK Platform/Processor CA → pinned root, ECDSA, validity at the clock);
/// root CA CRL (signed by the root, current) and PCK CRL (signed by the chain's PCK CA, current), neither revoking a
/// certificate in use;
/// TCB info and QE identity: their signing chain (TCB signing certificate → pinned root, not revoked), ECDSA P-256
/// signature over the exact JSON bytes, issueDate ≤ clock ≤ nextUpdate, id for the TEE, optional minimum
/// tcbEvaluationDataNumber; FMSPC and PCE-ID equal to the PCK certificate's;
/// QE report signed by the PCK key; QE report data starts with SHA-256(attestation key ‖ QE authentication data);
/// QE report against the QE identity (masked MISCSELECT/ATTRIBUTES, MRSIGNER, ISVPRODID, ISVSVN → QE TCB status);
/// quote signed by the attestation key over header ‖ body;
/// for TDX the TDX module (MRSIGNERSEAM, SEAMATTRIBUTES, module identity TCB level) and, for TD 1.5, MRSERVICETD = 0;
/// TCB level: the first of the TCB info's levels that the PCK certificate's SGX TCB components and PCESVN (and for TDX
/// the TD's TEE_TCB_SVN) reach; its status converged with the TDX module and QE status as Intel's QVL does;
/// debug refused unless allowed; the status must be in <see cref="IntelDcapVerifierOptions.AcceptedTcbStatuses"/>.</para>
/// <para>Normalised claims (hex is lower case): TDX — measurement MRTD; platform tests <c>rtmr0</c>…<c>rtmr3</c>,
/// <c>mrconfigid</c>, <c>mrowner</c>, <c>mrseam</c>, <c>fmspc</c>, <c>tcb.status</c>, <c>tcb.advisories</c>.
/// SGX — measurement MRENCLAVE; platform tests <c>mrsigner</c>, <c>isvprodid</c>, <c>isvsvn</c> (decimal),
/// <c>fmspc</c>, <c>tcb.status</c>, <c>tcb.advisories</c>. <c>tcb.advisories</c> is the sorted, comma-separated
/// advisory ids of the selected platform, TDX module and QE levels (empty when none). Report data is REPORT_DATA;
/// Debug the debug attribute. A quote carries no time, so <see cref="NormalisedClaims.IssuedAt"/> is the verifier's
/// clock at verification; freshness comes from the nonce bound into the report data.</para>
/// <para>Collateral layout: a JSON object with string members <c>root_ca_crl</c> and <c>pck_crl</c> (DER, hex),
/// <c>tcb_info</c> and <c>qe_identity</c> (the exact JSON text of Intel PCS's <c>tcbInfo</c> v3 and
/// <c>enclaveIdentity</c> v2 objects), <c>tcb_info_signature</c> and <c>qe_identity_signature</c> (r‖s, hex),
/// <c>tcb_info_issuer_chain</c> and <c>qe_identity_issuer_chain</c> (PEM); <c>pck_crl_issuer_chain</c> may be present
/// and is not needed.</para>
/// </remarks>
public sealed class IntelDcapVerifier : IEvidenceVerifier
{
    private static readonly byte[] IntelQeVendorId = Convert.FromHexString("939A7233F79C4CA9940A0DB3957F0607");
    private const int MaxChainCertificates = 4;

    private readonly byte[] _rootDer;
    private readonly TimeProvider _clock;
    private readonly IntelDcapVerifierOptions _options;

    /// <summary>Creates a verifier for one TEE type that trusts only <paramref name="intelRootCaDer"/>.</summary>
    /// <param name="tee">Which quotes this verifier accepts (<c>intel-tdx</c> or <c>intel-sgx</c> evidence).</param>
    /// <param name="intelRootCaDer">The pinned Intel SGX Root CA certificate, DER.</param>
    /// <param name="clock">Clock at which certificates, CRLs and collateral must be valid.</param>
    /// <param name="options">Options; defaults accept only UpToDate and refuse debug.</param>
    public IntelDcapVerifier(DcapTeeType tee, byte[] intelRootCaDer, TimeProvider clock, IntelDcapVerifierOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(intelRootCaDer);
        ArgumentNullException.ThrowIfNull(clock);
        if (!Enum.IsDefined(tee))
            throw new ArgumentOutOfRangeException(nameof(tee));
        options ??= new IntelDcapVerifierOptions();
        ArgumentNullException.ThrowIfNull(options.AcceptedTcbStatuses, nameof(options.AcceptedTcbStatuses));
        if (options.AcceptedTcbStatuses.Contains(DcapTcbStatus.Revoked))
            throw new ArgumentException("a revoked TCB can never be accepted", nameof(options));
        using (var root = X509CertificateLoader.LoadCertificate(intelRootCaDer))
        {
            if (root.GetECDsaPublicKey() is not { } key)
                throw new ArgumentException("the pinned Intel root must hold an ECDSA key", nameof(intelRootCaDer));
            key.Dispose();
        }
        Tee = tee;
        _rootDer = intelRootCaDer.ToArray();
        _clock = clock;
        _options = options with { AcceptedTcbStatuses = options.AcceptedTcbStatuses.ToFrozenSet() };
    }

    /// <summary>The TEE type this verifier accepts.</summary>
    public DcapTeeType Tee { get; }

    /// <inheritdoc />
    public string Platform => IntelDcapEvidence.PlatformOf(Tee);

    /// <inheritdoc />
    public NormalisedClaims Verify(Evidence evidence)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        try
        {
            return VerifyCore(evidence);
        }
        catch (EvidenceException)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Fail closed on anything a malformed input could still provoke.
            throw Invalid($"Intel DCAP evidence could not be processed ({e.GetType().Name}: {e.Message})");
        }
    }

    private NormalisedClaims VerifyCore(Evidence evidence)
    {
        if (!string.Equals(evidence.Platform, Platform, StringComparison.Ordinal))
            throw Invalid($"evidence is for platform '{evidence.Platform}', this verifier accepts '{Platform}'");
        if (evidence.Document is null)
            throw Invalid("evidence document is missing");
        var (quoteBytes, evidenceCollateral) = IntelDcapEvidence.Decode(evidence.Document);
        var quote = DcapQuote.Parse(quoteBytes);
        if (quote.TeeType != Tee)
            throw Invalid($"evidence tagged '{Platform}' holds {(quote.TeeType == DcapTeeType.Tdx ? "a TDX" : "an SGX")} quote");
        if (!quote.QeVendorId.AsSpan().SequenceEqual(IntelQeVendorId))
            throw Untrusted($"quote is from a quoting enclave of vendor {Convert.ToHexString(quote.QeVendorId)}, not Intel's");

        var now = _clock.GetUtcNow();
        using var root = X509CertificateLoader.LoadCertificate(_rootDer);
        using var pckChain = new CertificateList(ParsePem(Latin1(quote.PckCertChainPem), "PCK certificate chain in the quote"));

        // PCK chain to the pinned root.
        var (pckLeaf, pckCa) = VerifyPckChain(pckChain.Items, root, now);
        var pck = PckCertificateExtensions.Read(pckLeaf);

        // Collateral: CRLs first, then TCB info and QE identity.
        var collateral = DcapCollateral.Parse(SelectCollateral(evidenceCollateral, pck.Fmspc));
        var rootCrl = DcapCrl.Parse(collateral.RootCaCrl, "Intel SGX Root CA CRL");
        rootCrl.Check(root, now);
        if (rootCrl.IsRevoked(root))
            throw Untrusted("the Intel SGX Root CA CRL revokes the pinned root");
        if (rootCrl.IsRevoked(pckCa))
            throw Untrusted($"PCK CA certificate '{pckCa.Subject}' (serial {pckCa.SerialNumber}) is revoked by the Intel SGX Root CA CRL");
        var pckCrl = DcapCrl.Parse(collateral.PckCrl, "PCK CRL");
        pckCrl.Check(pckCa, now);
        if (pckCrl.IsRevoked(pckLeaf))
            throw Untrusted($"PCK certificate (serial {pckLeaf.SerialNumber}) is revoked by the PCK CRL");

        var tcbInfo = TcbInfo.Parse(VerifySignedJson(collateral.TcbInfoJson, collateral.TcbInfoSignature, collateral.TcbInfoIssuerChain, "TCB info", root, rootCrl, now));
        var qeIdentity = QeIdentity.Parse(VerifySignedJson(collateral.QeIdentityJson, collateral.QeIdentitySignature, collateral.QeIdentityIssuerChain, "QE identity", root, rootCrl, now));
        CheckCollateralWindow("TCB info", tcbInfo.IssueDate, tcbInfo.NextUpdate, tcbInfo.TcbEvaluationDataNumber, now);
        CheckCollateralWindow("QE identity", qeIdentity.IssueDate, qeIdentity.NextUpdate, qeIdentity.TcbEvaluationDataNumber, now);
        var (tcbId, qeId) = Tee == DcapTeeType.Tdx ? ("TDX", "TD_QE") : ("SGX", "QE");
        if (tcbInfo.Id != tcbId)
            throw Untrusted($"TCB info is for {tcbInfo.Id}, the quote is {tcbId}");
        if (qeIdentity.Id != qeId)
            throw Untrusted($"QE identity is for '{qeIdentity.Id}', {(Tee == DcapTeeType.Tdx ? "a TDX" : "an SGX")} quote needs '{qeId}'");
        if (!tcbInfo.Fmspc.AsSpan().SequenceEqual(pck.Fmspc))
            throw Untrusted($"TCB info is for FMSPC {Convert.ToHexString(tcbInfo.Fmspc)}, the PCK certificate's is {Convert.ToHexString(pck.Fmspc)}");
        if (!tcbInfo.PceId.AsSpan().SequenceEqual(pck.PceId))
            throw Untrusted($"TCB info is for PCE-ID {Convert.ToHexString(tcbInfo.PceId)}, the PCK certificate's is {Convert.ToHexString(pck.PceId)}");

        // Quoting enclave: signed by the PCK, binds the attestation key, is Intel's QE.
        using (var pckKey = pckLeaf.GetECDsaPublicKey() ?? throw Untrusted("PCK certificate holds no ECDSA key"))
        {
            if (!VerifyP1363(pckKey, quote.QeReport.Raw, quote.QeReportSignature))
                throw Untrusted("QE report signature does not verify with the PCK certificate's key");
        }
        var expectedQeData = SHA256.HashData([.. quote.AttestationKey, .. quote.QeAuthData]);
        if (!CryptographicOperations.FixedTimeEquals(quote.QeReport.ReportData[..32], expectedQeData))
            throw Untrusted("QE report data does not bind the attestation key and QE authentication data");
        var qeLevel = DcapTcbEvaluation.CheckQe(qeIdentity, quote.QeReport);

        // The quote itself, signed by the attestation key.
        using (var attestationKey = ImportP256(quote.AttestationKey))
        {
            if (!VerifyP1363(attestationKey, quote.SignedData, quote.Signature))
                throw Untrusted("quote signature does not verify with the attestation key");
        }

        // TCB evaluation.
        IsvSvnLevel? moduleLevel = null;
        if (quote.TdBody is { } td)
        {
            moduleLevel = DcapTcbEvaluation.CheckTdxModule(tcbInfo, td);
            if (td.IsTd15 && td.MrServiceTd.IndexOfAnyExcept((byte)0) >= 0)
                throw Untrusted("TD is bound to a service TD (MRSERVICETD is not zero), which this verifier does not support");
        }
        var platformLevel = DcapTcbEvaluation.SelectPlatformLevel(tcbInfo, pck, quote.TdBody);
        var tcb = DcapTcbEvaluation.Combine(platformLevel, moduleLevel, qeLevel);
        var advisories = string.Join(",", tcb.Advisories);

        var debug = quote.TdBody?.Debug ?? quote.SgxBody!.Debug;
        if (debug && !_options.AllowDebug)
            throw Untrusted(Tee == DcapTeeType.Tdx ? "TD is debuggable (TUD.DEBUG set)" : "enclave is debuggable (ATTRIBUTES.DEBUG set)");
        if (!_options.AcceptedTcbStatuses.Contains(tcb.Status))
        {
            var accepted = string.Join(", ", _options.AcceptedTcbStatuses.Order());
            throw Untrusted($"platform TCB status is {tcb.Status} (advisories: {(advisories.Length == 0 ? "none" : advisories)}); accepted: {accepted}");
        }

        return Claims(quote, pck, tcb.Status, advisories, debug, now);
    }

    private NormalisedClaims Claims(DcapQuote quote, PckCertificateExtensions pck, DcapTcbStatus status, string advisories, bool debug, DateTimeOffset now)
    {
        var tests = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["tcb.status"] = status.ToString(),
            ["tcb.advisories"] = advisories,
            ["fmspc"] = Convert.ToHexStringLower(pck.Fmspc),
        };
        string measurement;
        if (quote.TdBody is { } td)
        {
            measurement = Convert.ToHexStringLower(td.MrTd);
            for (var i = 0; i < 4; i++)
                tests[$"rtmr{i}"] = Convert.ToHexStringLower(td.Rtmr(i));
            tests["mrconfigid"] = Convert.ToHexStringLower(td.MrConfigId);
            tests["mrowner"] = Convert.ToHexStringLower(td.MrOwner);
            tests["mrseam"] = Convert.ToHexStringLower(td.MrSeam);
        }
        else
        {
            var sgx = quote.SgxBody!;
            measurement = Convert.ToHexStringLower(sgx.MrEnclave);
            tests["mrsigner"] = Convert.ToHexStringLower(sgx.MrSigner);
            tests["isvprodid"] = sgx.IsvProdId.ToString(CultureInfo.InvariantCulture);
            tests["isvsvn"] = sgx.IsvSvn.ToString(CultureInfo.InvariantCulture);
        }
        return new NormalisedClaims(Platform, Simulated: false, measurement, tests, quote.ReportData.ToArray(), now, debug);
    }

    private string SelectCollateral(string? fromEvidence, byte[] fmspc)
    {
        if (_options.CollateralDirectory is { } dir)
        {
            var name = $"{(Tee == DcapTeeType.Tdx ? "tdx" : "sgx")}-{Convert.ToHexStringLower(fmspc)}.json";
            var path = Path.Combine(dir, name);
            var file = new FileInfo(path);
            if (file.Exists)
            {
                if (file.Length > DcapCollateral.MaxSize)
                    throw Invalid($"collateral file {name} is larger than {DcapCollateral.MaxSize} bytes");
                return File.ReadAllText(path, Encoding.UTF8);
            }
            return fromEvidence ?? throw Invalid($"evidence carries no collateral and the collateral directory has no {name}");
        }
        return fromEvidence ?? throw Invalid("evidence carries no collateral and no collateral directory is configured");
    }

    private void CheckCollateralWindow(string what, DateTimeOffset issued, DateTimeOffset nextUpdate, int evaluationDataNumber, DateTimeOffset now)
    {
        if (now < issued)
            throw Untrusted($"{what} was issued at {issued:O}, after the verification time {now:O}");
        if (now > nextUpdate)
            throw Untrusted($"{what} expired at {nextUpdate:O} (verification time {now:O})");
        if (_options.MinimumTcbEvaluationDataNumber is { } min && evaluationDataNumber < min)
            throw Untrusted($"{what} has tcbEvaluationDataNumber {evaluationDataNumber}, the minimum is {min}");
    }

    private static (X509Certificate2 Leaf, X509Certificate2 Ca) VerifyPckChain(IReadOnlyList<X509Certificate2> certs, X509Certificate2 root, DateTimeOffset now)
    {
        var leaf = certs[0];
        var built = BuildChain(leaf, certs, root, now, "PCK certificate");
        if (built.Count != 3)
            throw Untrusted($"PCK certificate chain has {built.Count} certificates; expected PCK → PCK CA → root");
        var ca = certs.FirstOrDefault(c => c.RawData.AsSpan().SequenceEqual(built[1]))
            ?? throw Untrusted("PCK CA certificate is not among the certificates in the quote");
        if (!CommonName(leaf).Contains("SGX PCK Certificate", StringComparison.Ordinal))
            throw Untrusted($"PCK certificate subject '{leaf.Subject}' is not an SGX PCK certificate");
        var caName = CommonName(ca);
        if (!caName.Contains("SGX PCK Platform CA", StringComparison.Ordinal) && !caName.Contains("SGX PCK Processor CA", StringComparison.Ordinal))
            throw Untrusted($"PCK issuer '{ca.Subject}' is neither the PCK Platform CA nor the PCK Processor CA");
        return (leaf, ca);
    }

    private static byte[] VerifySignedJson(byte[] json, byte[] signature, string issuerChainPem, string what, X509Certificate2 root, DcapCrl rootCrl, DateTimeOffset now)
    {
        using var chain = new CertificateList(ParsePem(issuerChainPem, $"{what} issuer chain"));
        var signer = chain.Items[0];
        var built = BuildChain(signer, chain.Items, root, now, $"{what} signing certificate");
        if (built.Count != 2)
            throw Untrusted($"{what} signing chain has {built.Count} certificates; expected TCB signing → root");
        if (!CommonName(signer).Contains("SGX TCB Signing", StringComparison.Ordinal))
            throw Untrusted($"{what} signer '{signer.Subject}' is not the Intel SGX TCB Signing certificate");
        if (rootCrl.IsRevoked(signer))
            throw Untrusted($"{what} signing certificate (serial {signer.SerialNumber}) is revoked by the Intel SGX Root CA CRL");
        using var key = signer.GetECDsaPublicKey() ?? throw Untrusted($"{what} signing certificate holds no ECDSA key");
        if (!VerifyP1363(key, json, signature))
            throw Untrusted($"{what} signature does not verify with the TCB signing certificate");
        return json;
    }

    /// <summary>Builds <paramref name="leaf"/>'s chain to the pinned root at <paramref name="now"/>; returns the DER of each element, leaf first.</summary>
    private static List<byte[]> BuildChain(X509Certificate2 leaf, IReadOnlyList<X509Certificate2> supplied, X509Certificate2 root, DateTimeOffset now, string what)
    {
        using var chain = new X509Chain();
        var policy = chain.ChainPolicy;
        policy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        policy.CustomTrustStore.Add(root);
        policy.RevocationMode = X509RevocationMode.NoCheck;
        policy.DisableCertificateDownloads = true;
        policy.VerificationTimeIgnored = false;
        policy.VerificationTime = now.UtcDateTime;
        foreach (var cert in supplied.Skip(1))
        {
            if (cert.SubjectName.RawData.AsSpan().SequenceEqual(cert.IssuerName.RawData))
            {
                // A root carried with the chain must be the pinned one; it is never used as a trust anchor itself.
                if (!cert.RawData.AsSpan().SequenceEqual(root.RawData))
                    throw Untrusted($"{what} chain ends in a root ('{cert.Subject}') that is not the pinned Intel SGX Root CA");
                continue;
            }
            policy.ExtraStore.Add(cert);
        }
        var ok = chain.Build(leaf);
        var elements = chain.ChainElements.Select(e => e.Certificate).ToList();
        try
        {
            if (!ok)
            {
                var status = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
                throw Untrusted($"{what} does not chain to the pinned Intel SGX Root CA at {now:O} ({status})");
            }
            var raw = elements.Select(c => c.RawData).ToList();
            if (!raw[^1].AsSpan().SequenceEqual(root.RawData))
                throw Untrusted($"{what} does not chain to the pinned Intel SGX Root CA");
            return raw;
        }
        finally
        {
            foreach (var c in elements)
                c.Dispose();
        }
    }

    private static List<X509Certificate2> ParsePem(string pem, string what)
    {
        var certs = new List<X509Certificate2>();
        try
        {
            var rest = pem.AsSpan();
            while (PemEncoding.TryFind(rest, out var fields))
            {
                if (!rest[fields.Label].SequenceEqual("CERTIFICATE"))
                    throw Invalid($"{what} holds a PEM '{rest[fields.Label]}' block, only certificates are allowed");
                if (certs.Count == MaxChainCertificates)
                    throw Invalid($"{what} has more than {MaxChainCertificates} certificates");
                var der = new byte[fields.DecodedDataLength];
                if (!Convert.TryFromBase64Chars(rest[fields.Base64Data], der, out var written))
                    throw Invalid($"{what} has a PEM block that is not base64");
                certs.Add(X509CertificateLoader.LoadCertificate(der.AsSpan(0, written)));
                rest = rest[fields.Location.End..];
            }
            if (rest.Trim(" \t\r\n\0").Length != 0)
                throw Invalid($"{what} has text that is not a PEM certificate");
            if (certs.Count == 0)
                throw Invalid($"{what} holds no PEM certificate");
            return certs;
        }
        catch (CryptographicException e)
        {
            foreach (var c in certs)
                c.Dispose();
            throw Invalid($"{what} holds a malformed certificate: {e.Message}");
        }
        catch (EvidenceException)
        {
            foreach (var c in certs)
                c.Dispose();
            throw;
        }
    }

    private static ECDsa ImportP256(byte[] xy)
    {
        try
        {
            return ECDsa.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = xy[..32], Y = xy[32..] },
            });
        }
        catch (CryptographicException)
        {
            throw Untrusted("attestation key is not a point on P-256");
        }
    }

    private static bool VerifyP1363(ECDsa key, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        try
        {
            return key.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private static string CommonName(X509Certificate2 cert) => cert.GetNameInfo(X509NameType.SimpleName, forIssuer: false);

    private static string Latin1(byte[] bytes) => Encoding.Latin1.GetString(bytes);

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);

    private static EvidenceException Untrusted(string message) => new(KeyUseRefusal.EvidenceUntrusted, message);

    /// <summary>Certificates parsed from PEM, disposed together.</summary>
    private sealed class CertificateList(List<X509Certificate2> items) : IDisposable
    {
        public IReadOnlyList<X509Certificate2> Items => items;

        public void Dispose()
        {
            foreach (var c in items)
                c.Dispose();
        }
    }
}
