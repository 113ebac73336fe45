using System.Formats.Cbor;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.AwsNitro;

/// <summary>
/// The payload of an AWS Nitro Enclaves attestation document, decoded strictly after the rules of
/// aws-nitro-enclaves-nsm-api, docs/attestation_process.md (§2.2 and §3.2.2). Nothing in it is trusted until
/// <see cref="AwsNitroVerifier"/> has checked the certificate chain and the COSE signature.
/// </summary>
/// <param name="ModuleId">Issuing Nitro hypervisor module id (non-empty).</param>
/// <param name="Timestamp">When the Nitro hypervisor produced the document (millisecond resolution).</param>
/// <param name="Pcrs">Locked PCRs, index (0–31) → 48-byte SHA-384 value.</param>
/// <param name="Certificate">DER of the certificate whose key signed the document.</param>
/// <param name="CaBundle">DER of the issuing CA bundle, root first: [root, intermediate 1, …, intermediate n].</param>
/// <param name="PublicKey">Optional public key the enclave asked to be included.</param>
/// <param name="UserData">Optional user data the enclave asked to be included.</param>
/// <param name="Nonce">Optional nonce the enclave asked to be included.</param>
public sealed record AwsNitroDocument(
    string ModuleId,
    DateTimeOffset Timestamp,
    IReadOnlyDictionary<int, byte[]> Pcrs,
    byte[] Certificate,
    IReadOnlyList<byte[]> CaBundle,
    byte[]? PublicKey,
    byte[]? UserData,
    byte[]? Nonce)
{
    /// <summary>The only register digest AWS Nitro Enclaves use.</summary>
    public const string Digest = "SHA384";

    /// <summary>Size of every PCR value under <see cref="Digest"/>.</summary>
    public const int PcrLength = 48;

    private const int MaxPcrs = 32;
    private const int MaxCertificateBytes = 1024;
    private const int MaxPublicKeyBytes = 1024;
    private const int MaxUserDataBytes = 512;
    private const int MaxNonceBytes = 512;
    private const long MaxUnixMilliseconds = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

    /// <summary>
    /// Decodes the payload of the COSE_Sign1 message. Throws <see cref="EvidenceException"/> with
    /// <see cref="KeyUseRefusal.EvidenceInvalid"/> naming the first rule that is broken.
    /// </summary>
    /// <remarks>
    /// The optional fields <c>public_key</c>, <c>user_data</c> and <c>nonce</c> may be CBOR <c>null</c>: the AWS
    /// document says no field may be null, but the Nitro hypervisor encodes an absent optional field as null
    /// (the public sample does so for <c>public_key</c>), so null is read as "absent". Mandatory fields may never be null.
    /// Unknown and duplicate fields are refused.
    /// </remarks>
    public static AwsNitroDocument Decode(ReadOnlyMemory<byte> payload)
    {
        try
        {
            return DecodeCore(payload);
        }
        catch (Exception e) when (e is CborContentException or InvalidOperationException or FormatException or OverflowException or ArgumentException)
        {
            throw Invalid($"attestation document payload is malformed CBOR: {e.Message}");
        }
    }

    private static AwsNitroDocument DecodeCore(ReadOnlyMemory<byte> payload)
    {
        var r = new CborReader(payload, CborConformanceMode.Strict);
        if (r.PeekState() != CborReaderState.StartMap)
            throw Invalid($"attestation document payload must be a CBOR map, found {r.PeekState()}");
        var count = r.ReadStartMap() ?? throw Invalid("attestation document payload is an indefinite-length map");

        string? moduleId = null, digest = null;
        ulong? timestamp = null;
        Dictionary<int, byte[]>? pcrs = null;
        byte[]? certificate = null, publicKey = null, userData = null, nonce = null;
        List<byte[]>? caBundle = null;
        var seen = new HashSet<string>(StringComparer.Ordinal);

        for (var i = 0; i < count; i++)
        {
            if (r.PeekState() != CborReaderState.TextString)
                throw Invalid($"attestation document field name must be a text string, found {r.PeekState()}");
            var key = r.ReadTextString();
            if (!seen.Add(key))
                throw Invalid($"attestation document field '{key}' appears twice");
            switch (key)
            {
                case "module_id":
                    moduleId = ReadMandatory(r, key, CborReaderState.TextString, () => r.ReadTextString());
                    if (moduleId.Length == 0) throw Invalid("attestation document module_id is empty");
                    break;
                case "digest":
                    digest = ReadMandatory(r, key, CborReaderState.TextString, () => r.ReadTextString());
                    if (digest != Digest) throw Invalid($"attestation document digest is '{digest}', only '{Digest}' is defined");
                    break;
                case "timestamp":
                    timestamp = ReadMandatory(r, key, CborReaderState.UnsignedInteger, () => r.ReadUInt64());
                    if (timestamp is 0 or > MaxUnixMilliseconds) throw Invalid($"attestation document timestamp {timestamp} is out of range");
                    break;
                case "pcrs":
                    pcrs = ReadPcrs(r);
                    break;
                case "certificate":
                    certificate = ReadMandatory(r, key, CborReaderState.ByteString, () => r.ReadByteString());
                    CheckLength(key, certificate, 1, MaxCertificateBytes);
                    break;
                case "cabundle":
                    caBundle = ReadCaBundle(r);
                    break;
                case "public_key":
                    publicKey = ReadOptionalBytes(r, key, 1, MaxPublicKeyBytes);
                    break;
                case "user_data":
                    userData = ReadOptionalBytes(r, key, 0, MaxUserDataBytes);
                    break;
                case "nonce":
                    nonce = ReadOptionalBytes(r, key, 0, MaxNonceBytes);
                    break;
                default:
                    throw Invalid($"attestation document has an unknown field '{key}'");
            }
        }
        r.ReadEndMap();
        if (r.BytesRemaining != 0)
            throw Invalid($"attestation document payload has {r.BytesRemaining} trailing bytes");

        if (moduleId is null) throw Missing("module_id");
        if (digest is null) throw Missing("digest");
        if (timestamp is null) throw Missing("timestamp");
        if (pcrs is null) throw Missing("pcrs");
        if (certificate is null) throw Missing("certificate");
        if (caBundle is null) throw Missing("cabundle");
        return new AwsNitroDocument(moduleId, DateTimeOffset.FromUnixTimeMilliseconds((long)timestamp.Value), pcrs, certificate, caBundle, publicKey, userData, nonce);
    }

    private static T ReadMandatory<T>(CborReader r, string key, CborReaderState expected, Func<T> read)
    {
        var state = r.PeekState();
        if (state != expected)
            throw Invalid($"attestation document field '{key}' must be {Describe(expected)}, found {Describe(state)}");
        return read();
    }

    private static byte[]? ReadOptionalBytes(CborReader r, string key, int min, int max)
    {
        if (r.PeekState() == CborReaderState.Null)
        {
            r.ReadNull();
            return null;
        }
        var value = ReadMandatory(r, key, CborReaderState.ByteString, () => r.ReadByteString());
        CheckLength(key, value, min, max);
        return value;
    }

    private static Dictionary<int, byte[]> ReadPcrs(CborReader r)
    {
        if (r.PeekState() != CborReaderState.StartMap)
            throw Invalid($"attestation document field 'pcrs' must be a map, found {Describe(r.PeekState())}");
        var n = r.ReadStartMap() ?? throw Invalid("attestation document pcrs is an indefinite-length map");
        if (n is < 1 or > MaxPcrs)
            throw Invalid($"attestation document has {n} PCRs, it must have 1 to {MaxPcrs}");
        var pcrs = new Dictionary<int, byte[]>(n);
        for (var i = 0; i < n; i++)
        {
            if (r.PeekState() != CborReaderState.UnsignedInteger)
                throw Invalid($"attestation document PCR index must be an unsigned integer, found {Describe(r.PeekState())}");
            var index = r.ReadUInt64();
            if (index >= MaxPcrs)
                throw Invalid($"attestation document PCR index {index} is out of range 0–{MaxPcrs - 1}");
            if (r.PeekState() != CborReaderState.ByteString)
                throw Invalid($"attestation document PCR{index} must be a byte string, found {Describe(r.PeekState())}");
            var value = r.ReadByteString();
            if (value.Length != PcrLength)
                throw Invalid($"attestation document PCR{index} is {value.Length} bytes, {Digest} values are {PcrLength}");
            if (!pcrs.TryAdd((int)index, value))
                throw Invalid($"attestation document PCR{index} appears twice");
        }
        r.ReadEndMap();
        return pcrs;
    }

    private static List<byte[]> ReadCaBundle(CborReader r)
    {
        if (r.PeekState() != CborReaderState.StartArray)
            throw Invalid($"attestation document field 'cabundle' must be an array, found {Describe(r.PeekState())}");
        var n = r.ReadStartArray() ?? throw Invalid("attestation document cabundle is an indefinite-length array");
        if (n == 0)
            throw Invalid("attestation document cabundle is empty");
        var bundle = new List<byte[]>(n);
        for (var i = 0; i < n; i++)
        {
            if (r.PeekState() != CborReaderState.ByteString)
                throw Invalid($"attestation document cabundle[{i}] must be a byte string, found {Describe(r.PeekState())}");
            var der = r.ReadByteString();
            CheckLength($"cabundle[{i}]", der, 1, MaxCertificateBytes);
            bundle.Add(der);
        }
        r.ReadEndArray();
        return bundle;
    }

    private static void CheckLength(string key, byte[] value, int min, int max)
    {
        if (value.Length < min || value.Length > max)
            throw Invalid($"attestation document field '{key}' is {value.Length} bytes, it must be {min} to {max}");
    }

    private static string Describe(CborReaderState state) => state switch
    {
        CborReaderState.TextString => "a text string",
        CborReaderState.ByteString => "a byte string",
        CborReaderState.UnsignedInteger => "an unsigned integer",
        CborReaderState.NegativeInteger => "a negative integer",
        CborReaderState.StartMap => "a map",
        CborReaderState.StartArray => "an array",
        CborReaderState.Null => "null",
        _ => state.ToString(),
    };

    private static EvidenceException Missing(string key) => Invalid($"attestation document lacks the mandatory field '{key}'");

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);
}
