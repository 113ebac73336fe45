using System.Globalization;
using System.Text;
using System.Text.Json;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.IntelDcap;

/// <summary>
/// Verification collateral for one quote, in the layout of dcap-qvl's <c>QuoteCollateralV3</c> JSON (the layout of the
/// samples in tests/testdata/attestation): a JSON object with the string members
/// <c>root_ca_crl</c> and <c>pck_crl</c> (DER, hex), <c>tcb_info</c> and <c>qe_identity</c> (the exact JSON text of the
/// PCS <c>tcbInfo</c> / <c>enclaveIdentity</c> objects, over whose UTF-8 bytes Intel signed),
/// <c>tcb_info_signature</c> and <c>qe_identity_signature</c> (ECDSA P-256 r‖s, hex), <c>tcb_info_issuer_chain</c> and
/// <c>qe_identity_issuer_chain</c> (TCB signing certificate ‖ root, PEM) and optionally <c>pck_crl_issuer_chain</c>
/// (unused: the PCK CRL is checked against the PCK CA certificate of the quote's own, verified chain). Other members
/// are ignored.
/// </summary>
internal sealed record DcapCollateral(
    byte[] RootCaCrl,
    byte[] PckCrl,
    byte[] TcbInfoJson,
    byte[] TcbInfoSignature,
    string TcbInfoIssuerChain,
    byte[] QeIdentityJson,
    byte[] QeIdentitySignature,
    string QeIdentityIssuerChain)
{
    public const int MaxSize = 256 * 1024;

    public static DcapCollateral Parse(string json)
    {
        if (json.Length > MaxSize)
            throw Invalid($"collateral is {json.Length} characters, the limit is {MaxSize}");
        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Invalid("collateral is not a JSON object");
            return new DcapCollateral(
                Hex(root, "root_ca_crl"),
                Hex(root, "pck_crl"),
                Encoding.UTF8.GetBytes(Str(root, "tcb_info")),
                Signature(root, "tcb_info_signature"),
                Str(root, "tcb_info_issuer_chain"),
                Encoding.UTF8.GetBytes(Str(root, "qe_identity")),
                Signature(root, "qe_identity_signature"),
                Str(root, "qe_identity_issuer_chain"));
        }
        catch (JsonException e)
        {
            throw Invalid($"collateral is not valid JSON: {e.Message}");
        }
    }

    private static string Str(JsonElement obj, string name)
        => obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()!
            : throw Invalid($"collateral lacks the string member '{name}'");

    private static byte[] Hex(JsonElement obj, string name)
    {
        var s = Str(obj, name);
        try
        {
            return Convert.FromHexString(s);
        }
        catch (FormatException)
        {
            throw Invalid($"collateral member '{name}' is not hex");
        }
    }

    private static byte[] Signature(JsonElement obj, string name)
    {
        var bytes = Hex(obj, name);
        return bytes.Length == 64 ? bytes : throw Invalid($"collateral member '{name}' is {bytes.Length} bytes, an ECDSA P-256 r‖s signature is 64");
    }

    internal static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);
}

/// <summary>One level of a TCB info's <c>tcbLevels</c> (TCB info v3).</summary>
internal sealed record TcbLevel(byte[] SgxComponents, int PceSvn, byte[]? TdxComponents, string Status, string[] Advisories);

/// <summary>One level of a QE identity's or TDX module identity's <c>tcbLevels</c>.</summary>
internal sealed record IsvSvnLevel(int IsvSvn, string Status, string[] Advisories);

/// <summary>Expected TDX module signer and attributes (<c>tdxModule</c> or one of <c>tdxModuleIdentities</c>).</summary>
internal sealed record TdxModuleIdentity(string Id, byte[] MrSigner, byte[] Attributes, byte[] AttributesMask, IReadOnlyList<IsvSvnLevel> Levels);

