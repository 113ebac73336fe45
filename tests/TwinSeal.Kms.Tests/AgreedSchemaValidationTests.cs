using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>The KMS refuses a policy whose agreed table schema cannot be enforced.</summary>
public sealed class AgreedSchemaValidationTests(SharedKms kms) : IClassFixture<SharedKms>
{
    private KmsTestBed Bed => kms.Bed;

    private async Task ProposeAsync(IReadOnlyList<ColumnSpec> schema)
    {
        var key = await Bed.Party1.Client.CreateKeyAsync("schema");
        var policy = KmsTestBed.Policy() with
        {
            Usage = [new UsageGrant("party1", KmsTestBed.GenuineReferenceValues(), schema), new UsageGrant("party2", KmsTestBed.GenuineReferenceValues())],
        };
        await Bed.Party1.Client.ProposeAsync(key.KeyId, new ChangeProposal(0, policy));
    }

    [Fact]
    public Task Schema_WithAnUnknownType_IsRefused()
        => KmsTestBed.AssertProblemAsync(400, "invalid-policy", () => ProposeAsync([new ColumnSpec("id", "integer")]));

    [Fact]
    public Task Schema_WithARepeatedColumn_IsRefused()
        => KmsTestBed.AssertProblemAsync(400, "invalid-policy", () => ProposeAsync([new ColumnSpec("id"), new ColumnSpec("id")]));

    [Fact]
    public Task Schema_WithNoColumns_IsRefused()
        => KmsTestBed.AssertProblemAsync(400, "invalid-policy", () => ProposeAsync([]));

    [Fact]
    public async Task Schema_WithKnownTypes_IsAccepted()
        => await ProposeAsync([new ColumnSpec("id", ColumnTypes.Int, Required: true), new ColumnSpec("email")]);
}
