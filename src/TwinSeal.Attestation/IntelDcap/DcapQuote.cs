using System.Buffers.Binary;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.IntelDcap;

/// <summary>The TEE a DCAP quote comes from (the quote header's <c>tee_type</c>).</summary>
public enum DcapTeeType
{
    /// <summary>An SGX enclave (<c>tee_type</c> 0x00000000).</summary>
    Sgx = 0x00,

    /// <summary>A TDX trust domain (<c>tee_type</c> 0x00000081).</summary>
    Tdx = 0x81,
}

/// <summary>
/// An SGX enclave report body (384 bytes), used for the application enclave of an SGX quote and for the quoting
/// enclave's own report (QE report) in every quote.
/// </summary>
public sealed class SgxReportBody
{
    /// <summary>Size of the structure in bytes.</summary>
    public const int Size = 384;

    private SgxReportBody(byte[] raw)
    {
        Raw = raw;
    }

    /// <summary>The 384 bytes as they appear in the quote.</summary>
    public byte[] Raw { get; }

    /// <summary>CPUSVN (16 bytes).</summary>
    public ReadOnlySpan<byte> CpuSvn => Raw.AsSpan(0, 16);

    /// <summary>MISCSELECT (4 bytes, little-endian as in the report).</summary>
    public ReadOnlySpan<byte> MiscSelect => Raw.AsSpan(16, 4);

    /// <summary>ATTRIBUTES (16 bytes: flags then XFRM, both little-endian).</summary>
    public ReadOnlySpan<byte> Attributes => Raw.AsSpan(48, 16);

    /// <summary>MRENCLAVE (32 bytes).</summary>
    public ReadOnlySpan<byte> MrEnclave => Raw.AsSpan(64, 32);

    /// <summary>MRSIGNER (32 bytes).</summary>
    public ReadOnlySpan<byte> MrSigner => Raw.AsSpan(128, 32);

    /// <summary>ISVPRODID.</summary>
    public ushort IsvProdId => BinaryPrimitives.ReadUInt16LittleEndian(Raw.AsSpan(256, 2));

    /// <summary>ISVSVN.</summary>
    public ushort IsvSvn => BinaryPrimitives.ReadUInt16LittleEndian(Raw.AsSpan(258, 2));

    /// <summary>REPORT_DATA (64 bytes).</summary>
    public ReadOnlySpan<byte> ReportData => Raw.AsSpan(320, 64);

    /// <summary>True when ATTRIBUTES.DEBUG (flags bit 1) is set: the enclave's memory is readable by a debugger.</summary>
    public bool Debug => (Raw[48] & 0x02) != 0;

    internal static SgxReportBody FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
            throw new ArgumentException($"an SGX report body is {Size} bytes", nameof(bytes));
        return new SgxReportBody(bytes.ToArray());
    }
}

/// <summary>A TDX TD report body: version 1.0 (584 bytes, quote v4 and v5 body type 2) or 1.5 (648 bytes, quote v5 body type 3).</summary>
public sealed class TdReportBody
{
    /// <summary>Size of a TD report 1.0 body.</summary>
    public const int Size10 = 584;

    /// <summary>Size of a TD report 1.5 body (adds TEE_TCB_SVN2 and MRSERVICETD).</summary>
    public const int Size15 = 648;

    private TdReportBody(byte[] raw)
    {
        Raw = raw;
    }

    /// <summary>The body bytes as they appear in the quote.</summary>
    public byte[] Raw { get; }

    /// <summary>True for a TD report 1.5 body.</summary>
    public bool IsTd15 => Raw.Length == Size15;

    /// <summary>TEE_TCB_SVN (16 bytes): [0] TDX module ISVSVN, [1] TDX module major version, then the TDX TCB components.</summary>
    public ReadOnlySpan<byte> TeeTcbSvn => Raw.AsSpan(0, 16);

    /// <summary>MRSEAM (48 bytes): measurement of the TDX module.</summary>
    public ReadOnlySpan<byte> MrSeam => Raw.AsSpan(16, 48);

    /// <summary>MRSIGNERSEAM (48 bytes): signer of the TDX module (zero for Intel's).</summary>
    public ReadOnlySpan<byte> MrSignerSeam => Raw.AsSpan(64, 48);

    /// <summary>SEAMATTRIBUTES (8 bytes).</summary>
    public ReadOnlySpan<byte> SeamAttributes => Raw.AsSpan(112, 8);

