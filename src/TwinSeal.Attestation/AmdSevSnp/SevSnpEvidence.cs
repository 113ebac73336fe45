using System.Formats.Cbor;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.AmdSevSnp;

/// <summary>
/// The <c>amd-sev-snp</c> evidence document: a self-contained envelope around the raw attestation report and the
/// certificates that endorse it, so the KMS needs no network. Encoded as a CBOR map with text keys
/// (written in canonical order; read strictly: definite lengths, no duplicate or unknown keys, right types):
/// <list type="table">
/// <item><term><c>"report"</c></term><description>bstr, required: the 1184-byte ATTESTATION_REPORT as the firmware returned it.</description></item>
/// <item><term><c>"product"</c></term><description>tstr, required: <c>Milan</c>, <c>Genoa</c> or <c>Turin</c> (AMD's KDS product names, exact case); selects the pinned ARK and the TCB layout.</description></item>
/// <item><term><c>"vcek"</c></term><description>bstr DER, for a report whose SIGNING_KEY is VCEK; optional when the verifier has a certificate cache holding it.</description></item>
/// <item><term><c>"vlek"</c></term><description>bstr DER, for a report whose SIGNING_KEY is VLEK; required then (a VLEK is not found by chip).</description></item>
/// <item><term><c>"ask"</c></term><description>bstr DER, the AMD SEV signing key that issued the VCEK; optional with a cache.</description></item>
/// <item><term><c>"asvk"</c></term><description>bstr DER, the AMD SEV VLEK signing key that issued the VLEK; optional with a cache.</description></item>
/// <item><term><c>"ark"</c></term><description>bstr DER, optional: the AMD root key. Never trusted from here; when present it must equal the pinned ARK.</description></item>
/// </list>
/// At most one of <c>"vcek"</c>/<c>"vlek"</c> and one of <c>"ask"</c>/<c>"asvk"</c>, matching the report's SIGNING_KEY.
/// </summary>
/// <param name="Report">The raw attestation report.</param>
/// <param name="Product">Product line of the platform that produced it.</param>
/// <param name="Vcek">DER VCEK certificate, for a VCEK-signed report.</param>
/// <param name="Vlek">DER VLEK certificate, for a VLEK-signed report.</param>
/// <param name="Ask">DER ASK certificate (issuer of the VCEK).</param>
/// <param name="Asvk">DER ASVK certificate (issuer of the VLEK).</param>
/// <param name="Ark">DER ARK certificate; informative only, it must equal the pinned one.</param>
public sealed record SevSnpEvidence(
    byte[] Report,
    SevSnpProduct Product,
    byte[]? Vcek = null,
    byte[]? Vlek = null,
    byte[]? Ask = null,
    byte[]? Asvk = null,
    byte[]? Ark = null)
{
    /// <summary>The platform tag of SEV-SNP evidence.</summary>
    public const string PlatformTag = "amd-sev-snp";

    /// <summary>Largest envelope accepted (a report and four RSA-4096 / P-384 certificates take about 8 KiB).</summary>
    public const int MaxDocumentBytes = 64 * 1024;

    /// <summary>Canonical CBOR encoding of the envelope.</summary>
    public byte[] Encode()
    {
        var fields = new List<(string Key, byte[]? Bytes)>
        {
            ("ark", Ark), ("ask", Ask), ("asvk", Asvk), ("vcek", Vcek), ("vlek", Vlek), ("report", Report),
        };
        var w = new CborWriter(CborConformanceMode.Canonical);
        w.WriteStartMap(fields.Count(f => f.Bytes is not null) + 1);
        // Canonical mode sorts the keys itself.
        foreach (var (key, bytes) in fields)
        {
            if (bytes is null)
                continue;
            w.WriteTextString(key);
            w.WriteByteString(bytes);
        }
        w.WriteTextString("product");
        w.WriteTextString(Product.ToString());
        w.WriteEndMap();
        return w.Encode();
    }

    /// <summary>The envelope as protocol evidence.</summary>
    public Evidence ToEvidence() => new(PlatformTag, Encode());

    /// <summary>Strict decoding; throws <see cref="EvidenceException"/> (<see cref="KeyUseRefusal.EvidenceInvalid"/>) on anything malformed.</summary>
    public static SevSnpEvidence Decode(ReadOnlyMemory<byte> document)
    {
        if (document.Length is 0 or > MaxDocumentBytes)
            throw Invalid($"SEV-SNP evidence document is empty or larger than {MaxDocumentBytes} bytes");
        try
        {
            var r = new CborReader(document, CborConformanceMode.Strict);
            var count = r.ReadStartMap() ?? throw Invalid("SEV-SNP evidence map must have a definite length");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            byte[]? report = null, vcek = null, vlek = null, ask = null, asvk = null, ark = null;
            string? product = null;
            for (var i = 0; i < count; i++)
            {
                if (r.PeekState() != CborReaderState.TextString)
                    throw Invalid("SEV-SNP evidence map keys must be text");
                var key = r.ReadTextString();
                if (!seen.Add(key))
                    throw Invalid($"SEV-SNP evidence has the key '{key}' twice");
                switch (key)
                {
                    case "report": report = ReadBytes(r, key); break;
                    case "vcek": vcek = ReadBytes(r, key); break;
                    case "vlek": vlek = ReadBytes(r, key); break;
                    case "ask": ask = ReadBytes(r, key); break;
                    case "asvk": asvk = ReadBytes(r, key); break;
                    case "ark": ark = ReadBytes(r, key); break;
                    case "product":
                        if (r.PeekState() != CborReaderState.TextString)
                            throw Invalid("SEV-SNP evidence 'product' must be a text string");
                        product = r.ReadTextString();
                        break;
                    default:
                        throw Invalid($"SEV-SNP evidence has an unknown key '{Printable(key)}'");
                }
            }
            r.ReadEndMap();
            if (r.BytesRemaining != 0)
                throw Invalid("SEV-SNP evidence has trailing bytes after the map");
            if (report is null)
                throw Invalid("SEV-SNP evidence has no 'report'");
            if (product is null)
                throw Invalid("SEV-SNP evidence has no 'product'");
            if (vcek is not null && vlek is not null)
                throw Invalid("SEV-SNP evidence carries both a VCEK and a VLEK");
            if (ask is not null && asvk is not null)
                throw Invalid("SEV-SNP evidence carries both an ASK and an ASVK");
            return new SevSnpEvidence(report, ParseProduct(product), vcek, vlek, ask, asvk, ark);
        }
        catch (Exception e) when (e is CborContentException or InvalidOperationException or FormatException or OverflowException or ArgumentException)
        {
            throw Invalid($"SEV-SNP evidence is not a well-formed CBOR map: {e.Message}");
        }
    }

    /// <summary>Reads a product name exactly as AMD's KDS spells it (<c>Milan</c>, <c>Genoa</c>, <c>Turin</c>).</summary>
    public static SevSnpProduct ParseProduct(string name) => name switch
    {
        "Milan" => SevSnpProduct.Milan,
        "Genoa" => SevSnpProduct.Genoa,
        "Turin" => SevSnpProduct.Turin,
        _ => throw Invalid($"SEV-SNP product '{Printable(name)}' is not Milan, Genoa or Turin"),
    };

    private static byte[] ReadBytes(CborReader r, string key)
    {
        if (r.PeekState() != CborReaderState.ByteString)
            throw Invalid($"SEV-SNP evidence '{key}' must be a byte string");
        return r.ReadByteString();
    }

    private static string Printable(string s)
    {
        var cut = s.Length > 40 ? s[..40] + "…" : s;
        return new string(cut.Select(c => char.IsControl(c) ? '?' : c).ToArray());
    }

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);
}
