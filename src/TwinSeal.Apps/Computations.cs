namespace TwinSeal.Apps;

/// <summary>The computation names an output policy may carry; the one app of the bundle dispatches on them.</summary>
internal static class Computations
{
    public const string SecureMatch = "secure-match";
    public const string DataIntegration = "data-integration";
    public const string Aggregate = "aggregate";

    public static readonly IReadOnlyList<string> All = [SecureMatch, DataIntegration, Aggregate];
}
