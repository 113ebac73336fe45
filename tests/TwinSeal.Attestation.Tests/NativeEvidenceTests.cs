using System.Text;
using System.Text.Json;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Protocol;
using static TwinSeal.Attestation.Tests.HardwareSampleClaims;

namespace TwinSeal.Attestation.Tests;

/// <summary>
/// <see cref="NativeEvidence"/>, the core of <c>twinseal evidence verify</c>: each real sample file, wrapped as the
/// verb wraps it, verifies with the verifiers <see cref="VerifierSet"/> builds from the same trust anchor files.
/// </summary>
public sealed class NativeEvidenceTests
{
    private static IEvidenceVerifier FromSet(string platform, VerifierConfiguration config, DateTimeOffset at)
        => VerifierSet.Create(config, new SampleClock(at))[platform];

    [Fact]
    public void Nitro_document_file_verifies_as_is()
    {
        var evidence = NativeEvidence.Wrap("aws-nitro", NitroDocument());
        var claims = FromSet("aws-nitro", new VerifierConfiguration { AwsNitroRoot = NitroRootPath }, NitroTime).Verify(evidence);

        Assert.Equal(NitroDocument(), evidence.Document);
        Assert.Equal(NitroPcr0, claims.Measurement);
        Assert.Equal(NitroPcr8, claims.PlatformTests["pcr8"]);
    }

    [Fact]
    public void Snp_raw_report_is_wrapped_with_the_certificate_files_and_its_product_is_read_from_them()
    {
        var certificates = new[] { SnpVcekPath, SnpAskArkPath }.SelectMany(NativeEvidence.LoadCertificateFile).ToList();

        var evidence = NativeEvidence.Wrap("amd-sev-snp", SnpReport(), new NativeEvidenceInputs { Certificates = certificates });

        var envelope = SevSnpEvidence.Decode(evidence.Document);
        Assert.Equal(SevSnpProduct.Milan, envelope.Product); // a version 2 report has no CPUID: the ASK/ARK/VCEK names say Milan
        Assert.Equal(SnpReport(), envelope.Report);
        Assert.Equal(File.ReadAllBytes(SnpVcekPath), envelope.Vcek);
        Assert.Equal(certificates[1], envelope.Ask);
        Assert.Equal(certificates[2], envelope.Ark);
        var config = new VerifierConfiguration { AmdArks = [SnpAskArkPath], PassDebugThrough = true };
        var claims = FromSet("amd-sev-snp", config, SnpTime).Verify(evidence);
        Assert.Equal(SnpMeasurement, claims.Measurement);
        Assert.True(claims.Debug);
    }

    [Fact]
    public void Snp_debug_sample_is_refused_by_a_standalone_check_that_does_not_pass_debug_through()
    {
        var certificates = new[] { SnpVcekPath, SnpAskArkPath }.SelectMany(NativeEvidence.LoadCertificateFile).ToList();
        var evidence = NativeEvidence.Wrap("amd-sev-snp", SnpReport(), new NativeEvidenceInputs { Certificates = certificates });

        var e = Assert.Throws<EvidenceException>(() => FromSet("amd-sev-snp", new VerifierConfiguration { AmdArks = [SnpAskArkPath] }, SnpTime).Verify(evidence));

        Assert.Equal(KeyUseRefusal.DebugNotAllowed, e.Refusal);
    }

    [Fact]
    public void Snp_report_without_certificates_takes_its_product_from_the_single_pinned_ARK()
    {
        var hints = NativeEvidence.ArkProducts([SnpAskArkPath]);

        var envelope = SevSnpEvidence.Decode(NativeEvidence.Wrap("amd-sev-snp", SnpReport(), new NativeEvidenceInputs { SevSnpProductHints = hints }).Document);

        Assert.Equal([SevSnpProduct.Milan], hints);
        Assert.Equal(SevSnpProduct.Milan, envelope.Product);
        Assert.Null(envelope.Vcek);
        Assert.Null(envelope.Ask);
    }

