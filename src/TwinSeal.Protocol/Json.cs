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

    private static readonly Lazy<Task> Warming = new(() => Task.Run(Warm));

    /// <summary>
    /// Starts, once per process and on a worker thread, building what System.Text.Json needs for every message type of
    /// this assembly (metadata, property accessors, converters) by writing and reading back an empty instance of each.
    /// The services run with tiered compilation off, so each of those is otherwise compiled, fully optimised, when the
    /// first message of its type passes: in a computation's path, on cores its isolated areas need. Long-running
    /// services (KMS, party host, isolated area) call this when they start.
    /// </summary>
    public static void WarmInBackground() => _ = Warming.Value;

    /// <summary>What <see cref="WarmInBackground"/> runs, on the calling thread.</summary>
    internal static void Warm()
    {
        // An empty instance is not a valid message (its required members are null), so it is written and read back with
        // the same converters but without those checks: the compiled converter code is shared by both option sets, the
        // metadata is built for the real ones.
        var lenient = new JsonSerializerOptions(Options) { RespectNullableAnnotations = false, RespectRequiredConstructorParameters = false };
        foreach (var type in typeof(ProtocolJson).Assembly.GetExportedTypes())
        {
            if (!type.IsClass || type.IsAbstract || type.ContainsGenericParameters || type.IsSubclassOf(typeof(Exception)) || type.IsSubclassOf(typeof(Stream))) continue;
            try
            {
                if (Options.GetTypeInfo(type).Kind != System.Text.Json.Serialization.Metadata.JsonTypeInfoKind.Object) continue;
                var json = JsonSerializer.SerializeToUtf8Bytes(System.Runtime.CompilerServices.RuntimeHelpers.GetUninitializedObject(type), type, lenient);
                JsonSerializer.Deserialize(json, type, lenient);
            }
            catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException or ArgumentException)
            {
                // A type that no empty instance can pass through (a converter that needs a value): what was built stays built.
            }
        }
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
