using System.Buffers.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TwinSeal.Protocol;

/// <summary>
/// The one set of JSON options every hop uses. The same options produce the canonical bytes that are hashed
/// and signed, so a policy hashes the same on the KMS, in the enclave and on both hosts.
/// </summary>
public static class ProtocolJson
{
    /// <summary>Options for wire and canonical encoding: camelCase, enums as strings, byte arrays as base64url.</summary>
    public static readonly JsonSerializerOptions Options = Create(indented: false);

    /// <summary>The same options, indented, for people.</summary>
    public static readonly JsonSerializerOptions Indented = Create(indented: true);

    private static JsonSerializerOptions Create(bool indented)
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            WriteIndented = indented,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            RespectNullableAnnotations = true,
            RespectRequiredConstructorParameters = true,
            MaxDepth = 32,
        };
        o.Converters.Add(new JsonStringEnumConverter());
        o.Converters.Add(new Base64UrlBytesConverter());
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }

    /// <summary>Canonical UTF-8 bytes of a message: what gets hashed and signed.</summary>
    public static byte[] Canonical<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Options);

    /// <summary>Parses a message, turning every JSON or shape error into a <see cref="ProtocolException"/>.</summary>
    public static T Parse<T>(ReadOnlySpan<byte> utf8, string what)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(utf8, Options)
                ?? throw new ProtocolException("malformed-request", $"{what}: the body is JSON null.");
        }
        catch (JsonException e)
        {
            throw new ProtocolException("malformed-request", $"{what}: {Describe(e)}");
        }
        catch (NotSupportedException)
        {
            // System.Text.Json raises this for a polymorphic message without (or with an unknown) "type" discriminator.
            throw new ProtocolException("malformed-request", $"{what}: the message type is missing or unknown.");
        }
    }

    private static string Describe(JsonException e)
    {
        // JsonException messages name the path and position but never echo values, so they are safe to return.
        var msg = e.Message;
        var cut = msg.IndexOf(" LineNumber", StringComparison.Ordinal);
        var where = e.Path is { Length: > 0 } p ? $" (at {p})" : "";
        return (cut > 0 ? msg[..cut].TrimEnd('.', ' ') : msg.TrimEnd('.')) + where + ".";
    }
}

/// <summary>Encodes byte arrays as unpadded base64url, as the design asks for binary payloads.</summary>
public sealed class Base64UrlBytesConverter : JsonConverter<byte[]>
{
    /// <inheritdoc />
    public override byte[] Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
            throw new JsonException("Expected a base64url string");
        var s = reader.GetString()!;
        try
        {
            return Base64Url.DecodeFromChars(s);
        }
        catch (FormatException)
        {
            throw new JsonException("Not valid base64url");
        }
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, byte[] value, JsonSerializerOptions options)
        => writer.WriteStringValue(Base64Url.EncodeToString(value));
}

/// <summary>A request or message that cannot be accepted; <see cref="Code"/> is stable, the message is for people.</summary>
public class ProtocolException(string code, string message) : Exception(message)
{
    /// <summary>Short stable reason code, e.g. <c>malformed-request</c> or <c>nonce-reused</c>.</summary>
    public string Code { get; } = code;
}