/// <summary>Intel PCS TCB info v3 (the <c>tcbInfo</c> object), for SGX (<c>id</c> "SGX") or TDX (<c>id</c> "TDX").</summary>
internal sealed record TcbInfo(
    string Id,
    int Version,
    DateTimeOffset IssueDate,
    DateTimeOffset NextUpdate,
    byte[] Fmspc,
    byte[] PceId,
    int TcbEvaluationDataNumber,
    IReadOnlyList<TcbLevel> Levels,
    TdxModuleIdentity? TdxModule,
    IReadOnlyList<TdxModuleIdentity> TdxModuleIdentities)
{
    public static TcbInfo Parse(byte[] utf8)
    {
        const string ctx = "tcbInfo";
        try
        {
            using var doc = JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = 16 });
            var o = DcapJson.Object(doc.RootElement, ctx);
            var id = DcapJson.Str(o, "id", ctx);
            var version = DcapJson.Int(o, "version", ctx);
            if (version != 3)
                throw DcapCollateral.Invalid($"TCB info version {version} is not supported (only 3)");
            var isTdx = id == "TDX";
            if (!isTdx && id != "SGX")
                throw DcapCollateral.Invalid($"TCB info id '{id}' is neither SGX nor TDX");
            var levels = DcapJson.Array(o, "tcbLevels", ctx).Select((l, i) => ParseLevel(l, $"{ctx}.tcbLevels[{i}]", isTdx)).ToArray();
            if (levels.Length == 0)
                throw DcapCollateral.Invalid("TCB info has no tcbLevels");
            TdxModuleIdentity? module = null;
            var identities = Array.Empty<TdxModuleIdentity>();
            if (isTdx)
            {
                var m = DcapJson.Object(DcapJson.Member(o, "tdxModule", ctx), $"{ctx}.tdxModule");
                module = ParseModule(m, $"{ctx}.tdxModule", withId: false);
                if (o.TryGetProperty("tdxModuleIdentities", out _))
                    identities = DcapJson.Array(o, "tdxModuleIdentities", ctx).Select((m, i) => ParseModule(m, $"{ctx}.tdxModuleIdentities[{i}]", withId: true)).ToArray();
            }
            return new TcbInfo(
                id,
                version,
                DcapJson.Time(o, "issueDate", ctx),
                DcapJson.Time(o, "nextUpdate", ctx),
                DcapJson.Hex(o, "fmspc", ctx, 6),
                DcapJson.Hex(o, "pceId", ctx, 2),
                DcapJson.Int(o, "tcbEvaluationDataNumber", ctx),
                levels,
                module,
                identities);
        }
        catch (JsonException e)
        {
            throw DcapCollateral.Invalid($"TCB info is not valid JSON: {e.Message}");
        }
    }

    private static TcbLevel ParseLevel(JsonElement level, string ctx, bool isTdx)
    {
        var l = DcapJson.Object(level, ctx);
        var tcb = DcapJson.Object(DcapJson.Member(l, "tcb", ctx), $"{ctx}.tcb");
        var sgx = Components(tcb, "sgxtcbcomponents", $"{ctx}.tcb");
        var tdx = isTdx ? Components(tcb, "tdxtcbcomponents", $"{ctx}.tcb") : null;
        return new TcbLevel(sgx, DcapJson.Int(tcb, "pcesvn", $"{ctx}.tcb", ushort.MaxValue), tdx, DcapJson.Str(l, "tcbStatus", ctx), DcapJson.Advisories(l, ctx));
    }

    private static byte[] Components(JsonElement tcb, string name, string ctx)
    {
        var items = DcapJson.Array(tcb, name, ctx);
        if (items.Length != 16)
            throw DcapCollateral.Invalid($"{ctx}.{name} has {items.Length} entries, not 16");
        return items.Select((c, i) => (byte)DcapJson.Int(DcapJson.Object(c, $"{ctx}.{name}[{i}]"), "svn", $"{ctx}.{name}[{i}]", byte.MaxValue)).ToArray();
    }

    private static TdxModuleIdentity ParseModule(JsonElement m, string ctx, bool withId)
    {
        var o = DcapJson.Object(m, ctx);
        var levels = withId
            ? DcapJson.Array(o, "tcbLevels", ctx).Select((l, i) => DcapJson.IsvSvnLevel(l, $"{ctx}.tcbLevels[{i}]")).ToArray()
            : [];
        return new TdxModuleIdentity(
            withId ? DcapJson.Str(o, "id", ctx) : "",
            DcapJson.Hex(o, "mrsigner", ctx, 48),
            DcapJson.Hex(o, "attributes", ctx, 8),
            DcapJson.Hex(o, "attributesMask", ctx, 8),
            levels);
    }
}

