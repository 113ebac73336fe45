using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;
using TwinSeal.Tests.Shared;

namespace TwinSeal.Apps.Tests;

/// <summary>
/// The app refuses (outside-output-policy) exactly the output policies the KMS refuses: both run
/// <see cref="OutputPolicy.IsValid"/>, and both are run on the same cases (the KMS side is in the KMS tests).
/// </summary>
public sealed class OutputPolicySharedCasesTests
{
    private static readonly SecureMatchApp App = new();

    private static readonly Table Data = Tables.Of(["id", "region", "score"], ["k", "r", "1"]);

    private static AppOutput Run(OutputPolicy policy) => App.Run(new AppInput(Data, Data, policy, OutputPolicyCases.Recipient, "party2"));

    public static TheoryData<string, OutputPolicy> Valid() => OutputPolicyCases.Valid();

    public static TheoryData<string, OutputPolicy> Invalid() => OutputPolicyCases.Invalid();

    [Theory]
    [MemberData(nameof(Valid))]
    public void A_valid_output_policy_runs(string why, OutputPolicy output)
    {
        _ = why;
        Assert.True(output.IsValid(out var problem), problem);
        Assert.True(Run(output).Rows is not null || Run(output).DistinctMatchedKeys is not null);
    }

    [Theory]
    [MemberData(nameof(Invalid))]
    public void An_invalid_output_policy_is_refused_before_any_data_is_touched(string why, OutputPolicy output)
    {
        _ = why;
        Assert.False(output.IsValid(out _));
        Assert.Equal("outside-output-policy", Assert.Throws<ProtocolException>(() => Run(output)).Code);
    }
}
