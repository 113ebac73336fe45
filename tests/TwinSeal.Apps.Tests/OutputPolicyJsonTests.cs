using System.Text;
using System.Text.Json;
using TwinSeal.Protocol;

namespace TwinSeal.Apps.Tests;

public sealed class OutputPolicyJsonTests
{
    [Fact]
    public void A_policy_that_uses_none_of_the_optional_members_serialises_exactly_as_before_they_existed()
    {
        var json = Encoding.UTF8.GetString(ProtocolJson.Canonical(new OutputPolicy("secure-match", "email", ResultKind.MatchCount, "party2")));

        Assert.Equal("""{"computation":"secure-match","keyColumn":"email","result":"MatchCount","recipient":"party2"}""", json);
    }

    [Fact]
    public void Optional_members_use_their_documented_json_names_and_round_trip()
    {
        var policy = new OutputPolicy("aggregate", "id", ResultKind.Aggregates, "party2",
            KeyColumns: ["id", "region"], Normalisation: KeyNormalisation.TrimLowerCase, ReleasedColumns: null,
            GroupBy: ["grp"], Measures: [new AggregateMeasure(AggregateFunction.Count), new AggregateMeasure(AggregateFunction.Mean, "score")], MinimumGroupSize: 5);

        var bytes = ProtocolJson.Canonical(policy);
        using var doc = JsonDocument.Parse(bytes);
        var root = doc.RootElement;

        Assert.Equal(["id", "region"], root.GetProperty("keyColumns").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("TrimLowerCase", root.GetProperty("normalisation").GetString());
        Assert.Equal("grp", root.GetProperty("groupBy")[0].GetString());
        Assert.Equal("Mean", root.GetProperty("measures")[1].GetProperty("function").GetString());
        Assert.Equal("score", root.GetProperty("measures")[1].GetProperty("column").GetString());
        Assert.Equal(5, root.GetProperty("minimumGroupSize").GetInt32());
        Assert.False(root.TryGetProperty("joinKind", out _));
        Assert.False(root.TryGetProperty("releasedColumns", out _));
        var back = ProtocolJson.Parse<OutputPolicy>(bytes, "policy");
        Assert.Equal(bytes, ProtocolJson.Canonical(back));
    }

    [Fact]
    public void Bounds_are_written_as_a_column_to_lo_hi_map_and_the_policy_hash_does_not_depend_on_their_order()
    {
        var a = new OutputPolicy("aggregate", "id", ResultKind.Aggregates, "p", Measures: [new AggregateMeasure(AggregateFunction.Sum, "x"), new AggregateMeasure(AggregateFunction.Sum, "y")],
            MinimumGroupSize: 5, Bounds: new Dictionary<string, IReadOnlyList<decimal>> { ["y"] = [-1, 1], ["x"] = [0, 2.5m] });
        var b = a with { Bounds = new Dictionary<string, IReadOnlyList<decimal>> { ["x"] = [0, 2.5m], ["y"] = [-1, 1] } };
        AuthorityPolicy Doc(OutputPolicy o) => new([], ["p"], ChangeMethod.Immutable, o);

        Assert.Contains("\"bounds\":{\"x\":[0,2.5],\"y\":[-1,1]}", Encoding.UTF8.GetString(ProtocolJson.Canonical(PolicyDocument.Canonicalise(Doc(a)))), StringComparison.Ordinal);
        Assert.Equal(PolicyDocument.Hash(Doc(a)), PolicyDocument.Hash(Doc(b)));
    }

    [Fact]
    public void Join_kind_and_released_columns_are_written_when_set()
    {
        var json = Encoding.UTF8.GetString(ProtocolJson.Canonical(new OutputPolicy("data-integration", "id", ResultKind.JoinedRows, "p", JoinKind: JoinKind.FullOuter, ReleasedColumns: ["a"])));

        Assert.Contains("\"joinKind\":\"FullOuter\"", json, StringComparison.Ordinal);
        Assert.Contains("\"releasedColumns\":[\"a\"]", json, StringComparison.Ordinal);
    }

    [Fact]
    public void Spelling_out_a_default_value_gives_the_same_policy_hash_as_leaving_it_out()
    {
        var implicitDefaults = """{"usage":[],"operators":["p"],"changeMethod":"Immutable","output":{"computation":"secure-match","keyColumn":"k","result":"MatchCount","recipient":"p"}}""";
        var explicitDefaults = """{"usage":[],"operators":["p"],"changeMethod":"Immutable","output":{"computation":"secure-match","keyColumn":"k","result":"MatchCount","recipient":"p","normalisation":"None","joinKind":"Inner","keyColumns":null,"minimumGroupSize":null}}""";

        var a = ProtocolJson.Parse<AuthorityPolicy>(Encoding.UTF8.GetBytes(implicitDefaults), "policy");
        var b = ProtocolJson.Parse<AuthorityPolicy>(Encoding.UTF8.GetBytes(explicitDefaults), "policy");

        Assert.Equal(PolicyDocument.Hash(a), PolicyDocument.Hash(b));
    }

    [Fact]
    public void An_unknown_normalisation_name_is_a_malformed_request()
    {
        var json = """{"computation":"secure-match","keyColumn":"k","result":"MatchCount","recipient":"p","normalisation":"Soundex"}""";

        var e = Assert.Throws<ProtocolException>(() => ProtocolJson.Parse<OutputPolicy>(Encoding.UTF8.GetBytes(json), "policy"));

        Assert.Equal("malformed-request", e.Code);
    }
}
