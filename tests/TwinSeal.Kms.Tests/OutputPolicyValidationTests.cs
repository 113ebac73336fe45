using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>
/// The KMS refuses (invalid-policy) exactly the output policies the app refuses: both run <see cref="OutputPolicy.IsValid"/>,
/// and both are run on the same cases (<see cref="OutputPolicyCases"/>; the app side is in the app tests).
/// </summary>
public sealed class OutputPolicyValidationTests(SharedKms kms) : IClassFixture<SharedKms>
{
    private KmsTestBed Bed => kms.Bed;

    private async Task<ProposalStatus> ProposeAsync(OutputPolicy output)
    {
        var key = await Bed.Party1.Client.CreateKeyAsync("output policy");
        return await Bed.Party1.Client.ProposeAsync(key.KeyId, new ChangeProposal(0, KmsTestBed.Policy() with { Output = output }));
    }

    public static TheoryData<string, OutputPolicy> Valid() => OutputPolicyCases.Valid();

    public static TheoryData<string, OutputPolicy> Invalid() => OutputPolicyCases.Invalid();

    [Theory]
    [MemberData(nameof(Valid))]
    public async Task A_valid_output_policy_is_accepted(string why, OutputPolicy output)
    {
        _ = why;
        Assert.Equal("pending", (await ProposeAsync(output)).Status);
    }

    [Theory]
    [MemberData(nameof(Invalid))]
    public async Task An_invalid_output_policy_is_refused(string why, OutputPolicy output)
    {
        _ = why;
        await KmsTestBed.AssertProblemAsync(400, "invalid-policy", () => ProposeAsync(output));
    }
}
