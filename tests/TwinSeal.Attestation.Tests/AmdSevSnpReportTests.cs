using System.Buffers.Binary;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Tests;

/// <summary>The SEV-SNP report parser and TCB handling, without signatures.</summary>
public sealed class AmdSevSnpReportTests
{
    [Fact]
    public void Sample_report_parses_as_version_2_with_the_published_measurement_and_report_data()
    {
        var report = SevSnpReport.Parse(SnpSample.Report);

        Assert.Equal(2u, report.Version);
        Assert.Equal(SevSnpReport.EcdsaP384Sha384, report.SignatureAlgorithm);
        Assert.Equal(SnpSample.Measurement, Convert.ToHexStringLower(report.Measurement.Span));
        Assert.Equal([1, 2, 3, 4, 5, .. new byte[59]], report.ReportData.ToArray());
        Assert.Equal(0u, report.Vmpl);
        Assert.Equal(SevSnpSigningKey.Vcek, report.SigningKey);
        Assert.False(report.MaskChipKey);
        Assert.False(report.AuthorKeyEnabled);
        Assert.Null(report.CpuidFamily);
        Assert.Null(report.LaunchMitigationVector);
    }

    [Fact]
    public void Sample_reported_tcb_reads_as_bootloader_2_tee_0_snp_5_microcode_68_in_the_milan_layout()
    {
        var report = SevSnpReport.Parse(SnpSample.Report);

        Assert.Equal(0x4405000000000002UL, report.ReportedTcb); // bytes 02 00 00 00 00 00 05 44
        Assert.Equal(new SevSnpTcb(Bootloader: 2, Tee: 0, Snp: 5, Microcode: 68), report.ReportedTcbFor(SevSnpProduct.Milan));
        Assert.Equal(report.ReportedTcb, report.CurrentTcb);
        Assert.Equal(report.ReportedTcb, report.CommittedTcb);
        Assert.Equal(report.ReportedTcb, report.LaunchTcb);
        Assert.Equal((1, 49, 3), (report.CurrentMajor, report.CurrentMinor, report.CurrentBuild));
    }

    [Fact]
    public void Turin_tcb_layout_reads_fmc_bootloader_tee_snp_from_the_low_bytes_and_microcode_from_the_top()
    {
        var tcb = SevSnpTcb.Decode(0x4800_0000_0403_0201, SevSnpProduct.Turin);

        Assert.Equal(new SevSnpTcb(Bootloader: 2, Tee: 3, Snp: 4, Microcode: 0x48, Fmc: 1), tcb);
    }

    [Fact]
    public void Genoa_uses_the_milan_tcb_layout_without_fmc()
    {
        var tcb = SevSnpTcb.Decode(0x4800_0000_0403_0201, SevSnpProduct.Genoa);

        Assert.Equal(new SevSnpTcb(Bootloader: 1, Tee: 2, Snp: 0, Microcode: 0x48), tcb);
        Assert.Null(tcb.Fmc);
    }

    [Fact]
    public void Debug_flag_is_policy_bit_19_and_the_sample_is_a_debug_guest()
    {
        var sample = SnpSample.Report;
        var cleared = (byte[])sample.Clone();
        cleared[0x0A] &= 0xF7; // bit 19 = bit 3 of the policy's third byte

        Assert.True(SevSnpReport.Parse(sample).Policy.Debug);
        Assert.Equal(0xB0000UL, SevSnpReport.Parse(sample).Policy.Value);
        Assert.False(SevSnpReport.Parse(cleared).Policy.Debug);
    }

    [Fact]
    public void Migration_agent_flag_is_policy_bit_18()
    {
        var policy = new SevSnpGuestPolicy(0x20000 | (1UL << 18));

        Assert.True(policy.MigrateMa);
        Assert.False(policy.Debug);
        Assert.False(new SevSnpGuestPolicy(0x20000).MigrateMa);
    }

