using System.Formats.Asn1;
using System.Security.Cryptography;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Tests;

/// <summary>
/// Verifier decisions that the real sample cannot reach without breaking its signature (guest policy, TCB, chip,
/// VLEK, Turin), on reports correctly signed by a stand-in AMD hierarchy (<see cref="SyntheticAmd"/>).
/// </summary>
public sealed class AmdSevSnpPolicyTests
{
    private static SyntheticAmd Milan => SyntheticAmd.Milan;

    [Fact]
    public void Genuine_non_debug_report_verifies_and_is_not_debug()
    {
        var claims = Milan.Verifier().Verify(Milan.Envelope(Milan.Spec()).ToEvidence());

        Assert.False(claims.Debug);
        Assert.Equal("0x0000000000030000", claims.PlatformTests["policy"]);
        Assert.Equal("115", claims.PlatformTests["tcb.microcode"]);
        Assert.Equal(SyntheticAmd.Now, claims.IssuedAt);
    }

    [Fact]
    public void Debug_guest_is_refused_by_default()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { Policy = 0x30000 | (1UL << 19) });

        var message = SnpAssert.Refused(KeyUseRefusal.DebugNotAllowed, Milan.Verifier(), envelope);

        Assert.Contains("debug", message);
    }

    [Fact]
    public void Debug_guest_is_accepted_and_flagged_when_debug_is_allowed()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { Policy = 0x30000 | (1UL << 19) });

        var claims = Milan.Verifier(new SevSnpVerifierOptions { AllowDebug = true }).Verify(envelope.ToEvidence());

        Assert.True(claims.Debug);
    }

    [Fact]
    public void Migration_agent_guest_is_refused_by_default()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { Policy = 0x30000 | (1UL << 18) });

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, Milan.Verifier(), envelope);

        Assert.Contains("migration agent", message);
    }

    [Fact]
    public void Migration_agent_guest_is_accepted_when_allowed()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { Policy = 0x30000 | (1UL << 18) });

        var claims = Milan.Verifier(new SevSnpVerifierOptions { AllowMigrationAgent = true }).Verify(envelope.ToEvidence());

        Assert.False(claims.Debug);
    }

    [Fact]
    public void Reported_tcb_lower_than_the_vcek_tcb_is_untrusted()
    {
        // The VCEK was issued for SNP 9; the report (signed with the same key) claims SNP 8.
        var vcek = Milan.VcekWith(new SevSnpTcb(Bootloader: 3, Tee: 0, Snp: 9, Microcode: 115));
        var envelope = Milan.Envelope(Milan.Spec()) with { Vcek = vcek };

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("lower", message);
    }

    [Fact]
    public void Reported_tcb_other_than_the_vcek_tcb_is_untrusted_even_when_higher()
    {
        var vcek = Milan.VcekWith(new SevSnpTcb(Bootloader: 3, Tee: 0, Snp: 7, Microcode: 115));
        var envelope = Milan.Envelope(Milan.Spec()) with { Vcek = vcek };

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("differs", message);
    }

    [Fact]
    public void Chip_id_other_than_the_vcek_hwid_is_untrusted()
    {
        var otherChip = SyntheticAmd.ChipId64.ToArray();
        otherChip[0] ^= 0xFF;
        var envelope = Milan.Envelope(Milan.Spec() with { ChipId = otherChip });

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("CHIP_ID", message);
    }

    [Fact]
    public void Masked_chip_id_cannot_be_matched_to_a_vcek()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { ChipId = new byte[64] });

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("masked", message);
    }

    [Fact]
    public void Vcek_report_with_the_chip_key_masked_is_untrusted()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { MaskChipKey = true });

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("MASK_CHIP_KEY", message);
    }

    [Fact]
    public void Unsigned_report_is_untrusted()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { SigningKey = SevSnpSigningKey.None });

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("not signed", message);
    }

    [Fact]
    public void Vcek_of_another_product_is_untrusted()
    {
        var vcek = Milan.VcekWith(SevSnpTcb.Decode(SyntheticAmd.MilanTcbRaw, SevSnpProduct.Milan), productName: "Genoa-B1");
        var envelope = Milan.Envelope(Milan.Spec()) with { Vcek = vcek };

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("Genoa-B1", message);
    }

    [Fact]
    public void Vcek_signed_with_pkcs1_instead_of_pss_is_untrusted()
    {
        var vcek = SyntheticAmd.CreateEndorsementKey("SEV-VCEK", Milan.VcekKey, "SEV-Milan", Milan.AskKey,
            SevSnpTcb.Decode(SyntheticAmd.MilanTcbRaw, SevSnpProduct.Milan), SyntheticAmd.ChipId64, padding: RSASignaturePadding.Pkcs1);
        var envelope = Milan.Envelope(Milan.Spec()) with { Vcek = vcek };

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("RSASSA-PSS", message);
    }

    [Fact]
    public void Vcek_issued_directly_by_the_ark_is_untrusted()
    {
        var vcek = SyntheticAmd.CreateEndorsementKey("SEV-VCEK", Milan.VcekKey, "ARK-Milan", Milan.ArkKey,
            SevSnpTcb.Decode(SyntheticAmd.MilanTcbRaw, SevSnpProduct.Milan), SyntheticAmd.ChipId64, productName: "Milan-B0");
        var envelope = Milan.Envelope(Milan.Spec()) with { Vcek = vcek };

        SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);
    }

    [Fact]
    public void Expired_vcek_is_untrusted()
    {
        var vcek = Milan.VcekWith(SevSnpTcb.Decode(SyntheticAmd.MilanTcbRaw, SevSnpProduct.Milan), notAfter: SyntheticAmd.Now.AddDays(-1));
        var envelope = Milan.Envelope(Milan.Spec()) with { Vcek = vcek };

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("expired", message);
    }

    [Fact]
    public void Report_signed_by_another_key_than_the_vcek_is_untrusted()
    {
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var report = SyntheticAmd.Sign(Milan.Spec().Build(), other);
        var envelope = Milan.Envelope(Milan.Spec()) with { Report = report };

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("report signature", message);
    }

    [Fact]
    public void Vlek_signed_report_verifies_through_the_asvk_and_says_vlek()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { SigningKey = SevSnpSigningKey.Vlek });

        var claims = Milan.Verifier().Verify(envelope.ToEvidence());

        Assert.Equal("vlek", claims.PlatformTests["signing_key"]);
    }

    [Fact]
    public void Vlek_signed_report_sent_with_vcek_certificates_is_invalid()
    {
        var envelope = new SevSnpEvidence(Milan.Signed(Milan.Spec() with { SigningKey = SevSnpSigningKey.Vlek }), SevSnpProduct.Milan, Vcek: Milan.Vcek, Ask: Milan.Ask);

        SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, Milan.Verifier(), envelope);
    }

    [Fact]
    public void Vlek_issued_by_the_ask_instead_of_the_asvk_is_untrusted()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { SigningKey = SevSnpSigningKey.Vlek }) with { Asvk = Milan.Ask };

        SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);
    }

    [Fact]
    public void Vlek_signed_report_without_the_vlek_is_untrusted()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { SigningKey = SevSnpSigningKey.Vlek }) with { Vlek = null };

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, Milan.Verifier(), envelope);

        Assert.Contains("VLEK", message);
    }

    [Fact]
    public void Report_cpuid_naming_another_product_than_the_envelope_is_invalid()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { Version = 3, Cpuid = (0x19, 0x11, 0x01) }); // Genoa

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, Milan.Verifier(), envelope);

        Assert.Contains("Genoa", message);
    }

    [Fact]
    public void Version_5_report_verifies()
    {
        var envelope = Milan.Envelope(Milan.Spec() with { Version = 5, Cpuid = (0x19, 0x01, 0x01) });

        var claims = Milan.Verifier().Verify(envelope.ToEvidence());

        Assert.Equal("vcek", claims.PlatformTests["signing_key"]);
    }

    [Fact]
    public void Turin_report_uses_the_turin_tcb_layout_and_reports_fmc()
    {
        var turin = SyntheticAmd.Turin;
        var envelope = turin.Envelope(turin.Spec() with { Version = 3, Cpuid = (0x1A, 0x02, 0x00) });

        var claims = turin.Verifier().Verify(envelope.ToEvidence());

        Assert.Equal("Turin", claims.PlatformTests["product"]);
        Assert.Equal("1", claims.PlatformTests["tcb.fmc"]);
        Assert.Equal("2", claims.PlatformTests["tcb.bootloader"]);
        Assert.Equal("3", claims.PlatformTests["tcb.tee"]);
        Assert.Equal("4", claims.PlatformTests["tcb.snp"]);
        Assert.Equal("72", claims.PlatformTests["tcb.microcode"]);
    }

    [Fact]
    public void Turin_report_with_a_lower_fmc_than_its_vcek_is_untrusted()
    {
        var turin = SyntheticAmd.Turin;
        var vcek = turin.VcekWith(new SevSnpTcb(Bootloader: 2, Tee: 3, Snp: 4, Microcode: 72, Fmc: 2));
        var envelope = turin.Envelope(turin.Spec() with { Version = 3, Cpuid = (0x1A, 0x02, 0x00) }) with { Vcek = vcek };

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, turin.Verifier(), envelope);

        Assert.Contains("lower", message);
    }

    [Fact]
    public void Turin_chip_id_with_bytes_beyond_the_first_eight_does_not_match_an_eight_byte_hwid()
    {
        var turin = SyntheticAmd.Turin;
        var chip = SyntheticAmd.TurinChipId.ToArray();
        chip[40] = 1;
        var envelope = turin.Envelope(turin.Spec() with { ChipId = chip });

        SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, turin.Verifier(), envelope);
    }

    [Fact]
    public void Vcek_found_in_the_cache_by_chip_and_tcb_verifies()
    {
        var dir = Directory.CreateTempSubdirectory("twinseal-snp-cache-");
        try
        {
            var milan = Directory.CreateDirectory(Path.Combine(dir.FullName, "Milan"));
            File.WriteAllBytes(Path.Combine(milan.FullName, "ask.der"), Milan.Ask);
            File.WriteAllBytes(Path.Combine(milan.FullName, $"vcek-{Convert.ToHexStringLower(SyntheticAmd.ChipId64)}-{SyntheticAmd.MilanTcbRaw:x16}.der"), Milan.Vcek);
            var verifier = Milan.Verifier(new SevSnpVerifierOptions { CertificateCacheDirectory = dir.FullName });

            var claims = verifier.Verify(new SevSnpEvidence(Milan.Signed(Milan.Spec()), SevSnpProduct.Milan).ToEvidence());

            Assert.Equal("vcek", claims.PlatformTests["signing_key"]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Vcek_with_a_negative_serial_number_is_accepted()
    {
        var vcek = SyntheticAmd.WithSerial(Milan.Vcek, -128, Milan.AskKey);
        var tbs = new AsnReader(vcek, AsnEncodingRules.DER).ReadSequence().ReadSequence();
        tbs.ReadEncodedValue(); // [0] version
        Assert.Equal(-128, tbs.ReadInteger());

        var claims = Milan.Verifier().Verify((Milan.Envelope(Milan.Spec()) with { Vcek = vcek }).ToEvidence());

        Assert.Equal("vcek", claims.PlatformTests["signing_key"]);
    }
}
