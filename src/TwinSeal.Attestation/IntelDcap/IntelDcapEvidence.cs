using System.Formats.Cbor;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.IntelDcap;

/// <summary>
/// The evidence document of platforms <c>intel-tdx</c> and <c>intel-sgx</c>: a self-contained envelope holding the
/// raw DCAP quote and, optionally, the collateral to verify it.
/// </summary>
/// <remarks>
/// <para>Encoding: one CBOR map (RFC 8949, definite length, no duplicate keys, nothing after it) with text keys
/// <c>"quote"</c> → byte string, the quote exactly as the quoting library returned it (trailing zero padding allowed);
/// and optionally <c>"collateral"</c> → text string, the collateral JSON in dcap-qvl's <c>QuoteCollateralV3</c> layout
/// (see <see cref="IntelDcapVerifier"/>). No other keys.</para>
/// <para>Collateral is public, Intel-signed data, so it may travel with the evidence: the verifier checks its signatures,
/// CRLs and validity window, never trusts it for being there. A verifier configured with a collateral directory uses
/// the operator's file for the quote's FMSPC instead, when there is one.</para>
/// </remarks>
public static class IntelDcapEvidence
{
    /// <summary>Platform tag of Intel TDX evidence.</summary>
    public const string TdxPlatform = "intel-tdx";

    /// <summary>Platform tag of Intel SGX evidence.</summary>
    public const string SgxPlatform = "intel-sgx";

    /// <summary>Largest accepted evidence document.</summary>
    public const int MaxDocumentSize = DcapQuote.MaxSize + DcapCollateral.MaxSize + 1024;

    private const string QuoteKey = "quote";
    private const string CollateralKey = "collateral";

    /// <summary>The platform tag for quotes of <paramref name="tee"/>.</summary>
    public static string PlatformOf(DcapTeeType tee) => tee == DcapTeeType.Tdx ? TdxPlatform : SgxPlatform;

    /// <summary>Encodes the envelope.</summary>
    /// <param name="quote">The raw quote.</param>
    /// <param name="collateralJson">Collateral JSON, or null to leave it to the verifier's collateral directory.</param>
    public static byte[] Encode(ReadOnlySpan<byte> quote, string? collateralJson)
    {
        var w = new CborWriter(CborConformanceMode.Strict);
        w.WriteStartMap(collateralJson is null ? 1 : 2);
        w.WriteTextString(QuoteKey);
        w.WriteByteString(quote);
        if (collateralJson is not null)
        {
            w.WriteTextString(CollateralKey);
            w.WriteTextString(collateralJson);
        }
        w.WriteEndMap();
        return w.Encode();
    }

    /// <summary>Wraps a quote (and optional collateral) into evidence tagged by the quote's TEE type.</summary>
    /// <exception cref="EvidenceException">The quote is malformed.</exception>
    public static Evidence Create(ReadOnlySpan<byte> quote, string? collateralJson)
        => new(PlatformOf(DcapQuote.Parse(quote).TeeType), Encode(quote, collateralJson));

    /// <summary>Decodes the envelope; throws <see cref="EvidenceException"/> (<see cref="KeyUseRefusal.EvidenceInvalid"/>) when it is malformed.</summary>
    public static (byte[] Quote, string? CollateralJson) Decode(byte[] document)
    {
        ArgumentNullException.ThrowIfNull(document);
        if (document.Length == 0 || document.Length > MaxDocumentSize)
            throw Invalid($"Intel DCAP evidence document is {document.Length} bytes; it must be 1 to {MaxDocumentSize}");
        try
        {
            var r = new CborReader(document, CborConformanceMode.Strict);
            if (r.PeekState() != CborReaderState.StartMap)
                throw Invalid("Intel DCAP evidence document is not a CBOR map");
            var count = r.ReadStartMap() ?? throw Invalid("Intel DCAP evidence map must have a definite length");
            byte[]? quote = null;
            string? collateral = null;
            for (var i = 0; i < count; i++)
            {
                if (r.PeekState() != CborReaderState.TextString)
                    throw Invalid("Intel DCAP evidence map keys must be text strings");
                var key = r.ReadTextString();
                switch (key)
                {
                    case QuoteKey when r.PeekState() == CborReaderState.ByteString:
                        quote = r.ReadByteString();
                        break;
                    case CollateralKey when r.PeekState() == CborReaderState.TextString:
                        collateral = r.ReadTextString();
                        break;
                    case QuoteKey or CollateralKey:
                        throw Invalid($"Intel DCAP evidence member '{key}' has the wrong type ({r.PeekState()})");
                    default:
                        throw Invalid($"Intel DCAP evidence has an unknown member '{key}'");
                }
            }
            r.ReadEndMap();
            if (r.BytesRemaining != 0)
                throw Invalid($"Intel DCAP evidence has {r.BytesRemaining} bytes after the CBOR map");
            return (quote ?? throw Invalid("Intel DCAP evidence has no 'quote'"), collateral);
        }
        catch (Exception e) when (e is CborContentException or InvalidOperationException or FormatException)
        {
            throw Invalid($"Intel DCAP evidence is not a valid CBOR envelope: {e.Message}");
        }
    }

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);
}
