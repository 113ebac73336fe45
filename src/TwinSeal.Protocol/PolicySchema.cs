using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;

namespace TwinSeal.Protocol;

/// <summary>The JSON Schema of a policy document, generated from the very types the KMS parses (docs/policy.schema.json is this output).</summary>
public static class PolicySchema
{
    /// <summary>The schema as indented JSON text.</summary>
    public static string Generate()
    {
        var schema = ProtocolJson.Options.GetJsonSchemaAsNode(typeof(AuthorityPolicy), new JsonSchemaExporterOptions { TreatNullObliviousAsNonNullable = true });
        var root = new JsonObject
        {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            ["$id"] = "https://twinseal.invalid/schemas/policy.schema.json",
            ["title"] = "TwinSeal key authority policy",
            ["description"] = "Usage authority (parties and the reference values of their attested apps), operation authority (operators), change method, output policy and expiry of one key.",
        };
        foreach (var (k, v) in schema.AsObject().ToList())
        {
            schema.AsObject().Remove(k);
            root[k] = v;
        }
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
