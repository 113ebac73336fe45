using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace TwinSeal.Protocol;

/// <summary>
/// How an administrative or party-to-party request is signed: the party signs method, path, timestamp,
/// request id and the body's SHA-256 with its long-term key, carried in these headers. The receiver refuses
/// a missing, wrong, stale (outside <see cref="MaxClockSkew"/>) or repeated (same request id) signature.
/// </summary>
public static class SignedRequest
{
    /// <summary>Header naming the signing party.</summary>
    public const string PartyHeader = "TwinSeal-Party";
    /// <summary>Header with Unix seconds at signing.</summary>
    public const string TimestampHeader = "TwinSeal-Timestamp";
    /// <summary>Header with a fresh random request id (replay protection).</summary>
    public const string RequestIdHeader = "TwinSeal-Request-Id";
    /// <summary>Header with the base64url ECDSA P-256 SHA-256 signature (IEEE P1363 r‖s).</summary>
    public const string SignatureHeader = "TwinSeal-Signature";

    /// <summary>How far a signed timestamp may be from the receiver's clock.</summary>
    public static readonly TimeSpan MaxClockSkew = TimeSpan.FromMinutes(5);

    /// <summary>Header with the lower-case hex SHA-256 of the body, so a receiver can check the signature before it reads a large body.</summary>
    public const string ContentHashHeader = "TwinSeal-Content-SHA256";

    /// <summary>
    /// For a dataset upload streamed as it is encrypted: the SHA-256 of the dataset's stream header, signed in place of
    /// the body hash (which nobody knows before the stream ends). Everything after the header is authenticated by the
    /// dataset's own AEAD under a key only attested apps get.
    /// </summary>
    public const string DatasetHeaderHashHeader = "TwinSeal-Dataset-Header-SHA256";

    /// <summary>The exact bytes that are signed.</summary>
    public static byte[] SigningInput(string method, string pathAndQuery, string partyId, long unixSeconds, string requestId, ReadOnlySpan<byte> body)
        => SigningInput(method, pathAndQuery, partyId, unixSeconds, requestId, Convert.ToHexStringLower(SHA256.HashData(body)));

    /// <summary>The exact bytes that are signed, for a body known by its SHA-256 (checked against the body once it has been read).</summary>
    public static byte[] SigningInput(string method, string pathAndQuery, string partyId, long unixSeconds, string requestId, string bodyHash)
    {
        var text = string.Join('\n',
            "twinseal-request-v1",
            method.ToUpperInvariant(),
            pathAndQuery,
            partyId,
            unixSeconds.ToString(CultureInfo.InvariantCulture),
            requestId,
            bodyHash);
        return Encoding.UTF8.GetBytes(text);
    }
}