    /// <summary>TDATTRIBUTES (8 bytes); bit 0 is TUD.DEBUG.</summary>
    public ReadOnlySpan<byte> TdAttributes => Raw.AsSpan(120, 8);

    /// <summary>XFAM (8 bytes).</summary>
    public ReadOnlySpan<byte> Xfam => Raw.AsSpan(128, 8);

    /// <summary>MRTD (48 bytes): measurement of the initial TD contents.</summary>
    public ReadOnlySpan<byte> MrTd => Raw.AsSpan(136, 48);

    /// <summary>MRCONFIGID (48 bytes).</summary>
    public ReadOnlySpan<byte> MrConfigId => Raw.AsSpan(184, 48);

    /// <summary>MROWNER (48 bytes).</summary>
    public ReadOnlySpan<byte> MrOwner => Raw.AsSpan(232, 48);

    /// <summary>MROWNERCONFIG (48 bytes).</summary>
    public ReadOnlySpan<byte> MrOwnerConfig => Raw.AsSpan(280, 48);

    /// <summary>RTMR0..RTMR3 (48 bytes each).</summary>
    public ReadOnlySpan<byte> Rtmr(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, 3);
        return Raw.AsSpan(328 + (48 * index), 48);
    }

    /// <summary>REPORTDATA (64 bytes).</summary>
    public ReadOnlySpan<byte> ReportData => Raw.AsSpan(520, 64);

    /// <summary>TEE_TCB_SVN2 (16 bytes) of a TD report 1.5; empty for 1.0.</summary>
    public ReadOnlySpan<byte> TeeTcbSvn2 => IsTd15 ? Raw.AsSpan(584, 16) : [];

    /// <summary>MRSERVICETD (48 bytes) of a TD report 1.5; empty for 1.0.</summary>
    public ReadOnlySpan<byte> MrServiceTd => IsTd15 ? Raw.AsSpan(600, 48) : [];

    /// <summary>True when TDATTRIBUTES.TUD.DEBUG (bit 0) is set: the host VMM can read and write the TD's state.</summary>
    public bool Debug => (Raw[120] & 0x01) != 0;

    internal static TdReportBody FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length is not (Size10 or Size15))
            throw new ArgumentException($"a TD report body is {Size10} or {Size15} bytes", nameof(bytes));
        return new TdReportBody(bytes.ToArray());
    }
}

/// <summary>
/// An Intel DCAP ECDSA quote (Intel SGX ECDSA Quote Library reference, Intel TDX DCAP Quoting Library API appendix):
/// version 3 (SGX), version 4 (TDX, or SGX) and version 5 (body descriptor), attestation key type 2 (ECDSA P-256).
/// </summary>
/// <remarks>
/// Layout: a 48-byte header (version u16, attestation key type u16, tee_type u32, QE SVN u16, PCE SVN u16,
/// QE vendor id 16, user data 20); for v5 a body descriptor (type u16: 1 SGX, 2 TD 1.0, 3 TD 1.5; size u32); the body;
/// then a u32 length and the signature data: quote signature (64, r‖s), attestation key (64, x‖y) and certification
/// data. In v3 that is the QE report (384), its signature (64), the QE authentication data (u16 length + bytes) and a
/// certification data entry (type u16 = 5, PCK certificate chain PEM; size u32). In v4/v5 the certification data is
/// one entry of type 6 (QE report certification data) whose content is those same QE fields and nested type-5 entry.
/// Everything is little-endian. After the signature data only zero bytes (padding) may follow.
/// </remarks>
public sealed class DcapQuote
{
    /// <summary>Header size in bytes.</summary>
    public const int HeaderSize = 48;

    /// <summary>Attestation key type 2: ECDSA-256 with P-256.</summary>
    public const ushort AttestationKeyTypeEcdsaP256 = 2;

    /// <summary>Certification data type 5: PCK leaf ‖ PCK CA ‖ root CA certificates, PEM.</summary>
    public const ushort CertificationDataPckCertChain = 5;

    /// <summary>Certification data type 6: QE report certification data (v4 and later).</summary>
    public const ushort CertificationDataQeReport = 6;

    /// <summary>Upper bound on a quote; real quotes are about 5 KB.</summary>
    public const int MaxSize = 64 * 1024;

    private DcapQuote()
    {
    }

    /// <summary>Quote version (3, 4 or 5).</summary>
    public ushort Version { get; private init; }