    [Fact]
    public void Snp_version_2_report_without_certificates_or_a_single_product_hint_is_a_usage_error()
    {
        var none = Assert.Throws<ArgumentException>(() => NativeEvidence.Wrap("amd-sev-snp", SnpReport()));
        var two = Assert.Throws<ArgumentException>(() => NativeEvidence.Wrap("amd-sev-snp", SnpReport(),
            new NativeEvidenceInputs { SevSnpProductHints = [SevSnpProduct.Milan, SevSnpProduct.Genoa] }));

        Assert.Contains("Milan, Genoa or Turin", none.Message, StringComparison.Ordinal);
        Assert.Contains("Milan, Genoa or Turin", two.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Snp_report_with_a_certificate_that_is_not_AMDs_is_a_usage_error()
    {
        var nitroRoot = NativeEvidence.LoadCertificateFile(NitroRootPath);

        var e = Assert.Throws<ArgumentException>(() => NativeEvidence.Wrap("amd-sev-snp", SnpReport(), new NativeEvidenceInputs { Certificates = nitroRoot }));

        Assert.Contains("not an AMD SEV certificate", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Snp_certificates_given_twice_count_once()
    {
        var certificates = new[] { SnpVcekPath, SnpAskArkPath, SnpAskArkPath }.SelectMany(NativeEvidence.LoadCertificateFile).ToList();

        var envelope = SevSnpEvidence.Decode(NativeEvidence.Wrap("amd-sev-snp", SnpReport(), new NativeEvidenceInputs { Certificates = certificates }).Document);

        Assert.NotNull(envelope.Ask);
    }

    [Fact]
    public void Malformed_snp_report_is_refused_as_invalid_evidence()
    {
        var e = Assert.Throws<EvidenceException>(() => NativeEvidence.Wrap("amd-sev-snp", SnpReport()[..100]));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
    }

    [Fact]
    public void Amd_certificates_are_classified_by_subject()
    {
        var askArk = NativeEvidence.LoadCertificateFile(SnpAskArkPath);

        Assert.Equal(("VCEK", SevSnpProduct.Milan), NativeEvidence.ClassifyAmdCertificate(File.ReadAllBytes(SnpVcekPath)));
        Assert.Equal(("ASK", SevSnpProduct.Milan), NativeEvidence.ClassifyAmdCertificate(askArk[0]));
        Assert.Equal(("ARK", SevSnpProduct.Milan), NativeEvidence.ClassifyAmdCertificate(askArk[1]));
    }

    [Theory]
    [InlineData("intel-tdx")]
    [InlineData("intel-sgx")]
    public void Dcap_raw_quote_with_a_collateral_file_verifies(string platform)
    {
        var tdx = platform == "intel-tdx";
        var collateral = tdx ? TdxCollateral() : SgxCollateral();
        var evidence = NativeEvidence.Wrap(platform, tdx ? TdxQuote() : SgxQuote(), new NativeEvidenceInputs { CollateralJson = collateral });
        var config = new VerifierConfiguration
        {
            IntelRootCa = Path.Combine(Samples.Dir("intel-tdx"), "intel-sgx-root-ca.der"),
            IntelAcceptedTcbStatuses = ["UpToDate", "ConfigurationAndSWHardeningNeeded"],
        };

        var claims = FromSet(platform, config, DcapTime).Verify(evidence);

        Assert.Equal(tdx ? TdxMrtd : SgxMrenclave, claims.Measurement);
        Assert.Equal(collateral, IntelDcapEvidence.Decode(evidence.Document).CollateralJson);
    }

    [Fact]
    public void Dcap_raw_quote_without_collateral_leaves_it_to_the_verifiers_folder()
    {
        var evidence = NativeEvidence.Wrap("intel-tdx", TdxQuote());

        Assert.Null(IntelDcapEvidence.Decode(evidence.Document).CollateralJson);
        var e = Assert.Throws<EvidenceException>(() => DcapVerifier(DcapTeeType.Tdx).Verify(evidence));
        Assert.Contains("no collateral", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Maa_token_file_with_a_trailing_newline_verifies()
    {
        var file = Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(MaaTokenFile()).Trim() + "\r\n");

        var evidence = NativeEvidence.Wrap("azure-maa", file);
        var config = new VerifierConfiguration { AzureMaaJwks = Path.Combine(Samples.Dir("azure-maa"), "teaclave-sharedeus-jwks.json"), AzureMaaIssuer = MaaIssuer };

        Assert.Equal(MaaMrenclave, FromSet("azure-maa", config, MaaTime).Verify(evidence).Measurement);
    }

    [Theory]
    [InlineData("aws-nitro")]
    [InlineData("azure-maa")]
    [InlineData("sim")]
    [InlineData("intel-tdx")]
    public void Certificates_for_a_platform_other_than_snp_are_a_usage_error(string platform)
    {
        var certificates = NativeEvidence.LoadCertificateFile(SnpVcekPath);

        var e = Assert.Throws<ArgumentException>(() => NativeEvidence.Wrap(platform, [1, 2, 3], new NativeEvidenceInputs { Certificates = certificates }));

        Assert.Contains("only amd-sev-snp", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("aws-nitro")]
    [InlineData("amd-sev-snp")]
    [InlineData("azure-maa")]
    public void Collateral_for_a_platform_other_than_dcap_is_a_usage_error(string platform)
    {
        var e = Assert.Throws<ArgumentException>(() => NativeEvidence.Wrap(platform, SnpReport(), new NativeEvidenceInputs { CollateralJson = "{}" }));

        Assert.Contains("only intel-tdx and intel-sgx", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_platform_is_a_usage_error_listing_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => NativeEvidence.Wrap("arm-cca", [1]));

        Assert.Contains("sim, aws-nitro, amd-sev-snp, intel-tdx, intel-sgx, azure-maa", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Certificate_files_are_read_as_PEM_bundles_or_single_DER()
    {
        Assert.Equal(2, NativeEvidence.LoadCertificateFile(SnpAskArkPath).Count);
        Assert.Single(NativeEvidence.LoadCertificateFile(SnpVcekPath));
        Assert.Throws<ArgumentException>(() => NativeEvidence.LoadCertificateFile(Path.Combine(Samples.Dir("azure-maa"), "teaclave-sharedeus-jwks.json")));
        Assert.Throws<ArgumentException>(() => NativeEvidence.LoadCertificateFile(Path.Combine(Samples.Dir("aws-nitro"), "no-such-file.pem")));
    }

    [Fact]
    public void Files_larger_than_the_limit_are_refused_before_reading()
    {
        var path = Path.Combine(Path.GetTempPath(), $"twinseal-big-{Guid.NewGuid():N}.bin");
        try
        {
            using (var f = File.Create(path))
                f.SetLength(NativeEvidence.MaxFileBytes + 1);

            var e = Assert.Throws<ArgumentException>(() => NativeEvidence.ReadFile(path, "evidence file"));

            Assert.Contains("the limit is", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Describe_lists_platform_measurement_report_data_debug_issued_at_then_platform_tests_by_name()
    {
        var rows = NativeEvidence.Describe(Snp());

        Assert.Equal(["platform", "measurement", "report data", "debug", "issued at", "guest_svn", "host_data", "policy", "product", "signing_key", "tcb.bootloader", "tcb.microcode", "tcb.snp", "tcb.tee", "vmpl"],
            rows.Select(r => r.Key));
        Assert.Equal("0102030405" + new string('0', 118), rows[2].Value);
        Assert.Equal("true", rows[3].Value);
        Assert.Equal("2024-06-01T00:00:00Z", rows[4].Value);
    }

    [Fact]
    public void Json_carries_every_claim()
    {
        using var doc = JsonDocument.Parse(NativeEvidence.ToJson(Tdx()));
        var root = doc.RootElement;

        Assert.Equal("intel-tdx", root.GetProperty("platform").GetString());
        Assert.False(root.GetProperty("simulated").GetBoolean());
        Assert.Equal(TdxMrtd, root.GetProperty("measurement").GetString());
        Assert.Equal(128, root.GetProperty("reportData").GetString()!.Length);
        Assert.False(root.GetProperty("debug").GetBoolean());
        Assert.Equal(DcapTime, root.GetProperty("issuedAt").GetDateTimeOffset());
        Assert.Equal("UpToDate", root.GetProperty("platformTests").GetProperty("tcb.status").GetString());
    }
}
