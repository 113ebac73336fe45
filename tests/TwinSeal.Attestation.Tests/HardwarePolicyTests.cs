using TwinSeal.Protocol;
using static TwinSeal.Attestation.Tests.HardwareSampleClaims;

namespace TwinSeal.Attestation.Tests;

/// <summary>
/// <see cref="ReferenceValueMatcher"/> on claims the real verifiers produced from the real Nitro, SEV-SNP, TDX (and SGX,
/// MAA) samples: a matching set of reference values passes; one that differs in one measurement, in a minimum TCB or in
/// debug fails, each with the refusal and a reason naming what differs.
/// </summary>
public sealed class HardwarePolicyTests
{
    private static (KeyUseRefusal Refusal, string Reason) Refused(NormalisedClaims claims, ReferenceValues reference)
    {
        var result = ReferenceValueMatcher.Check(claims, reference);
        Assert.True(result is not null, "the claims were accepted");
        return result.Value;
    }

    private static string Flip(string hex) => (hex[0] == '0' ? "1" : "0") + hex[1..];

    // ───────────── AWS Nitro ─────────────

    // PCR4 (instance id) and module_id are per launch, so they are not registered.
    private static ReferenceValues NitroReference(string? pcr0 = null, string? pcr2 = null, IReadOnlyDictionary<string, long>? minimumTcb = null, bool allowDebug = false)
        => new("aws-nitro", [pcr0 ?? NitroPcr0],
            new Dictionary<string, string> { ["pcr1"] = NitroPcr1, ["pcr2"] = pcr2 ?? NitroPcr2, ["pcr8"] = NitroPcr8 },
            AllowDebug: allowDebug, MinimumTcb: minimumTcb);

    [Fact]
    public void Nitro_sample_passes_reference_values_registering_PCR0_as_measurement_and_PCR1_2_8()
    {
        var claims = Nitro();

        Assert.Equal(NitroPcr0, claims.Measurement);
        Assert.False(claims.Debug);
        Assert.Null(ReferenceValueMatcher.Check(claims, NitroReference()));
    }

