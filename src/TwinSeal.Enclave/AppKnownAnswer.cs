using System.Text;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Enclave;

/// <summary>
/// The measured app run once, at start, on two fixed tables of a few rows whose answer is known: under e-mail
/// normalisation, a secure match's count and joined rows, a data integration's left join and an aggregate's groups. A wrong answer means the app or its engine is broken in this
/// process, and the isolated area then refuses every computation (<c>app-self-test-failed</c>) instead of releasing
/// whatever a broken engine computes. Run in the background after start, it also loads the engine's native library and
/// compiles the app's code before the first real computation, which would otherwise pay for both.
/// </summary>
public static class AppKnownAnswer
{
    private const string Own = "self";
    private const string Peer = "other";

    // Three own addresses, two of them (in another case and with spaces) also the other party's; one own cell is not an address.
    // Read by the isolated area's own CSV check, as a participant's file is.
    private static readonly Table OwnTable = TableCsv.Parse(Encoding.UTF8.GetBytes("email,tier\n a@example.org ,gold\nB@example.org,silver\nnot-an-address,bronze\nc@example.org,gold\n"), "known-answer own table");
    private static readonly Table PeerTable = TableCsv.Parse(Encoding.UTF8.GetBytes("email,visits\nb@example.org,7\nA@EXAMPLE.ORG,3\nz@example.org,1\n"), "known-answer other table");

    /// <summary>Runs the app on the fixed tables; throws <see cref="InvalidOperationException"/> naming what differed.</summary>
    public static void Check(IEnclaveApp app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var count = Run(app, Input(ResultKind.MatchCount));
        if (count.DistinctMatchedKeys != 2)
            throw new InvalidOperationException($"The app counted {count.DistinctMatchedKeys} matched keys in its known-answer test; the answer is 2.");
        Expect(app, Input(new OutputPolicy("secure-match", "email", ResultKind.JoinedRows, Own, Normalisation: KeyNormalisation.Email, ReleasedColumns: Released)),
            " a@example.org ,gold,3;B@example.org,silver,7");
        // Own rows in order, a row without a key or without a partner with empty cells of the other party.
        Expect(app, Input(new OutputPolicy("data-integration", "email", ResultKind.JoinedRows, Own, Normalisation: KeyNormalisation.Email, JoinKind: JoinKind.Left, ReleasedColumns: Released)),
            " a@example.org ,gold,3;B@example.org,silver,7;not-an-address,bronze,;c@example.org,gold,");
        // Per own tier, the other party's matched rows and their visits; then the count of suppressed groups.
        Expect(app, Input(new OutputPolicy("aggregate", "email", ResultKind.Aggregates, Own, Normalisation: KeyNormalisation.Email, GroupBy: ["tier"],
            Measures: [new AggregateMeasure(AggregateFunction.Count), new AggregateMeasure(AggregateFunction.Sum, "visits")], MinimumGroupSize: 1,
            Bounds: new Dictionary<string, IReadOnlyList<decimal>> { ["visits"] = [0m, 10m] })),
            "gold,1,3,;silver,1,7,;,,,0");
    }

    private static readonly string[] Released = ["email", "tier", "visits"];

    private static void Expect(IEnclaveApp app, AppInput input, string expected)
    {
        var rows = Run(app, input).Rows;
        var released = rows is null ? "(none)" : string.Join(";", rows.Rows.Select(r => string.Join(",", r)));
        if (released != expected)
            throw new InvalidOperationException($"The app's {input.Policy.Computation} released '{released}' in its known-answer test; the answer is '{expected}'.");
    }

    // As the isolated area runs a computation: begun on the own table, then run once the other party's is there.
    private static AppOutput Run(IEnclaveApp app, AppInput input)
    {
        using var begun = app.Begin(new AppStart(input.Own, input.Policy, input.OwnParty));
        return app.Run(input with { Begun = begun });
    }

    private static AppInput Input(ResultKind result) => Input(new OutputPolicy("secure-match", "email", result, Own, Normalisation: KeyNormalisation.Email));

    private static AppInput Input(OutputPolicy policy) => new(OwnTable, PeerTable, policy, Own, Peer);
}
