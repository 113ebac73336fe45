using TwinSeal.Protocol;

namespace TwinSeal.Apps;

/// <summary>
/// The app's own reading of the output policy: before any data is touched, every request outside the policy is
/// refused with <c>outside-output-policy</c>. The KMS checks the same rules when the policy is agreed
/// (<c>invalid-policy</c>); the app checks them again because it, not the KMS, holds the data.
/// </summary>
internal static class OutputPolicyCheck
{
    /// <summary>The key columns the policy joins on: <see cref="OutputPolicy.KeyColumns"/>, or just <see cref="OutputPolicy.KeyColumn"/>.</summary>
    public static IReadOnlyList<string> KeyColumns(OutputPolicy p) => p.KeyColumns ?? [p.KeyColumn];

    /// <summary>Throws <see cref="ProtocolException"/> (<c>outside-output-policy</c>) unless the policy is one this app may run for <paramref name="ownParty"/>.</summary>
    public static void Enforce(OutputPolicy p, string ownParty)
    {
        if (!Computations.All.Contains(p.Computation, StringComparer.Ordinal))
            throw Refuse($"The output policy names computation '{p.Computation}'; this app runs {string.Join(", ", Computations.All)}.");
        // Whatever is released (rows, counts or aggregates) goes only to the recipient the parties agreed on.
        if (!string.Equals(p.Recipient, ownParty, StringComparison.Ordinal))
            throw Refuse($"The output policy releases its result ({p.Result}) to '{p.Recipient}', not to '{ownParty}'.");
        if (!Enum.IsDefined(p.Result)) throw Refuse($"The output policy names an unknown result kind ({(int)p.Result}).");
        if (!Enum.IsDefined(p.Normalisation)) throw Refuse($"The output policy names an unknown key normalisation ({(int)p.Normalisation}).");
        if (!Enum.IsDefined(p.JoinKind)) throw Refuse($"The output policy names an unknown join kind ({(int)p.JoinKind}).");

        var allowed = p.Computation switch
        {
            Computations.SecureMatch => [ResultKind.MatchCount, ResultKind.JoinedRows, ResultKind.IntersectionSize],
            Computations.DataIntegration => [ResultKind.JoinedRows],
            _ => new[] { ResultKind.Aggregates },
        };
        if (!allowed.Contains(p.Result))
            throw Refuse($"Computation '{p.Computation}' releases {string.Join(" or ", allowed)}, not {p.Result}.");
        var outer = p.JoinKind is JoinKind.Left or JoinKind.FullOuter;
        if (p.Computation == Computations.DataIntegration ? !outer : outer)
            throw Refuse($"Computation '{p.Computation}' does not run a {p.JoinKind} join.");

        var keys = KeyColumns(p);
        if (keys.Count == 0 || keys.Any(string.IsNullOrEmpty)) throw Refuse("The output policy must name the key column(s), none of them empty.");
        if (keys.Distinct(StringComparer.Ordinal).Count() != keys.Count) throw Refuse("The output policy names a key column twice.");
        if (p.KeyColumns is not null && !string.Equals(p.KeyColumn, keys[0], StringComparison.Ordinal))
            throw Refuse($"The output policy's keyColumn '{p.KeyColumn}' must repeat the first of its keyColumns ('{keys[0]}').");

        if (p.MinimumOwnRows is { } minimumOwn)
        {
            if (p.Result is not (ResultKind.MatchCount or ResultKind.IntersectionSize)) throw Refuse($"A minimum own table size only applies to MatchCount and IntersectionSize, not to {p.Result}.");
            if (minimumOwn < 1) throw Refuse("A minimum own table size must be at least 1.");
        }
        if (p.ReleasedColumns is { } released)
        {
            if (p.Result != ResultKind.JoinedRows) throw Refuse($"Released columns only apply to joined rows, not to {p.Result}.");
            if (released.Count == 0 || released.Any(string.IsNullOrEmpty)) throw Refuse("Released columns must name at least one column, none of them empty (leave them out to release all).");
            if (released.Distinct(StringComparer.Ordinal).Count() != released.Count) throw Refuse("Released columns name a column twice.");
            if (released.All(c => keys.Contains(c, StringComparer.Ordinal))) throw Refuse("Released columns name only key columns.");
        }

        if (p.Computation != Computations.Aggregate)
        {
            if (p.GroupBy is not null || p.Measures is not null || p.MinimumGroupSize is not null || p.Bounds is not null)
                throw Refuse($"Group-by columns, measures, bounds and a minimum group size only apply to 'aggregate', not to '{p.Computation}'.");
            return;
        }
        if (p.MinimumGroupSize is not { } k || k < 1) throw Refuse("An aggregate needs a minimum group size of at least 1.");
        if (p.Measures is not { Count: > 0 } measures) throw Refuse("An aggregate needs at least one measure.");
        foreach (var m in measures)
        {
            if (m is null || !Enum.IsDefined(m.Function)) throw Refuse("The output policy names an unknown aggregate function.");
            if (m.Function != AggregateFunction.Count && string.IsNullOrEmpty(m.Column)) throw Refuse($"Measure {m.Function} needs a column.");
            if (m.Column is { Length: 0 }) throw Refuse("A measure's column must not be empty (leave it out to count rows).");
        }
        if (measures.Distinct().Count() != measures.Count) throw Refuse("The output policy names a measure twice.");
        var summed = measures.Where(m => m.Function != AggregateFunction.Count).Select(m => m.Column!).ToHashSet(StringComparer.Ordinal);
        var bounds = p.Bounds ?? new Dictionary<string, IReadOnlyList<decimal>>();
        if (summed.FirstOrDefault(c => !bounds.ContainsKey(c)) is { } unbounded) throw Refuse($"Column '{unbounded}' is summed or averaged, so the output policy must give its bounds [lo, hi].");
        foreach (var (column, b) in bounds)
        {
            if (!summed.Contains(column)) throw Refuse($"The output policy gives bounds for '{column}', which no sum or mean reads.");
            if (b is not { Count: 2 } || b[0] > b[1]) throw Refuse($"The bounds of '{column}' must be two numbers [lo, hi] with lo ≤ hi.");
        }
        if (p.GroupBy is { } groupBy)
        {
            if (groupBy.Any(string.IsNullOrEmpty)) throw Refuse("Group-by columns must not be empty.");
            if (groupBy.Distinct(StringComparer.Ordinal).Count() != groupBy.Count) throw Refuse("The output policy names a group-by column twice.");
        }
    }

    private static ProtocolException Refuse(string message) => new("outside-output-policy", message);
}