    [Fact]
    public void Nitro_sample_fails_reference_values_with_another_PCR0()
    {
        var (refusal, reason) = Refused(Nitro(), NitroReference(pcr0: Flip(NitroPcr0)));

        Assert.Equal(KeyUseRefusal.MeasurementMismatch, refusal);
        Assert.Contains(NitroPcr0, reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Nitro_sample_fails_reference_values_with_another_PCR2()
    {
        var (refusal, reason) = Refused(Nitro(), NitroReference(pcr2: Flip(NitroPcr2)));

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Contains("'pcr2'", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Nitro_sample_fails_a_minimum_TCB_because_Nitro_reports_no_TCB_component()
    {
        var (refusal, reason) = Refused(Nitro(), NitroReference(minimumTcb: new Dictionary<string, long> { ["tcb.snp"] = 1 }));

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Contains("'tcb.snp' is missing", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Nitro_claims_from_a_debug_enclave_fail_unless_the_reference_values_allow_debug()
    {
        // The sample is not a debug enclave; a debug one (which the verifier passes through as a claim in the KMS) differs only in Debug here.
        var debug = Nitro() with { Debug = true };

        var (refusal, reason) = Refused(debug, NitroReference());

        Assert.Equal(KeyUseRefusal.DebugNotAllowed, refusal);
        Assert.Contains("debuggable aws-nitro", reason, StringComparison.Ordinal);
        Assert.Null(ReferenceValueMatcher.Check(debug, NitroReference(allowDebug: true)));
    }

    // ───────────── AMD SEV-SNP ─────────────

    private static ReferenceValues SnpReference(string? measurement = null, IReadOnlyDictionary<string, long>? minimumTcb = null, bool allowDebug = true)
        => new("amd-sev-snp", [measurement ?? SnpMeasurement],
            new Dictionary<string, string> { ["product"] = "Milan", ["signing_key"] = "vcek", ["vmpl"] = "0" },
            AllowDebug: allowDebug,
            MinimumTcb: minimumTcb ?? new Dictionary<string, long> { ["tcb.bootloader"] = 2, ["tcb.tee"] = 0, ["tcb.snp"] = 5, ["tcb.microcode"] = 68 });

    [Fact]
    public void Snp_sample_passes_reference_values_with_its_measurement_its_TCB_as_minimum_and_debug_allowed()
    {
        var claims = Snp();

        Assert.Equal(SnpMeasurement, claims.Measurement);
        Assert.True(claims.Debug);
        Assert.Equal("5", claims.PlatformTests["tcb.snp"]);
        Assert.Null(ReferenceValueMatcher.Check(claims, SnpReference()));
    }

    [Fact]
    public void Snp_sample_fails_reference_values_with_another_measurement()
    {
        var (refusal, reason) = Refused(Snp(), SnpReference(measurement: Flip(SnpMeasurement)));

        Assert.Equal(KeyUseRefusal.MeasurementMismatch, refusal);
        Assert.Contains(SnpMeasurement, reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Snp_sample_fails_a_minimum_SNP_firmware_TCB_above_its_own_naming_component_value_and_minimum()
    {
        var minimum = new Dictionary<string, long> { ["tcb.bootloader"] = 2, ["tcb.snp"] = 6, ["tcb.microcode"] = 68 };

        var (refusal, reason) = Refused(Snp(), SnpReference(minimumTcb: minimum));

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Equal("TCB component 'tcb.snp' is 5, below the registered minimum 6", reason);
    }

    [Fact]
    public void Snp_sample_fails_a_minimum_microcode_above_its_own()
    {
        var (refusal, reason) = Refused(Snp(), SnpReference(minimumTcb: new Dictionary<string, long> { ["tcb.microcode"] = 69 }));

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Equal("TCB component 'tcb.microcode' is 68, below the registered minimum 69", reason);
    }

    [Fact]
    public void Snp_sample_is_a_debug_guest_and_fails_reference_values_that_do_not_allow_debug()
    {
        var (refusal, reason) = Refused(Snp(), SnpReference(allowDebug: false));

        Assert.Equal(KeyUseRefusal.DebugNotAllowed, refusal);
        Assert.Contains("debuggable amd-sev-snp", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Snp_sample_fails_an_accepted_TCB_status_rule_because_SNP_reports_no_status()
    {
        var (refusal, reason) = Refused(Snp(), SnpReference() with { AcceptedTcbStatuses = ["UpToDate"] });

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Contains("no TCB status", reason, StringComparison.Ordinal);
    }

    // ───────────── Intel TDX ─────────────

    private static ReferenceValues TdxReference(string? mrtd = null, string? rtmr1 = null, IReadOnlyList<string>? statuses = null, bool allowDebug = false)
    {
        var claims = Tdx();
        return new("intel-tdx", [mrtd ?? TdxMrtd],
            new Dictionary<string, string>
            {
                ["rtmr0"] = claims.PlatformTests["rtmr0"],
                ["rtmr1"] = rtmr1 ?? claims.PlatformTests["rtmr1"],
                ["rtmr2"] = claims.PlatformTests["rtmr2"],
                ["mrseam"] = claims.PlatformTests["mrseam"],
            },
            AllowDebug: allowDebug, AcceptedTcbStatuses: statuses ?? ["UpToDate"]);
    }

    [Fact]
    public void Tdx_sample_passes_reference_values_with_its_MRTD_RTMRs_and_UpToDate_accepted()
    {
        var claims = Tdx();

        Assert.Equal(TdxMrtd, claims.Measurement);
        Assert.Equal("UpToDate", claims.PlatformTests["tcb.status"]);
        Assert.Null(ReferenceValueMatcher.Check(claims, TdxReference()));
    }

    [Fact]
    public void Tdx_sample_fails_reference_values_with_another_MRTD()
    {
        var (refusal, reason) = Refused(Tdx(), TdxReference(mrtd: Flip(TdxMrtd)));

        Assert.Equal(KeyUseRefusal.MeasurementMismatch, refusal);
        Assert.Contains(TdxMrtd, reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Tdx_sample_fails_reference_values_with_another_RTMR1()
    {
        var (refusal, reason) = Refused(Tdx(), TdxReference(rtmr1: Flip(Tdx().PlatformTests["rtmr1"])));

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Contains("'rtmr1'", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Tdx_sample_fails_a_TCB_rule_that_accepts_only_statuses_other_than_its_UpToDate()
    {
        // TDX claims carry the evaluated TCB status, not numeric components: the minimum TCB is the set of accepted statuses.
        var (refusal, reason) = Refused(Tdx(), TdxReference(statuses: ["OutOfDate"]));

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Equal("TCB status is UpToDate, the reference values accept only OutOfDate", reason);
    }

    [Fact]
    public void Tdx_sample_fails_a_numeric_minimum_TCB_on_a_component_TDX_claims_do_not_carry()
    {
        var (refusal, reason) = Refused(Tdx(), TdxReference() with { MinimumTcb = new Dictionary<string, long> { ["tcb.tee_tcb_svn"] = 1 } });

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Contains("'tcb.tee_tcb_svn' is missing", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Tdx_claims_from_a_debug_TD_fail_unless_the_reference_values_allow_debug()
    {
        var debug = Tdx() with { Debug = true };

        var (refusal, _) = Refused(debug, TdxReference());

        Assert.Equal(KeyUseRefusal.DebugNotAllowed, refusal);
        Assert.Null(ReferenceValueMatcher.Check(debug, TdxReference(allowDebug: true)));
    }

    // ───────────── Intel SGX and Azure MAA ─────────────

    [Fact]
    public void Sgx_sample_status_ConfigurationAndSWHardeningNeeded_passes_only_when_accepted_and_the_refusal_names_the_advisories()
    {
        var claims = Sgx();
        var reference = new ReferenceValues("intel-sgx", [SgxMrenclave], new Dictionary<string, string> { ["mrsigner"] = claims.PlatformTests["mrsigner"] },
            AcceptedTcbStatuses: ["UpToDate", "ConfigurationAndSWHardeningNeeded"]);

        Assert.Null(ReferenceValueMatcher.Check(claims, reference));
        var (refusal, reason) = Refused(claims, reference with { AcceptedTcbStatuses = ["UpToDate"] });
        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Equal("TCB status is ConfigurationAndSWHardeningNeeded (advisories: INTEL-SA-00289,INTEL-SA-00615), the reference values accept only UpToDate", reason);
    }

    [Fact]
    public void Sgx_sample_fails_a_minimum_ISVSVN_above_its_own()
    {
        var reference = new ReferenceValues("intel-sgx", [SgxMrenclave], new Dictionary<string, string>(),
            MinimumTcb: new Dictionary<string, long> { ["isvsvn"] = 1 }, AcceptedTcbStatuses: ["ConfigurationAndSWHardeningNeeded"]);

        var (refusal, reason) = Refused(Sgx(), reference);

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Equal("TCB component 'isvsvn' is 0, below the registered minimum 1", reason);
    }

    [Fact]
    public void Accepted_statuses_replace_a_registered_tcb_status_platform_test()
    {
        var claims = Sgx();
        var reference = new ReferenceValues("intel-sgx", [SgxMrenclave], new Dictionary<string, string> { ["tcb.status"] = "UpToDate" });

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, Refused(claims, reference).Refusal);
        Assert.Null(ReferenceValueMatcher.Check(claims, reference with { AcceptedTcbStatuses = ["ConfigurationAndSWHardeningNeeded"] }));
    }

    [Fact]
    public void An_empty_list_of_accepted_statuses_accepts_none()
    {
        var reference = new ReferenceValues("intel-tdx", [TdxMrtd], new Dictionary<string, string>(), AcceptedTcbStatuses: []);

        Assert.Equal("TCB status is UpToDate, the reference values accept only none", Refused(Tdx(), reference).Reason);
    }

    [Fact]
    public void Maa_sample_passes_a_minimum_svn_of_1_and_fails_a_minimum_of_2()
    {
        var reference = new ReferenceValues("azure-maa", [MaaMrenclave], new Dictionary<string, string> { ["attestation-type"] = "sgx" },
            MinimumTcb: new Dictionary<string, long> { ["svn"] = 1 });

        Assert.Null(ReferenceValueMatcher.Check(Maa(), reference));
        var (refusal, reason) = Refused(Maa(), reference with { MinimumTcb = new Dictionary<string, long> { ["svn"] = 2 } });
        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Equal("TCB component 'svn' is 1, below the registered minimum 2", reason);
    }

    // ───────────── rules themselves ─────────────

    [Fact]
    public void A_TCB_component_that_is_not_an_integer_is_refused_naming_the_value()
    {
        var claims = Snp() with { PlatformTests = new Dictionary<string, string>(Snp().PlatformTests) { ["tcb.snp"] = "five" } };

        var (refusal, reason) = Refused(claims, SnpReference());

        Assert.Equal(KeyUseRefusal.PlatformTestsMismatch, refusal);
        Assert.Equal("TCB component 'tcb.snp' reported 'five', which is not an integer (registered minimum 5)", reason);
    }

    [Fact]
    public void Minimum_TCB_components_are_checked_in_ordinal_order_of_their_names()
    {
        var minimum = new Dictionary<string, long> { ["tcb.tee"] = 1, ["tcb.bootloader"] = 3 };

        Assert.Contains("'tcb.bootloader'", Refused(Snp(), SnpReference(minimumTcb: minimum)).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Simulated_claims_are_judged_as_before_when_no_hardware_rule_is_set()
    {
        var tests = new Dictionary<string, string> { ["kat.sha-256"] = "pass", ["health.rng"] = "pass" };
        var sim = new NormalisedClaims("sim", Simulated: true, new string('a', 96), tests, new byte[64], DateTimeOffset.UnixEpoch);
        var reference = new ReferenceValues("sim", [new string('A', 96)], new Dictionary<string, string>(tests));

        Assert.Null(ReferenceValueMatcher.Check(sim, reference));
        var fewer = reference with { PlatformTests = new Dictionary<string, string> { ["kat.sha-256"] = "pass" } };
        Assert.Equal((KeyUseRefusal.PlatformTestsMismatch, "platform test 'health.rng' is not in the registered reference values"), ReferenceValueMatcher.Check(sim, fewer));
        Assert.Equal(KeyUseRefusal.MeasurementMismatch, ReferenceValueMatcher.Check(sim, reference with { Platform = "aws-nitro" })!.Value.Refusal);
    }
}
