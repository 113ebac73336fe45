using System.Runtime.InteropServices;
using TwinSeal.Enclave;

namespace TwinSeal.Apps.Tests;

public sealed class PlatformSelfTestsTests
{
    private static readonly string[] CheckNames = ["health.rng", "kat.aes-256-gcm", "kat.hkdf-sha256", "kat.sha-256", "kat.sha-384", "pct.ecdsa-p256"];
    private static readonly string[] IdentityNames = ["identity.os", "identity.runtime"];

    [Fact]
    public void Every_known_answer_consistency_and_health_test_passes()
    {
        // A "fail" here means an expected vector in PlatformSelfTests is wrong (the primitives are the platform's own).
        var results = PlatformSelfTests.Run();

        foreach (var name in results.Keys.Where(k => k.StartsWith("kat.", StringComparison.Ordinal) || k.StartsWith("pct.", StringComparison.Ordinal) || k.StartsWith("health.", StringComparison.Ordinal)))
            Assert.True(results[name] == "pass", $"{name} reported '{results[name]}'");
    }

    [Fact]
    public void Results_name_exactly_the_checks_and_identities_the_reference_values_are_registered_for()
    {
        Assert.Equal(CheckNames.Concat(IdentityNames).Order(StringComparer.Ordinal), PlatformSelfTests.Run().Keys);
    }

    [Fact]
    public void Identity_entries_are_present_and_non_empty()
    {
        var results = PlatformSelfTests.Run();

        foreach (var name in IdentityNames)
            Assert.False(string.IsNullOrWhiteSpace(results[name]), name);
    }

    [Fact]
    public void Runtime_identity_is_the_framework_description()
    {
        Assert.Equal(RuntimeInformation.FrameworkDescription, PlatformSelfTests.Run()["identity.runtime"]);
    }

    [Fact]
    public void Two_runs_report_identical_results_so_they_can_serve_as_reference_values()
    {
        Assert.Equal(PlatformSelfTests.Run(), PlatformSelfTests.Run());
    }

    [Fact]
    public void Results_are_in_ordinal_name_order()
    {
        var keys = PlatformSelfTests.Run().Keys.ToList();

        Assert.Equal(keys.Order(StringComparer.Ordinal), keys);
    }
}
