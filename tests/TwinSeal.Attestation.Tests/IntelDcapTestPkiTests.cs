using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Protocol;
using Spec = TwinSeal.Attestation.Tests.IntelDcapTestPki.Spec;

namespace TwinSeal.Attestation.Tests;

/// <summary>Behaviours the real samples cannot show, on quotes and collateral from a throw-away Intel-shaped PKI.</summary>
public sealed class IntelDcapTestPkiTests : IDisposable
{
    private readonly IntelDcapTestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    [Theory]
    [InlineData(DcapTeeType.Sgx)]
    [InlineData(DcapTeeType.Tdx)]
    public void Quote_from_the_test_pki_verifies_under_its_root(DcapTeeType tee)
    {
        var claims = _pki.Verifier(tee).Verify(_pki.Evidence(new Spec { Tee = tee }));

        Assert.Equal("UpToDate", claims.PlatformTests["tcb.status"]);
        Assert.Equal("00aabbcc0000", claims.PlatformTests["fmspc"]);
        Assert.Equal(Enumerable.Repeat((byte)0x5A, 64), claims.ReportData);
        Assert.False(claims.Debug);
    }

    [Fact]
    public void Revoked_PCK_certificate_is_untrusted()
    {
        var e = Refused(new Spec { RevokePck = true });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("PCK certificate", e.Message, StringComparison.Ordinal);
        Assert.Contains("revoked by the PCK CRL", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PCK_CA_revoked_by_the_root_CA_CRL_is_untrusted()
    {
        var e = Refused(new Spec { RevokePckCa = true });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("revoked by the Intel SGX Root CA CRL", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PCK_CRL_signed_by_a_CA_of_the_same_name_but_another_key_is_untrusted()
    {
        var e = Refused(new Spec { PckCrlByImpostor = true });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("PCK CRL signature does not verify", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(DcapTeeType.Sgx)]
    [InlineData(DcapTeeType.Tdx)]
    public void Debug_enclave_or_TD_is_untrusted_by_default(DcapTeeType tee)
    {
        var e = Assert.Throws<EvidenceException>(() => _pki.Verifier(tee).Verify(_pki.Evidence(new Spec { Tee = tee, Debug = true })));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("debuggable", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(DcapTeeType.Sgx)]
    [InlineData(DcapTeeType.Tdx)]
    public void Debug_enclave_or_TD_is_accepted_and_reported_when_debug_is_allowed(DcapTeeType tee)
    {
        var claims = _pki.Verifier(tee, new IntelDcapVerifierOptions { AllowDebug = true }).Verify(_pki.Evidence(new Spec { Tee = tee, Debug = true }));

        Assert.True(claims.Debug);
    }

    [Fact]
    public void Out_of_date_QE_turns_ConfigurationNeeded_into_OutOfDateConfigurationNeeded_with_the_QE_advisories()
    {
        var options = new IntelDcapVerifierOptions { AcceptedTcbStatuses = new HashSet<DcapTcbStatus> { DcapTcbStatus.OutOfDateConfigurationNeeded } };
        var spec = new Spec { QeIsvSvn = 6, PlatformStatus = "ConfigurationNeeded", PlatformAdvisories = ["INTEL-SA-90010"] };

        var claims = _pki.Verifier(DcapTeeType.Sgx, options).Verify(_pki.Evidence(spec));

        Assert.Equal("OutOfDateConfigurationNeeded", claims.PlatformTests["tcb.status"]);
        Assert.Equal("INTEL-SA-90003,INTEL-SA-90010", claims.PlatformTests["tcb.advisories"]);
    }

    [Fact]
    public void Out_of_date_QE_makes_an_UpToDate_platform_OutOfDate()
    {
        var e = Refused(new Spec { QeIsvSvn = 5 });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("status is OutOfDate", e.Message, StringComparison.Ordinal);
        Assert.Contains("INTEL-SA-90003", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void QE_below_every_QE_identity_level_is_untrusted()
    {
        var e = Refused(new Spec { QeIsvSvn = 2 });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("ISVSVN 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Revoked_platform_TCB_level_is_untrusted_naming_Revoked()
    {
        var e = Refused(new Spec { PlatformStatus = "Revoked", PlatformAdvisories = ["INTEL-SA-90020"] });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("status is Revoked", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unrecognised_TCB_status_in_the_TCB_info_is_untrusted()
    {
        var e = Refused(new Spec { PlatformStatus = "UpToDate,Revoked" });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("unrecognised TCB status", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Platform_below_every_TCB_level_is_untrusted_as_not_supported()
    {
        var e = Refused(new Spec { TcbLevelsAbovePlatform = true });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("TCB not supported", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Out_of_date_TDX_module_makes_an_UpToDate_platform_OutOfDate()
    {
        var e = Assert.Throws<EvidenceException>(() => _pki.Verifier(DcapTeeType.Tdx).Verify(_pki.Evidence(new Spec { Tee = DcapTeeType.Tdx, TdxModuleIsvSvn = 2 })));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("status is OutOfDate", e.Message, StringComparison.Ordinal);
        Assert.Contains("INTEL-SA-90001", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TDX_module_version_without_a_module_identity_is_untrusted()
    {
        var e = Assert.Throws<EvidenceException>(() => _pki.Verifier(DcapTeeType.Tdx).Verify(_pki.Evidence(new Spec { Tee = DcapTeeType.Tdx, TdxModuleVersion = 2 })));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("TDX_02", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TCB_info_for_another_FMSPC_is_untrusted()
    {
        var e = Refused(new Spec { TcbInfoFmspc = Convert.FromHexString("00AABBCC0001") });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("FMSPC", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Quote_from_a_non_Intel_QE_vendor_is_untrusted()
    {
        var e = Refused(new Spec { QeVendorId = new byte[16] });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("not Intel's", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void QE_with_another_MRSIGNER_is_untrusted()
    {
        var e = Refused(new Spec { QeMrSignerInReport = Enumerable.Repeat((byte)0x22, 32).ToArray() });

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("MRSIGNER", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Test_pki_quote_is_untrusted_under_the_real_Intel_root()
    {
        var verifier = new IntelDcapVerifier(DcapTeeType.Sgx, Samples.Read("intel-sgx-dcap", "intel-sgx-root-ca.der"), TimeProvider.System);

        var e = Assert.Throws<EvidenceException>(() => verifier.Verify(_pki.Evidence(new Spec())));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
    }

    private EvidenceException Refused(Spec spec)
        => Assert.Throws<EvidenceException>(() => _pki.Verifier(spec.Tee).Verify(_pki.Evidence(spec)));
}