    [Fact]
    public void Default_options_refuse_debug_and_migration_agent_policies_and_allow_them_when_configured()
    {
        var debug = new SevSnpGuestPolicy(0x20000 | (1UL << 19));
        var migrate = new SevSnpGuestPolicy(0x20000 | (1UL << 18));
        var plain = new SevSnpGuestPolicy(0x30000);

        Assert.Contains("debug", new SevSnpVerifierOptions().PolicyRefusal(debug));
        Assert.Contains("migration agent", new SevSnpVerifierOptions().PolicyRefusal(migrate));
        Assert.Null(new SevSnpVerifierOptions().PolicyRefusal(plain));
        Assert.Null(new SevSnpVerifierOptions { AllowDebug = true }.PolicyRefusal(debug));
        Assert.Null(new SevSnpVerifierOptions { AllowMigrationAgent = true }.PolicyRefusal(migrate));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(0x2A0)]
    [InlineData(1183)]
    [InlineData(1185)]
    [InlineData(4096)]
    public void Report_of_any_other_length_than_1184_bytes_is_invalid(int length)
    {
        var data = new byte[length];
        SnpSample.Report.AsSpan(0, Math.Min(length, SevSnpReport.Size)).CopyTo(data);

        var e = Assert.Throws<EvidenceException>(() => SevSnpReport.Parse(data));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        Assert.Contains("1184", e.Message);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(1u)]
    [InlineData(6u)]
    [InlineData(0x02000000u)]
    public void Report_version_outside_2_to_5_is_invalid(uint version)
    {
        var data = SnpSample.Report;
        BinaryPrimitives.WriteUInt32LittleEndian(data, version);

        var e = Assert.Throws<EvidenceException>(() => SevSnpReport.Parse(data));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        Assert.Contains("version", e.Message);
    }

    [Theory]
    [InlineData(3u)]
    [InlineData(4u)]
    [InlineData(5u)]
    public void Versions_3_to_5_share_the_version_2_prefix(uint version)
    {
        var data = new SnpReportSpec { Version = version, Cpuid = (0x19, 0x01, 0x01) }.Build();
        BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(0x1F8), 7);

        var report = SevSnpReport.Parse(data);