    /// <summary>Attestation key type (always 2 once parsed).</summary>
    public ushort AttestationKeyType { get; private init; }

    /// <summary>The TEE the quote comes from.</summary>
    public DcapTeeType TeeType { get; private init; }

    /// <summary>QE vendor id (16 bytes; Intel's is 939A7233F79C4CA9940A0DB3957F0607).</summary>
    public byte[] QeVendorId { get; private init; } = [];

    /// <summary>The header's user data (20 bytes; the first 16 are the QE id for Intel's QE).</summary>
    public byte[] UserData { get; private init; } = [];

    /// <summary>The SGX enclave report body, for SGX quotes.</summary>
    public SgxReportBody? SgxBody { get; private init; }

    /// <summary>The TD report body, for TDX quotes.</summary>
    public TdReportBody? TdBody { get; private init; }

    /// <summary>The bytes the attestation key signed: header, v5 body descriptor and body.</summary>
    public byte[] SignedData { get; private init; } = [];

    /// <summary>ECDSA P-256 signature over <see cref="SignedData"/>, r‖s (64 bytes).</summary>
    public byte[] Signature { get; private init; } = [];

    /// <summary>The attestation public key, x‖y (64 bytes).</summary>
    public byte[] AttestationKey { get; private init; } = [];

    /// <summary>The quoting enclave's report, signed by the PCK.</summary>
    public SgxReportBody QeReport { get; private init; } = null!;

    /// <summary>ECDSA P-256 signature of the PCK key over the raw QE report, r‖s (64 bytes).</summary>
    public byte[] QeReportSignature { get; private init; } = [];

    /// <summary>QE authentication data; the QE report's data starts with SHA-256(attestation key ‖ this).</summary>
    public byte[] QeAuthData { get; private init; } = [];

    /// <summary>The PCK certificate chain as carried in the quote (PEM text, possibly NUL-terminated).</summary>
    public byte[] PckCertChainPem { get; private init; } = [];

    /// <summary>Number of zero bytes that followed the quote.</summary>
    public int TrailingPadding { get; private init; }

