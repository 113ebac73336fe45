using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Enclave;

/// <summary>
/// Holds each party's table to the schema the parties agreed in the key's policy (<see cref="UsageGrant.Schema"/>):
/// the sender's area checks its own table before encrypting, the receiver's checks both tables before computing.
/// </summary>
public static class AgreedSchema
{
    /// <summary>Throws <c>schema-mismatch</c> when <paramref name="table"/> differs from the schema agreed for <paramref name="party"/>; no schema agreed means no check.</summary>
    public static void Check(AuthorityPolicy policy, string party, Table table, string what)
    {
        var schema = policy.Usage.FirstOrDefault(g => g.PartyId == party)?.Schema;
        if (schema is null) return;
        var context = $"{what} of '{party}' against the schema agreed in the policy";
        TableLoader.CompareSchema(table.Columns, null, schema, context);
        for (var c = 0; c < schema.Count; c++)
        {
            var spec = schema[c];
            if (spec.Type is null && !spec.Required) continue;
            for (var r = 0; r < table.Rows.Count; r++)
            {
                if (CellTypes.Problem(spec, table.Rows[r][c]) is { } problem)
                    throw new ProtocolException("schema-mismatch", $"{context}: data row {r + 1}, column '{spec.Name}': {problem}.");
            }
        }
    }
}