        Assert.Equal(version, report.Version);
        Assert.Equal((byte)0x19, report.CpuidFamily);
        Assert.Equal(SevSnpProduct.Milan, report.CpuidProduct(out var known));
        Assert.True(known);
        Assert.Equal(version >= 5 ? 7UL : null, report.LaunchMitigationVector);
    }

    [Theory]
    [InlineData(0x19, 0x01, SevSnpProduct.Milan)]
    [InlineData(0x19, 0x11, SevSnpProduct.Genoa)]
    [InlineData(0x19, 0xA0, SevSnpProduct.Genoa)]
    [InlineData(0x1A, 0x02, SevSnpProduct.Turin)]
    public void Cpuid_fields_name_the_product(byte family, byte model, SevSnpProduct expected)
    {
        var report = SevSnpReport.Parse(new SnpReportSpec { Version = 3, Cpuid = (family, model, 0) }.Build());

        Assert.Equal(expected, report.CpuidProduct(out var known));
        Assert.True(known);
    }

    [Fact]
    public void Cpuid_fields_of_an_unknown_processor_are_reported_as_unknown()
    {
        var report = SevSnpReport.Parse(new SnpReportSpec { Version = 3, Cpuid = (0x17, 0x31, 0) }.Build());

        Assert.Null(report.CpuidProduct(out var known));
        Assert.False(known);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(2u)]
    public void Signature_algorithm_other_than_ecdsa_p384_sha384_is_invalid(uint algorithm)
    {
        var data = SnpSample.Report;
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(0x34), algorithm);

        var e = Assert.Throws<EvidenceException>(() => SevSnpReport.Parse(data));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        Assert.Contains("signature algorithm", e.Message);
    }

    [Theory]
    [InlineData(0x10000UL)]              // reserved bit 17 clear
    [InlineData(0x30000UL | (1UL << 26))] // a bit this verifier does not know
    [InlineData(0x30000UL | (1UL << 63))]
    public void Guest_policy_with_reserved_bits_wrong_is_invalid(ulong policy)
    {
        var data = new SnpReportSpec { Policy = policy }.Build();

        var e = Assert.Throws<EvidenceException>(() => SevSnpReport.Parse(data));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        Assert.Contains("policy", e.Message);
    }

    [Theory]
    [InlineData(2u << 2)]
    [InlineData(6u << 2)]
    [InlineData(1u << 5)]
    public void Reserved_signer_information_is_invalid(uint signerInfo)
    {
        var data = new SnpReportSpec().Build();
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(0x48), signerInfo);

        var e = Assert.Throws<EvidenceException>(() => SevSnpReport.Parse(data));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
    }

    [Fact]
    public void Signing_key_and_chip_key_mask_are_read_from_the_word_at_0x48()
    {
        var data = new SnpReportSpec { SigningKey = SevSnpSigningKey.Vlek, MaskChipKey = true }.Build();
        data[0x48] |= 1;

        var report = SevSnpReport.Parse(data);

        Assert.Equal(SevSnpSigningKey.Vlek, report.SigningKey);
        Assert.True(report.MaskChipKey);
        Assert.True(report.AuthorKeyEnabled);
    }

    [Theory]
    [InlineData(0x2A0 + 48)]  // R beyond 48 bytes
    [InlineData(0x2E8 + 71)]  // S beyond 48 bytes
    [InlineData(0x2A0 + 144)] // after S
    [InlineData(0x49F)]
    public void Non_zero_bytes_in_the_signature_padding_are_invalid(int offset)
    {
        var data = SnpSample.Report;
        data[offset] = 1;

        var e = Assert.Throws<EvidenceException>(() => SevSnpReport.Parse(data));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
    }

    [Fact]
    public void Signature_is_converted_from_little_endian_72_byte_fields_to_big_endian_p1363()
    {
        var data = SnpSample.Report;
        var report = SevSnpReport.Parse(data);

        var p1363 = report.SignatureP1363();

        Assert.Equal(96, p1363.Length);
        Assert.Equal(data.AsSpan(0x2A0, 48).ToArray().Reverse(), p1363[..48]);
        Assert.Equal(data.AsSpan(0x2E8, 48).ToArray().Reverse(), p1363[48..]);
    }

    [Fact]
    public void Equal_tcbs_match()
    {
        var tcb = new SevSnpTcb(2, 0, 5, 68);

        Assert.Null(SevSnpTcb.Mismatch(tcb, tcb));
    }

    [Theory]
    [InlineData(1, 0, 5, 68)]
    [InlineData(2, 0, 4, 68)]
    [InlineData(2, 0, 5, 67)]
    [InlineData(3, 0, 5, 60)]
    public void Reported_tcb_lower_than_the_endorsed_tcb_in_any_component_is_named_lower(byte bl, byte tee, byte snp, byte ucode)
    {
        var endorsed = new SevSnpTcb(2, 0, 5, 68);

        var problem = SevSnpTcb.Mismatch(new SevSnpTcb(bl, tee, snp, ucode), endorsed);

        Assert.NotNull(problem);
        Assert.Contains("lower", problem);
    }

    [Fact]
    public void Reported_tcb_higher_than_the_endorsed_tcb_is_still_a_mismatch()
    {
        var problem = SevSnpTcb.Mismatch(new SevSnpTcb(2, 0, 6, 68), new SevSnpTcb(2, 0, 5, 68));

        Assert.NotNull(problem);
        Assert.Contains("differs", problem);
    }

    [Fact]
    public void Lower_fmc_on_turin_is_a_lower_tcb()
    {
        var problem = SevSnpTcb.Mismatch(new SevSnpTcb(2, 3, 4, 72, Fmc: 0), new SevSnpTcb(2, 3, 4, 72, Fmc: 1));

        Assert.Contains("lower", problem);
    }

    [Fact]
    public void Random_bytes_of_any_length_raise_nothing_but_an_invalid_evidence_refusal()
    {
        var random = new Random(20240601);
        foreach (var length in new[] { 0, 1, 7, 64, 1183, 1184, 1184, 1184, 1185, 5000 })
        {
            for (var i = 0; i < 20; i++)
            {
                var data = new byte[length];
                random.NextBytes(data);
                if (length == SevSnpReport.Size && i % 2 == 0)
                {
                    // Get past the first checks half of the time, to reach the deeper ones.
                    BinaryPrimitives.WriteUInt32LittleEndian(data, 2);
                    BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(0x34), 1);
                }
                try
                {
                    SevSnpReport.Parse(data);
                }
                catch (EvidenceException e)
                {
                    Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
                }
            }
        }
    }
}
