using System.Buffers.Binary;
using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using TwinSeal.Attestation.IntelDcap;

namespace TwinSeal.Attestation.Tests;

/// <summary>
/// A throw-away Intel-shaped PKI for tests that real samples cannot cover (revocation, debug, status convergence):
/// a root, a PCK Platform CA, a PCK leaf with the SGX extension, a TCB signing certificate, CRLs, TCB info, QE identity
/// and quotes (SGX v3, TDX v4) built and signed exactly as the DCAP layouts prescribe.
/// </summary>
internal sealed class IntelDcapTestPki : IDisposable
{
    public static readonly DateTimeOffset Now = new(2030, 6, 1, 12, 0, 0, TimeSpan.Zero);
    public static readonly byte[] Fmspc = Convert.FromHexString("00AABBCC0000");
    public static readonly byte[] QeMrSigner = Enumerable.Repeat((byte)0x11, 32).ToArray();
    public static readonly byte[] Components = [4, 4, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
    public const int PceSvn = 11;

    private static readonly DateTimeOffset NotBefore = Now.AddYears(-1);
    private static readonly DateTimeOffset NotAfter = Now.AddYears(5);
    private static readonly byte[] IntelQeVendorId = Convert.FromHexString("939A7233F79C4CA9940A0DB3957F0607");

    private readonly ECDsa _rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _pckCaKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _impostorCaKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _pckKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _tcbKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _attestationKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public IntelDcapTestPki()
    {
        Root = CreateCa("CN=Intel SGX Root CA, O=Test", _rootKey, null, null, 1);
        PckCa = CreateCa("CN=Intel SGX PCK Platform CA, O=Test", _pckCaKey, Root, _rootKey, 2);
        ImpostorPckCa = CreateCa("CN=Intel SGX PCK Platform CA, O=Test", _impostorCaKey, Root, _rootKey, 3);
        Pck = CreateLeaf("CN=Intel SGX PCK Certificate, O=Test", _pckKey, PckCa, 4, SgxExtension());
        TcbSigner = CreateLeaf("CN=Intel SGX TCB Signing, O=Test", _tcbKey, Root, 5, null);
    }

    public X509Certificate2 Root { get; }

    public X509Certificate2 PckCa { get; }

    public X509Certificate2 ImpostorPckCa { get; }

    public X509Certificate2 Pck { get; }

    public X509Certificate2 TcbSigner { get; }

    /// <summary>What to put into the next quote and collateral.</summary>
    public sealed record Spec
    {
        public DcapTeeType Tee { get; init; } = DcapTeeType.Sgx;
        public bool Debug { get; init; }
        public int QeIsvSvn { get; init; } = 8;
        public string PlatformStatus { get; init; } = "UpToDate";
        public string[] PlatformAdvisories { get; init; } = [];
        public bool TcbLevelsAbovePlatform { get; init; }
        public byte TdxModuleIsvSvn { get; init; } = 3;
        public byte TdxModuleVersion { get; init; } = 1;
        public bool RevokePck { get; init; }
        public bool RevokePckCa { get; init; }
        public bool PckCrlByImpostor { get; init; }
        public byte[] TcbInfoFmspc { get; init; } = Fmspc;
        public byte[] QeVendorId { get; init; } = IntelQeVendorId;
        public byte[] QeMrSignerInReport { get; init; } = QeMrSigner;
    }

    public Protocol.Evidence Evidence(Spec spec)
    {
        var quote = Quote(spec);
        return IntelDcapEvidence.Create(quote, Collateral(spec));
    }

    public IntelDcapVerifier Verifier(DcapTeeType tee, IntelDcapVerifierOptions? options = null)
        => new(tee, Root.RawData, new FixedClock(Now), options);

    public byte[] Quote(Spec spec)
    {
        var tdx = spec.Tee == DcapTeeType.Tdx;
        var header = new byte[48];
        BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)(tdx ? 4 : 3));
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(2), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), tdx ? 0x81u : 0u);
        spec.QeVendorId.CopyTo(header, 12);

        byte[] body;
        if (tdx)
        {
            body = new byte[584];
            body[0] = spec.TdxModuleIsvSvn;
            body[1] = spec.TdxModuleVersion;
            body[2] = 2;
            body[120] = spec.Debug ? (byte)0x01 : (byte)0x00;
            body.AsSpan(136, 48).Fill(0xCC); // MRTD
            body.AsSpan(520, 64).Fill(0x5A); // REPORTDATA
        }
        else
        {
            body = new byte[384];
            body[48] = (byte)(0x05 | (spec.Debug ? 0x02 : 0));
            body.AsSpan(64, 32).Fill(0xAA); // MRENCLAVE
            body.AsSpan(128, 32).Fill(0xBB); // MRSIGNER
            body[256] = 1; // ISVPRODID
            body[258] = 1; // ISVSVN
            body.AsSpan(320, 64).Fill(0x5A); // REPORT_DATA
        }

        var attestationPublic = _attestationKey.ExportParameters(false);
        byte[] attestationKey = [.. attestationPublic.Q.X!, .. attestationPublic.Q.Y!];
        var authData = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var qeReport = new byte[384];
        qeReport[48] = 0x15;
        qeReport[56] = 0xE7;
        spec.QeMrSignerInReport.CopyTo(qeReport, 128);
        qeReport[256] = (byte)(tdx ? 2 : 1);
        BinaryPrimitives.WriteUInt16LittleEndian(qeReport.AsSpan(258), (ushort)spec.QeIsvSvn);
        SHA256.HashData([.. attestationKey, .. authData]).CopyTo(qeReport, 320);
        var qeSignature = _pckKey.SignData(qeReport, HashAlgorithmName.SHA256);
        var pem = System.Text.Encoding.ASCII.GetBytes(Pck.ExportCertificatePem() + "\n" + PckCa.ExportCertificatePem() + "\n" + Root.ExportCertificatePem() + "\n\0");

        var qeData = new List<byte>();
        qeData.AddRange(qeReport);
        qeData.AddRange(qeSignature);
        qeData.AddRange(U16((ushort)authData.Length));
        qeData.AddRange(authData);
        qeData.AddRange(U16(5));
        qeData.AddRange(U32((uint)pem.Length));
        qeData.AddRange(pem);

        byte[] signed = [.. header, .. body];
        var signature = _attestationKey.SignData(signed, HashAlgorithmName.SHA256);
        var sigData = new List<byte>();
        sigData.AddRange(signature);
        sigData.AddRange(attestationKey);
        if (tdx)
        {
            sigData.AddRange(U16(6));
            sigData.AddRange(U32((uint)qeData.Count));
        }
        sigData.AddRange(qeData);
        return [.. signed, .. U32((uint)sigData.Count), .. sigData];
    }

    public string Collateral(Spec spec)
    {
        var tdx = spec.Tee == DcapTeeType.Tdx;
        var rootCrl = new CertificateRevocationListBuilder();
        if (spec.RevokePckCa)
            rootCrl.AddEntry(PckCa, Now.AddDays(-10));
        var pckCrl = new CertificateRevocationListBuilder();
        pckCrl.AddEntry(new byte[] { 0x7f, 0x01 }, Now.AddDays(-10));
        if (spec.RevokePck)
            pckCrl.AddEntry(Pck, Now.AddDays(-10));
        using var pckCrlIssuer = spec.PckCrlByImpostor ? ImpostorPckCa.CopyWithPrivateKey(_impostorCaKey) : PckCa.CopyWithPrivateKey(_pckCaKey);
        using var rootWithKey = Root.CopyWithPrivateKey(_rootKey);

        var tcbInfo = TcbInfoJson(spec, tdx);
        var qeIdentity = QeIdentityJson(tdx);
        var tcbChain = TcbSigner.ExportCertificatePem() + "\n" + Root.ExportCertificatePem() + "\n";
        return new JsonObject
        {
            ["pck_crl_issuer_chain"] = PckCa.ExportCertificatePem() + "\n" + Root.ExportCertificatePem() + "\n",
            ["root_ca_crl"] = Convert.ToHexStringLower(rootCrl.Build(rootWithKey, BigInteger.One, Now.AddDays(30), HashAlgorithmName.SHA256, null, Now.AddDays(-1))),
            ["pck_crl"] = Convert.ToHexStringLower(pckCrl.Build(pckCrlIssuer, BigInteger.One, Now.AddDays(30), HashAlgorithmName.SHA256, null, Now.AddDays(-1))),
            ["tcb_info_issuer_chain"] = tcbChain,
            ["tcb_info"] = tcbInfo,
            ["tcb_info_signature"] = Convert.ToHexStringLower(_tcbKey.SignData(System.Text.Encoding.UTF8.GetBytes(tcbInfo), HashAlgorithmName.SHA256)),
            ["qe_identity_issuer_chain"] = tcbChain,
            ["qe_identity"] = qeIdentity,
            ["qe_identity_signature"] = Convert.ToHexStringLower(_tcbKey.SignData(System.Text.Encoding.UTF8.GetBytes(qeIdentity), HashAlgorithmName.SHA256)),
        }.ToJsonString();
    }

    public void Dispose()
    {
        foreach (var c in new[] { Root, PckCa, ImpostorPckCa, Pck, TcbSigner })
            c.Dispose();
        foreach (var k in new[] { _rootKey, _pckCaKey, _impostorCaKey, _pckKey, _tcbKey, _attestationKey })
            k.Dispose();
    }

    private static string TcbInfoJson(Spec spec, bool tdx)
    {
        static JsonArray Svns(IEnumerable<byte> svns) => new([.. svns.Select(s => (JsonNode)new JsonObject { ["svn"] = s })]);
        JsonObject Level(byte[] sgx, byte[] tdxComponents, string status, string[] advisories)
        {
            var tcb = new JsonObject { ["sgxtcbcomponents"] = Svns(sgx), ["pcesvn"] = PceSvn };
            if (tdx)
                tcb["tdxtcbcomponents"] = Svns(tdxComponents);
            var level = new JsonObject { ["tcb"] = tcb, ["tcbDate"] = "2030-01-01T00:00:00Z", ["tcbStatus"] = status };
            if (advisories.Length > 0)
                level["advisoryIDs"] = new JsonArray([.. advisories.Select(a => (JsonNode)a)]);
            return level;
        }
        var tdxRequired = new byte[16];
        tdxRequired[2] = 2;
        var top = Components.ToArray();
        if (spec.TcbLevelsAbovePlatform)
            top[0]++;
        var o = new JsonObject
        {
            ["id"] = tdx ? "TDX" : "SGX",
            ["version"] = 3,
            ["issueDate"] = Stamp(Now.AddDays(-1)),
            ["nextUpdate"] = Stamp(Now.AddDays(30)),
            ["fmspc"] = Convert.ToHexString(spec.TcbInfoFmspc),
            ["pceId"] = "0000",
            ["tcbType"] = 0,
            ["tcbEvaluationDataNumber"] = 17,
        };
        if (tdx)
        {
            o["tdxModule"] = new JsonObject { ["mrsigner"] = new string('0', 96), ["attributes"] = "0000000000000000", ["attributesMask"] = "FFFFFFFFFFFFFFFF" };
            o["tdxModuleIdentities"] = new JsonArray(new JsonObject
            {
                ["id"] = "TDX_01",
                ["mrsigner"] = new string('0', 96),
                ["attributes"] = "0000000000000000",
                ["attributesMask"] = "FFFFFFFFFFFFFFFF",
                ["tcbLevels"] = new JsonArray(
                    new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 3 }, ["tcbDate"] = "2030-01-01T00:00:00Z", ["tcbStatus"] = "UpToDate" },
                    new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 1 }, ["tcbDate"] = "2029-01-01T00:00:00Z", ["tcbStatus"] = "OutOfDate", ["advisoryIDs"] = new JsonArray("INTEL-SA-90001") }),
            });
        }
        // The level the default PCK meets exactly, then an older one with every requirement lower.
        o["tcbLevels"] = new JsonArray(
            Level(top, tdxRequired, spec.PlatformStatus, spec.PlatformAdvisories),
            Level(top.Select((c, i) => (byte)(i == 0 ? c : c == 0 ? 0 : c - 1)).ToArray(), new byte[16], "OutOfDate", ["INTEL-SA-90002"]));
        return o.ToJsonString();
    }

    private static string QeIdentityJson(bool tdx) => new JsonObject
    {
        ["id"] = tdx ? "TD_QE" : "QE",
        ["version"] = 2,
        ["issueDate"] = Stamp(Now.AddDays(-1)),
        ["nextUpdate"] = Stamp(Now.AddDays(30)),
        ["tcbEvaluationDataNumber"] = 17,
        ["miscselect"] = "00000000",
        ["miscselectMask"] = "FFFFFFFF",
        ["attributes"] = "11000000000000000000000000000000",
        ["attributesMask"] = "FBFFFFFFFFFFFFFF0000000000000000",
        ["mrsigner"] = Convert.ToHexString(QeMrSigner),
        ["isvprodid"] = tdx ? 2 : 1,
        ["tcbLevels"] = new JsonArray(
            new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 8 }, ["tcbDate"] = "2030-01-01T00:00:00Z", ["tcbStatus"] = "UpToDate" },
            new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 5 }, ["tcbDate"] = "2029-01-01T00:00:00Z", ["tcbStatus"] = "OutOfDate", ["advisoryIDs"] = new JsonArray("INTEL-SA-90003") }),
    }.ToJsonString();

    private static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private static X509Extension SgxExtension()
    {
        const string sgx = "1.2.840.113741.1.13.1";
        var components = Components;
        var w = new AsnWriter(AsnEncodingRules.DER);
        using (w.PushSequence())
        {
            Entry(w, sgx + ".1", x => x.WriteOctetString(new byte[16]));
            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(sgx + ".2");
                using (w.PushSequence())
                {
                    for (var i = 0; i < 16; i++)
                        Entry(w, $"{sgx}.2.{i + 1}", x => x.WriteInteger(components[i]));
                    Entry(w, sgx + ".2.17", x => x.WriteInteger(PceSvn));
                    Entry(w, sgx + ".2.18", x => x.WriteOctetString(components));
                }
            }
            Entry(w, sgx + ".3", x => x.WriteOctetString(new byte[2]));
            Entry(w, sgx + ".4", x => x.WriteOctetString(Fmspc));
            Entry(w, sgx + ".5", x => x.WriteEncodedValue([0x0A, 0x01, 0x00])); // SGX type: ENUMERATED 0 (standard)
        }
        return new X509Extension(sgx, w.Encode(), critical: false);
    }

    private static void Entry(AsnWriter w, string oid, Action<AsnWriter> value)
    {
        using (w.PushSequence())
        {
            w.WriteObjectIdentifier(oid);
            value(w);
        }
    }

    private static X509Certificate2 CreateCa(string subject, ECDsa key, X509Certificate2? issuer, ECDsa? issuerKey, byte serial)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        if (issuer is null)
        {
            using var self = request.CreateSelfSigned(NotBefore, NotAfter);
            return X509CertificateLoader.LoadCertificate(self.RawData);
        }
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        using var issuerWithKey = issuer.CopyWithPrivateKey(issuerKey!);
        using var cert = request.Create(issuerWithKey, NotBefore, NotAfter, [serial, 0x42]);
        return X509CertificateLoader.LoadCertificate(cert.RawData);
    }

    private X509Certificate2 CreateLeaf(string subject, ECDsa key, X509Certificate2 issuer, byte serial, X509Extension? extra)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.NonRepudiation, true));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        if (extra is not null)
            request.CertificateExtensions.Add(extra);
        var issuerKey = ReferenceEquals(issuer, Root) ? _rootKey : _pckCaKey;
        using var issuerWithKey = issuer.CopyWithPrivateKey(issuerKey);
        using var cert = request.Create(issuerWithKey, NotBefore, NotAfter, [serial, 0x42]);
        return X509CertificateLoader.LoadCertificate(cert.RawData);
    }

    private static byte[] U16(ushort v)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, v);
        return b;
    }

    private static byte[] U32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