    /// <summary>Parses a quote; throws <see cref="EvidenceException"/> (<see cref="KeyUseRefusal.EvidenceInvalid"/>) naming the first malformed field.</summary>
    public static DcapQuote Parse(ReadOnlySpan<byte> quote)
    {
        if (quote.Length > MaxSize)
            throw Invalid($"quote is {quote.Length} bytes, the limit is {MaxSize}");
        var r = new Reader(quote);
        var header = r.Take(HeaderSize, "header");
        var version = BinaryPrimitives.ReadUInt16LittleEndian(header);
        var keyType = BinaryPrimitives.ReadUInt16LittleEndian(header[2..]);
        var teeRaw = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        if (version is not (3 or 4 or 5))
            throw Invalid($"quote version {version} is not supported (3 for SGX, 4 or 5 for TDX)");
        if (keyType != AttestationKeyTypeEcdsaP256)
            throw Invalid($"attestation key type {keyType} is not supported (only 2, ECDSA P-256)");
        DcapTeeType tee = teeRaw switch
        {
            0x00 => DcapTeeType.Sgx,
            0x81 => DcapTeeType.Tdx,
            _ => throw Invalid($"quote tee_type 0x{teeRaw:x8} is neither SGX (0x00) nor TDX (0x81)"),
        };
        if (version == 3 && tee != DcapTeeType.Sgx)
            throw Invalid("a version 3 quote must be an SGX quote (tee_type 0)");

        int bodySize;
        if (version == 5)
        {
            var descriptor = r.Take(6, "v5 body descriptor");
            var bodyType = BinaryPrimitives.ReadUInt16LittleEndian(descriptor);
            var declared = BinaryPrimitives.ReadUInt32LittleEndian(descriptor[2..]);
            (DcapTeeType expectedTee, int size) = bodyType switch
            {
                1 => (DcapTeeType.Sgx, SgxReportBody.Size),
                2 => (DcapTeeType.Tdx, TdReportBody.Size10),
                3 => (DcapTeeType.Tdx, TdReportBody.Size15),
                _ => throw Invalid($"v5 quote body type {bodyType} is unknown (1 SGX, 2 TD 1.0, 3 TD 1.5)"),
            };
            if (expectedTee != tee)
                throw Invalid($"v5 quote body type {bodyType} does not fit tee_type {tee}");
            if (declared != (uint)size)
                throw Invalid($"v5 quote body type {bodyType} declares {declared} bytes, it is {size}");
            bodySize = size;
        }
        else
        {
            bodySize = tee == DcapTeeType.Sgx ? SgxReportBody.Size : TdReportBody.Size10;
        }
        var body = r.Take(bodySize, "report body");
        var signedData = quote[..r.Position].ToArray();

        var sigLen = r.ReadUInt32("signature data length");
        if (sigLen > (uint)r.Remaining)
            throw Invalid($"quote signature data declares {sigLen} bytes, only {r.Remaining} follow");
        var sigData = r.Take((int)sigLen, "signature data");
        var padding = r.Rest;
        if (padding.IndexOfAnyExcept((byte)0) >= 0)
            throw Invalid($"quote is followed by {padding.Length} bytes that are not zero padding");

        var s = new Reader(sigData);
        var signature = s.Take(64, "quote signature").ToArray();
        var attestationKey = s.Take(64, "attestation key").ToArray();
        QeFields qe;
        if (version == 3)
        {
            qe = ReadQeFields(ref s, "quote signature data");
        }
        else
        {
            var type = s.ReadUInt16("certification data type");
            if (type != CertificationDataQeReport)
                throw Invalid($"certification data type {type} is not supported (v{version} quotes carry type 6, QE report certification data)");
            var size = s.ReadUInt32("certification data size");
            if (size != (uint)s.Remaining)
                throw Invalid($"QE report certification data declares {size} bytes, {s.Remaining} remain in the signature data");
            var inner = new Reader(s.Take((int)size, "QE report certification data"));
            qe = ReadQeFields(ref inner, "QE report certification data");
        }
        if (s.Remaining != 0)
            throw Invalid($"quote signature data has {s.Remaining} unparsed bytes");

        return new DcapQuote
        {
            Version = version,
            AttestationKeyType = keyType,
            TeeType = tee,
            QeVendorId = header.Slice(12, 16).ToArray(),
            UserData = header.Slice(28, 20).ToArray(),
            SgxBody = tee == DcapTeeType.Sgx ? SgxReportBody.FromBytes(body) : null,
            TdBody = tee == DcapTeeType.Tdx ? TdReportBody.FromBytes(body) : null,
            SignedData = signedData,
            Signature = signature,
            AttestationKey = attestationKey,
            QeReport = qe.Report,
            QeReportSignature = qe.ReportSignature,
            QeAuthData = qe.AuthData,
            PckCertChainPem = qe.PckChain,
            TrailingPadding = padding.Length,
        };
    }

    /// <summary>REPORT_DATA of the application enclave or TD.</summary>
    public ReadOnlySpan<byte> ReportData => TdBody is { } td ? td.ReportData : SgxBody!.ReportData;

    private readonly record struct QeFields(SgxReportBody Report, byte[] ReportSignature, byte[] AuthData, byte[] PckChain);

    private static QeFields ReadQeFields(ref Reader r, string where)
    {
        var report = SgxReportBody.FromBytes(r.Take(SgxReportBody.Size, "QE report"));
        var reportSignature = r.Take(64, "QE report signature").ToArray();
        var authLen = r.ReadUInt16("QE authentication data length");
        var auth = r.Take(authLen, "QE authentication data").ToArray();
        var certType = r.ReadUInt16("PCK certification data type");
        if (certType != CertificationDataPckCertChain)
            throw Invalid($"PCK certification data type {certType} is not supported (only 5, PCK certificate chain)");
        var certSize = r.ReadUInt32("PCK certification data size");
        if (certSize != (uint)r.Remaining)
            throw Invalid($"PCK certification data declares {certSize} bytes, {r.Remaining} remain in the {where}");
        var chain = r.Take((int)certSize, "PCK certificate chain").ToArray();
        return new QeFields(report, reportSignature, auth, chain);
    }

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;

        public int Position { get; private set; }

        public readonly int Remaining => _data.Length - Position;

        public readonly ReadOnlySpan<byte> Rest => _data[Position..];

        public ReadOnlySpan<byte> Take(int count, string what)
        {
            if (count > Remaining)
                throw Invalid($"quote is truncated: {what} needs {count} bytes at offset {Position}, {Remaining} remain");
            var slice = _data.Slice(Position, count);
            Position += count;
            return slice;
        }

        public ushort ReadUInt16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));

        public uint ReadUInt32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    }
}
