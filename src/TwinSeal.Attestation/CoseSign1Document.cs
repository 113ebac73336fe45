using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Security.Cryptography.Cose;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation;

/// <summary>
/// Decodes the COSE_Sign1 envelope that simulated and AWS Nitro evidence share, turning every way the .NET decoder can
/// fail on hostile bytes into an <see cref="EvidenceException"/>.
/// </summary>
/// <remarks>
/// <see cref="CoseMessage.DecodeSign1(byte[])"/> documents only <see cref="CryptographicException"/>, but a header with a
/// huge integer label surfaces as <see cref="OverflowException"/> and malformed CBOR as
/// <see cref="CborContentException"/> or <see cref="InvalidOperationException"/>; all of them are invalid evidence.
/// </remarks>
internal static class CoseSign1Document
{
    /// <summary>Decodes <paramref name="document"/> and returns its algorithm and attached payload.</summary>
    /// <param name="document">The encoded COSE_Sign1 message, with or without CBOR tag 18.</param>
    /// <param name="what">What the document is called in error messages ("evidence", "attestation document").</param>
    public static (CoseSign1Message Message, int Algorithm, byte[] Content) Decode(byte[] document, string what)
    {
        CoseSign1Message message;
        try
        {
            message = CoseMessage.DecodeSign1(document);
        }
        catch (Exception e) when (IsDecodeFailure(e))
        {
            throw Invalid($"{what} is not a COSE_Sign1 message: {e.Message}");
        }

        if (!message.ProtectedHeaders.TryGetValue(CoseHeaderLabel.Algorithm, out var alg))
            throw Invalid($"{what} has no algorithm in its protected header");
        int algorithm;
        try
        {
            algorithm = alg.GetValueAsInt32();
        }
        catch (Exception e) when (IsDecodeFailure(e))
        {
            throw Invalid($"{what} algorithm is not a small integer: {e.Message}");
        }
        if (message.Content is not { } content)
            throw Invalid($"{what} has a detached payload");
        return (message, algorithm, content.ToArray());
    }

    /// <summary>Whether <paramref name="e"/> is one of the ways decoding hostile CBOR or COSE bytes fails.</summary>
    private static bool IsDecodeFailure(Exception e)
        => e is CryptographicException or CborContentException or InvalidOperationException or ArgumentException
            or OverflowException or FormatException;

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);
}