/// <summary>Intel PCS enclave identity v2 (the <c>enclaveIdentity</c> object) of the quoting enclave: <c>id</c> "QE" (SGX) or "TD_QE" (TDX).</summary>
internal sealed record QeIdentity(
    string Id,
    int Version,
    DateTimeOffset IssueDate,
    DateTimeOffset NextUpdate,
    byte[] MiscSelect,
    byte[] MiscSelectMask,
    byte[] Attributes,
    byte[] AttributesMask,
    byte[] MrSigner,
    int IsvProdId,
    int TcbEvaluationDataNumber,
    IReadOnlyList<IsvSvnLevel> Levels)
{
    public static QeIdentity Parse(byte[] utf8)
    {
        const string ctx = "enclaveIdentity";
        try
        {
            using var doc = JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = 16 });
            var o = DcapJson.Object(doc.RootElement, ctx);
            var version = DcapJson.Int(o, "version", ctx);
            if (version != 2)
                throw DcapCollateral.Invalid($"QE identity version {version} is not supported (only 2)");
            var levels = DcapJson.Array(o, "tcbLevels", ctx).Select((l, i) => DcapJson.IsvSvnLevel(l, $"{ctx}.tcbLevels[{i}]")).ToArray();
            return new QeIdentity(
                DcapJson.Str(o, "id", ctx),
                version,
                DcapJson.Time(o, "issueDate", ctx),
                DcapJson.Time(o, "nextUpdate", ctx),
                DcapJson.Hex(o, "miscselect", ctx, 4),
                DcapJson.Hex(o, "miscselectMask", ctx, 4),
                DcapJson.Hex(o, "attributes", ctx, 16),
                DcapJson.Hex(o, "attributesMask", ctx, 16),
                DcapJson.Hex(o, "mrsigner", ctx, 32),
                DcapJson.Int(o, "isvprodid", ctx, ushort.MaxValue),
                DcapJson.Int(o, "tcbEvaluationDataNumber", ctx),
                levels);
        }
        catch (JsonException e)
        {
            throw DcapCollateral.Invalid($"QE identity is not valid JSON: {e.Message}");
        }
    }
}

/// <summary>Strict accessors for the collateral JSON, each failing with a message that names the member.</summary>
internal static class DcapJson
{
    public static JsonElement Member(JsonElement o, string name, string ctx)
        => o.TryGetProperty(name, out var v) ? v : throw DcapCollateral.Invalid($"{ctx} lacks '{name}'");

    public static JsonElement Object(JsonElement e, string ctx)
        => e.ValueKind == JsonValueKind.Object ? e : throw DcapCollateral.Invalid($"{ctx} is not a JSON object");

    public static JsonElement[] Array(JsonElement o, string name, string ctx)
    {
        var v = Member(o, name, ctx);
        return v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().ToArray() : throw DcapCollateral.Invalid($"{ctx}.{name} is not an array");
    }

    public static string Str(JsonElement o, string name, string ctx)
    {
        var v = Member(o, name, ctx);
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw DcapCollateral.Invalid($"{ctx}.{name} is not a string");
    }

    public static int Int(JsonElement o, string name, string ctx, int max = int.MaxValue)
    {
        var v = Member(o, name, ctx);
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i >= 0 && i <= max
            ? i
            : throw DcapCollateral.Invalid($"{ctx}.{name} is not an integer between 0 and {max}");
    }

    public static byte[] Hex(JsonElement o, string name, string ctx, int length)
    {
        var s = Str(o, name, ctx);
        if (s.Length != 2 * length || s.Any(c => !Uri.IsHexDigit(c)))
            throw DcapCollateral.Invalid($"{ctx}.{name} is not {length} bytes of hex");
        return Convert.FromHexString(s);
    }

    public static DateTimeOffset Time(JsonElement o, string name, string ctx)
    {
        var s = Str(o, name, ctx);
        return DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            && s.EndsWith('Z')
            ? t
            : throw DcapCollateral.Invalid($"{ctx}.{name} '{s}' is not an ISO 8601 UTC time");
    }

    public static string[] Advisories(JsonElement o, string ctx)
    {
        if (!o.TryGetProperty("advisoryIDs", out var v))
            return [];
        if (v.ValueKind != JsonValueKind.Array)
            throw DcapCollateral.Invalid($"{ctx}.advisoryIDs is not an array");
        return v.EnumerateArray().Select((a, i) => a.ValueKind == JsonValueKind.String
            ? a.GetString()!
            : throw DcapCollateral.Invalid($"{ctx}.advisoryIDs[{i}] is not a string")).ToArray();
    }

    public static IsvSvnLevel IsvSvnLevel(JsonElement level, string ctx)
    {
        var l = Object(level, ctx);
        var tcb = Object(Member(l, "tcb", ctx), $"{ctx}.tcb");
        return new IsvSvnLevel(Int(tcb, "isvsvn", $"{ctx}.tcb", ushort.MaxValue), Str(l, "tcbStatus", ctx), Advisories(l, ctx));
    }
}
