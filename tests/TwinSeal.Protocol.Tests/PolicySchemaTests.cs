using System.Text.Json;
using TwinSeal.Protocol;

namespace TwinSeal.Protocol.Tests;

public sealed class PolicySchemaTests
{
    private static string RepoFile(string relative)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "TwinSeal.slnx"))) dir = dir.Parent;
        return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("repository root not found"), relative);
    }

    [Fact]
    public void ShippedSchema_IsExactlyTheSchemaOfThePolicyTypes()
    {
        // Regenerate with: dotnet run --project src/TwinSeal.Cli -- policy schema > docs/policy.schema.json
        Assert.Equal(PolicySchema.Generate(), File.ReadAllText(RepoFile("docs/policy.schema.json")).ReplaceLineEndings("\n"));
    }

    [Fact]
    public void Schema_NamesEveryPolicyMember_AndTheChangeMethods()
    {
        using var doc = JsonDocument.Parse(PolicySchema.Generate());
        var props = doc.RootElement.GetProperty("properties");
        foreach (var member in new[] { "usage", "operators", "changeMethod", "output", "quorum", "expiresAt" })
            Assert.True(props.TryGetProperty(member, out _), member);
        var methods = props.GetProperty("changeMethod").GetProperty("enum").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Equal(["Immutable", "AllParties", "Quorum"], methods);
    }

    [Fact]
    public void PolicyHash_DoesNotDependOnPlatformTestOrder()
    {
        var a = Policy(new Dictionary<string, string> { ["a"] = "1", ["b"] = "2" });
        var b = Policy(new Dictionary<string, string> { ["b"] = "2", ["a"] = "1" });
        Assert.Equal(PolicyDocument.Hash(a), PolicyDocument.Hash(b));
    }

    [Fact]
    public void PolicyHash_ChangesWithAnyReferenceValue()
    {
        var a = Policy(new Dictionary<string, string> { ["a"] = "1" });
        var b = Policy(new Dictionary<string, string> { ["a"] = "2" });
        Assert.NotEqual(PolicyDocument.Hash(a), PolicyDocument.Hash(b));
    }

    [Theory]
    [InlineData("{")]
    [InlineData("{\"usage\": []}")]
    [InlineData("{\"usage\":[],\"operators\":[],\"changeMethod\":\"Sometimes\",\"output\":{\"computation\":\"x\",\"keyColumn\":\"k\",\"result\":\"MatchCount\",\"recipient\":\"p\"}}")]
    [InlineData("{\"usage\":[],\"operators\":[],\"changeMethod\":\"Immutable\",\"output\":{\"computation\":\"x\",\"keyColumn\":\"k\",\"result\":\"MatchCount\",\"recipient\":\"p\"},\"surprise\":1}")]
    public void MalformedPolicy_IsRefusedAsMalformedRequest(string json)
    {
        var e = Assert.Throws<ProtocolException>(() => ProtocolJson.Parse<AuthorityPolicy>(System.Text.Encoding.UTF8.GetBytes(json), "policy"));
        Assert.Equal("malformed-request", e.Code);
    }

    private static AuthorityPolicy Policy(Dictionary<string, string> tests) => new(
        [new UsageGrant("p1", new ReferenceValues("sim", [new string('a', 96)], tests))],
        ["p1"], ChangeMethod.AllParties, new OutputPolicy("secure-match", "email", ResultKind.MatchCount, "p1"));
}
