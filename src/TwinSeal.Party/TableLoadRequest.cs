using Microsoft.AspNetCore.Http;
using TwinSeal.Protocol;

namespace TwinSeal.Party;

/// <summary>
/// Turns <c>PUT /control/v1/tables/{name}</c> into the isolated area's <see cref="LoadTable"/> command. The body is the
/// file; the query says how to read it:
/// <list type="bullet">
/// <item><c>format</c> = <c>csv</c> | <c>parquet</c>. Without it the content type decides
/// (<c>application/vnd.apache.parquet</c>, <c>application/parquet</c> or <c>application/x-parquet</c> → Parquet), else CSV.</item>
/// <item><c>schema</c> = the expected columns in order: a JSON array of <see cref="ColumnSpec"/>
/// (<c>[{"name":"id","type":"int","required":true}]</c>), or the short form <c>id:int!,name,amount:decimal</c>
/// (<c>:type</c> optional, a trailing <c>!</c> = required; names holding <c>,</c> <c>:</c> or <c>!</c> need the JSON form).</item>
/// <item><c>skipBadRows</c> = <c>true</c> to skip and count bad rows instead of refusing the file.</item>
/// <item><c>source</c> = the file name, for messages.</item>
/// <item><c>path</c> = instead of a body, a file the host reads from its own disk: absolute, or relative to the host's
/// import folder, and only inside it (<see cref="ImportFolder"/>); its file name is the default <c>source</c>.</item>
/// </list>
/// </summary>
public static class TableLoadRequest
{
    private static readonly string[] ParquetContentTypes = ["application/vnd.apache.parquet", "application/parquet", "application/x-parquet"];

    /// <summary>The load command for <paramref name="table"/> from the request's query and content type.</summary>
    public static LoadTable From(string table, HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var q = request.Query;
        var source = q["source"].ToString() is { Length: > 0 } named ? named : Path.GetFileName(HostPath(request));
        return From(table, q["format"].ToString(), request.ContentType, q["schema"].ToString(), q["skipBadRows"].ToString(), source);
    }

    /// <summary>The <c>path</c> query value, or null when the file is the body; a request with both is refused.</summary>
    public static string? HostPath(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Query["path"].ToString() is not { Length: > 0 } path) return null;
        // A body of unknown length (chunked, or HTTP/2 without Content-Length) counts as one too.
        var body = request.ContentLength is > 0
            || (request.ContentLength is null && request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true);
        if (body) throw Bad("give the file either as the body or as path (read by the host from its import folder), not both.");
        return path;
    }

    /// <summary>The load command from the query values (empty = absent).</summary>
    public static LoadTable From(string table, string? format, string? contentType, string? schema, string? skipBadRows, string? source)
    {
        var fmt = format switch
        {
            null or "" => IsParquet(contentType) ? TableFormat.Parquet : TableFormat.Csv,
            _ when format.Equals("csv", StringComparison.OrdinalIgnoreCase) => TableFormat.Csv,
            _ when format.Equals("parquet", StringComparison.OrdinalIgnoreCase) => TableFormat.Parquet,
            _ => throw Bad("format must be csv or parquet."),
        };
        var skip = skipBadRows switch
        {
            null or "" => false,
            _ when bool.TryParse(skipBadRows, out var b) => b,
            _ => throw Bad("skipBadRows must be true or false."),
        };
        string? name = string.IsNullOrWhiteSpace(source) ? null : Path.GetFileName(source.Trim());
        if (name is { Length: > 200 }) throw Bad("source (the file name) is at most 200 characters.");
        return new LoadTable(table, fmt, ParseSchema(schema), skip, string.IsNullOrEmpty(name) ? null : name);
    }

    /// <summary>The <c>schema</c> query value: a JSON array of <see cref="ColumnSpec"/>, or <c>name[:type][!]</c> items separated by commas.</summary>
    public static IReadOnlyList<ColumnSpec>? ParseSchema(string? schema)
    {
        if (string.IsNullOrWhiteSpace(schema)) return null;
        schema = schema.Trim();
        if (schema.StartsWith('[')) return ProtocolJson.Parse<List<ColumnSpec>>(System.Text.Encoding.UTF8.GetBytes(schema), "schema");
        var specs = new List<ColumnSpec>();
        foreach (var item in schema.Split(','))
        {
            var s = item.Trim();
            var required = s.EndsWith('!');
            if (required) s = s[..^1];
            var colon = s.IndexOf(':', StringComparison.Ordinal);
            var (name, type) = colon < 0 ? (s, null) : (s[..colon].Trim(), s[(colon + 1)..].Trim());
            if (name.Length == 0) throw Bad("schema has an empty column name.");
            specs.Add(new ColumnSpec(name, string.IsNullOrEmpty(type) ? null : type, required));
        }
        return specs;
    }

    private static bool IsParquet(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType)) return false;
        var media = contentType.Split(';')[0].Trim();
        return ParquetContentTypes.Any(p => p.Equals(media, StringComparison.OrdinalIgnoreCase));
    }

    private static ProtocolException Bad(string message) => new("malformed-request", "Table load: " + message);
}
