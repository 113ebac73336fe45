using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Tests;

public sealed class IntelDcapVerifierTests
{
    private const string TdxDir = "intel-tdx";
    private const string SgxDir = "intel-sgx-dcap";
    private const string TdxMrtd = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
    private const string SgxMrenclave = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";

    private static readonly DateTimeOffset TdxTime = new(2025, 7, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset SgxTime = new(2025, 7, 1, 0, 0, 0, TimeSpan.Zero);

    // Offsets in the samples: header 48, body (TDX 584 / SGX 384), signature data length 4, quote signature 64,
    // attestation key 64, then (v4 only) certification data type 2 + size 4, then the QE report.
    private const int TdxBodyOffset = 48;
    private const int TdxQeReportOffset = 48 + 584 + 4 + 64 + 64 + 6;
    private const int SgxBodyOffset = 48;
    private const int SgxQeReportOffset = 48 + 384 + 4 + 64 + 64;

    private static readonly IntelDcapVerifierOptions SgxSampleAccepted = new()
    {
        AcceptedTcbStatuses = new HashSet<DcapTcbStatus> { DcapTcbStatus.UpToDate, DcapTcbStatus.ConfigurationAndSWHardeningNeeded },
    };

    [Fact]
    public void Tdx_sample_verifies_at_2025_07_01_as_UpToDate_with_the_expected_MRTD()
    {
        var claims = Tdx().Verify(TdxEvidence());

        Assert.Equal("intel-tdx", claims.Platform);
        Assert.False(claims.Simulated);
        Assert.False(claims.Debug);
        Assert.Equal(TdxMrtd, claims.Measurement);
        Assert.Equal("UpToDate", claims.PlatformTests["tcb.status"]);
        Assert.Equal("", claims.PlatformTests["tcb.advisories"]);
        Assert.Equal("b0c06f000000", claims.PlatformTests["fmspc"]);
        Assert.Equal(TdxTime, claims.IssuedAt);
        Assert.Equal(64, claims.ReportData.Length);
    }

    [Fact]
    public void Tdx_claims_carry_the_TD_registers_as_platform_tests()
    {
        var quote = DcapQuote.Parse(Samples.Read(TdxDir, "dcapqvl-tdx-quote-v4.bin"));
        var claims = Tdx().Verify(TdxEvidence());

        Assert.Equal(
            ["fmspc", "mrconfigid", "mrowner", "mrseam", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "tcb.advisories", "tcb.status"],
            claims.PlatformTests.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(Convert.ToHexStringLower(quote.TdBody!.Rtmr(3)), claims.PlatformTests["rtmr3"]);
        Assert.Equal(Convert.ToHexStringLower(quote.TdBody.MrSeam), claims.PlatformTests["mrseam"]);
        Assert.Equal(quote.TdBody.ReportData.ToArray(), claims.ReportData);
    }

    [Fact]
    public void Tdx_quote_parser_accepts_the_samples_trailing_zero_padding()
    {
        var quote = DcapQuote.Parse(Samples.Read(TdxDir, "dcapqvl-tdx-quote-v4.bin"));

        Assert.Equal(4, quote.Version);
        Assert.Equal(DcapTeeType.Tdx, quote.TeeType);
        Assert.Equal(70, quote.TrailingPadding);
        Assert.Equal(TdxMrtd, Convert.ToHexStringLower(quote.TdBody!.MrTd));
    }

    [Fact]
    public void Sgx_sample_verifies_with_ConfigurationAndSWHardeningNeeded_accepted()
    {
        var claims = Sgx(SgxSampleAccepted).Verify(SgxEvidence());

        Assert.Equal("intel-sgx", claims.Platform);
        Assert.Equal(SgxMrenclave, claims.Measurement);
        Assert.Equal("ConfigurationAndSWHardeningNeeded", claims.PlatformTests["tcb.status"]);
        Assert.Equal("INTEL-SA-00289,INTEL-SA-00615", claims.PlatformTests["tcb.advisories"]);
        Assert.Equal("00a067110000", claims.PlatformTests["fmspc"]);
        Assert.StartsWith("Hello, world!", Encoding.ASCII.GetString(claims.ReportData), StringComparison.Ordinal);
        Assert.False(claims.Debug);
    }

    [Fact]
    public void Sgx_claims_carry_signer_product_and_svn_as_platform_tests()
    {
        var quote = DcapQuote.Parse(Samples.Read(SgxDir, "dcapqvl-sgx-quote-v3.bin"));
        var claims = Sgx(SgxSampleAccepted).Verify(SgxEvidence());

        Assert.Equal(
            ["fmspc", "isvprodid", "isvsvn", "mrsigner", "tcb.advisories", "tcb.status"],
            claims.PlatformTests.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(Convert.ToHexStringLower(quote.SgxBody!.MrSigner), claims.PlatformTests["mrsigner"]);
        Assert.Equal(quote.SgxBody.IsvProdId.ToString(System.Globalization.CultureInfo.InvariantCulture), claims.PlatformTests["isvprodid"]);
        Assert.Equal(quote.SgxBody.IsvSvn.ToString(System.Globalization.CultureInfo.InvariantCulture), claims.PlatformTests["isvsvn"]);
    }

    [Fact]
    public void Sgx_sample_is_refused_under_the_default_accepted_statuses_naming_status_and_advisories()
    {
        var e = Assert.Throws<EvidenceException>(() => Sgx().Verify(SgxEvidence()));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("ConfigurationAndSWHardeningNeeded", e.Message, StringComparison.Ordinal);
        Assert.Contains("INTEL-SA-00289", e.Message, StringComparison.Ordinal);
        Assert.Contains("INTEL-SA-00615", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2025-06-19T10:00:00Z", "PCK CRL was issued")] // before the PCK CRL was issued
    [InlineData("2025-06-19T10:10:00Z", "TCB info was issued")] // CRLs current, TCB info not yet issued
    [InlineData("2025-06-19T10:20:00Z", "QE identity was issued")] // TCB info current, QE identity not yet issued
    [InlineData("2025-07-19T10:05:00Z", "PCK CRL expired")] // after the PCK CRL's nextUpdate
    [InlineData("2025-09-01T00:00:00Z", "expired")] // after every collateral nextUpdate
    [InlineData("2040-01-01T00:00:00Z", "certificate has expired")] // after the PCK and TCB signing certificates expired
    [InlineData("2015-01-01T00:00:00Z", "not yet valid")] // before any certificate was valid
    public void Tdx_sample_is_refused_outside_the_collateral_and_certificate_validity(string at, string reason)
    {
        var e = Assert.Throws<EvidenceException>(() => Tdx(at: DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture)).Verify(TdxEvidence()));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sgx_sample_is_refused_after_its_collateral_expired()
    {
        var verifier = Sgx(SgxSampleAccepted, at: new DateTimeOffset(2025, 7, 21, 0, 0, 0, TimeSpan.Zero));

        var e = Assert.Throws<EvidenceException>(() => verifier.Verify(SgxEvidence()));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("expired", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(TdxBodyOffset + 136)] // MRTD
    [InlineData(TdxBodyOffset + 520)] // REPORTDATA
    [InlineData(TdxBodyOffset + 0)] // TEE_TCB_SVN
    [InlineData(40)] // header user data
    public void Tdx_quote_with_a_flipped_byte_in_header_or_body_is_untrusted(int offset)
    {
        var quote = Samples.Read(TdxDir, "dcapqvl-tdx-quote-v4.bin");
        quote[offset] ^= 0x01;

        var e = Assert.Throws<EvidenceException>(() => Tdx().Verify(Envelope(TdxEvidencePlatform, quote, TdxCollateral())));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("quote signature", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sgx_quote_with_a_flipped_byte_in_MRENCLAVE_is_untrusted()
    {
        var quote = Samples.Read(SgxDir, "dcapqvl-sgx-quote-v3.bin");
        quote[SgxBodyOffset + 64] ^= 0x80;

        var e = Assert.Throws<EvidenceException>(() => Sgx(SgxSampleAccepted).Verify(Envelope(SgxEvidencePlatform, quote, SgxCollateral())));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("quote signature", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(TdxDir, TdxQeReportOffset + 64)] // QE MRENCLAVE
    [InlineData(TdxDir, TdxQeReportOffset + 320)] // QE report data
    [InlineData(SgxDir, SgxQeReportOffset + 258)] // QE ISVSVN
    public void Quote_with_a_flipped_byte_in_the_QE_report_is_untrusted(string dir, int offset)
    {
        var (verifier, platform, file, collateral) = dir == TdxDir
            ? (Tdx(), TdxEvidencePlatform, "dcapqvl-tdx-quote-v4.bin", TdxCollateral())
            : (Sgx(SgxSampleAccepted), SgxEvidencePlatform, "dcapqvl-sgx-quote-v3.bin", SgxCollateral());
        var quote = Samples.Read(dir, file);
        quote[offset] ^= 0x01;

        var e = Assert.Throws<EvidenceException>(() => verifier.Verify(Envelope(platform, quote, collateral)));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("QE report signature", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Quote_whose_attestation_key_was_swapped_is_untrusted()
    {
        var quote = Samples.Read(TdxDir, "dcapqvl-tdx-quote-v4.bin");
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var p = other.ExportParameters(false);
        var keyOffset = 48 + 584 + 4 + 64;
        p.Q.X!.CopyTo(quote, keyOffset);
        p.Q.Y!.CopyTo(quote, keyOffset + 32);

        var e = Assert.Throws<EvidenceException>(() => Tdx().Verify(Envelope(TdxEvidencePlatform, quote, TdxCollateral())));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("QE report data", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"tcbStatus\":\"OutOfDate\"", "\"tcbStatus\":\"UpToDate\"")] // upgrade a level
    [InlineData("\"pcesvn\":11", "\"pcesvn\":10")] // lower a requirement
    [InlineData("\"fmspc\":\"B0C06F000000\"", "\"fmspc\":\"b0c06f000000\"")] // same value, different bytes
    public void Tdx_sample_with_tampered_TCB_info_json_is_untrusted(string from, string to)
    {
        var collateral = EditCollateral(TdxCollateral(), "tcb_info", json =>
        {
            Assert.Contains(from, json, StringComparison.Ordinal);
            return ReplaceFirst(json, from, to);
        });

        var e = Assert.Throws<EvidenceException>(() => Tdx().Verify(Envelope(TdxEvidencePlatform, TdxQuote(), collateral)));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("TCB info signature", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sgx_sample_with_tampered_TCB_info_json_is_untrusted()
    {
        var collateral = EditCollateral(SgxCollateral(), "tcb_info", json => ReplaceFirst(json, "\"tcbStatus\":\"SWHardeningNeeded\"", "\"tcbStatus\":\"UpToDate\""));

        var e = Assert.Throws<EvidenceException>(() => Sgx(SgxSampleAccepted).Verify(Envelope(SgxEvidencePlatform, SgxQuote(), collateral)));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("TCB info signature", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tdx_sample_with_tampered_QE_identity_json_is_untrusted()
    {
        var collateral = EditCollateral(TdxCollateral(), "qe_identity", json => ReplaceFirst(json, "\"isvsvn\":4", "\"isvsvn\":1"));

        var e = Assert.Throws<EvidenceException>(() => Tdx().Verify(Envelope(TdxEvidencePlatform, TdxQuote(), collateral)));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("QE identity signature", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tdx_quote_with_the_SGX_samples_collateral_is_untrusted()
    {
        var e = Assert.Throws<EvidenceException>(() => Tdx(at: new DateTimeOffset(2025, 7, 1, 0, 0, 0, TimeSpan.Zero)).Verify(Envelope(TdxEvidencePlatform, TdxQuote(), SgxCollateral())));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
    }

    [Fact]
    public void Tdx_sample_is_untrusted_under_a_different_pinned_root()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Intel SGX Root CA, O=Intel Corporation, L=Santa Clara, S=CA, C=US", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var fakeRoot = request.CreateSelfSigned(new DateTimeOffset(2018, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2049, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var verifier = new IntelDcapVerifier(DcapTeeType.Tdx, fakeRoot.RawData, new FixedClock(TdxTime));

        var e = Assert.Throws<EvidenceException>(() => verifier.Verify(TdxEvidence()));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("pinned Intel SGX Root CA", e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, byte[]> GarbageDocuments() => new()
    {
        { "empty", [] },
        { "random bytes", RandomNumberGenerator.GetBytes(300) },
        { "CBOR text, not a map", [0x63, 0x61, 0x62, 0x63] },
        { "map without quote", IntelDcapEvidenceTestData.MapWith(("collateral", "{}")) },
        { "map with unknown key", IntelDcapEvidenceTestData.MapWith(("quote", new byte[] { 1, 2, 3 }), ("extra", "x")) },
        { "map with quote as text", IntelDcapEvidenceTestData.MapWith(("quote", "not bytes")) },
        { "trailing bytes after the map", [.. IntelDcapEvidence.Encode(TdxQuote(), TdxCollateral()), 0x00] },
        { "truncated CBOR", IntelDcapEvidence.Encode(TdxQuote(), TdxCollateral())[..500] },
        { "quote truncated in the header", IntelDcapEvidence.Encode(TdxQuote()[..40], TdxCollateral()) },
        { "quote truncated in the body", IntelDcapEvidence.Encode(TdxQuote()[..600], TdxCollateral()) },
        { "quote truncated in the signature data", IntelDcapEvidence.Encode(TdxQuote()[..3000], TdxCollateral()) },
        { "quote followed by non-zero bytes", IntelDcapEvidence.Encode([.. TdxQuote(), 0x00, 0x07], TdxCollateral()) },
        { "quote version 2", IntelDcapEvidence.Encode(WithUInt16(TdxQuote(), 0, 2), TdxCollateral()) },
        { "attestation key type 3", IntelDcapEvidence.Encode(WithUInt16(TdxQuote(), 2, 3), TdxCollateral()) },
        { "unknown tee type", IntelDcapEvidence.Encode(WithUInt16(TdxQuote(), 4, 0x82), TdxCollateral()) },
        { "SGX quote tagged intel-tdx", IntelDcapEvidence.Encode(SgxQuote(), SgxCollateral()) },
        { "signature data length too large", IntelDcapEvidence.Encode(WithUInt16(TdxQuote(), 48 + 584 + 2, 0x7fff), TdxCollateral()) },
        { "certification data type 5 at top level of v4", IntelDcapEvidence.Encode(WithUInt16(TdxQuote(), 48 + 584 + 4 + 128, 5), TdxCollateral()) },
        { "no collateral", IntelDcapEvidence.Encode(TdxQuote(), null) },
        { "collateral not JSON", IntelDcapEvidence.Encode(TdxQuote(), "not json") },
        { "collateral missing tcb_info", IntelDcapEvidence.Encode(TdxQuote(), RemoveMember(TdxCollateral(), "tcb_info")) },
        { "collateral with non-hex CRL", IntelDcapEvidence.Encode(TdxQuote(), SetMember(TdxCollateral(), "pck_crl", "zz")) },
        { "collateral with a CRL that is not DER", IntelDcapEvidence.Encode(TdxQuote(), SetMember(TdxCollateral(), "root_ca_crl", "3003020101")) },
        { "collateral with a short signature", IntelDcapEvidence.Encode(TdxQuote(), SetMember(TdxCollateral(), "tcb_info_signature", "00ff")) },
        { "collateral with a garbage issuer chain", IntelDcapEvidence.Encode(TdxQuote(), SetMember(TdxCollateral(), "tcb_info_issuer_chain", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")) },
    };

    [Theory]
    [MemberData(nameof(GarbageDocuments))]
    public void Garbage_or_truncated_evidence_is_invalid(string what, byte[] document)
    {
        var e = Assert.Throws<EvidenceException>(() => Tdx().Verify(new Evidence(TdxEvidencePlatform, document)));

        Assert.True(e.Refusal == KeyUseRefusal.EvidenceInvalid, $"{what}: {e.Refusal}: {e.Message}");
    }

    [Fact]
    public void Flipping_any_byte_of_the_TDX_quote_never_yields_other_claims_or_an_unhandled_exception()
    {
        var original = TdxQuote();
        var collateral = TdxCollateral();
        var verifier = Tdx();
        var expected = verifier.Verify(TdxEvidence());
        for (var offset = 0; offset < original.Length; offset += 11)
        {
            var quote = (byte[])original.Clone();
            quote[offset] ^= 0x01;
            NormalisedClaims claims;
            try
            {
                claims = verifier.Verify(Envelope(TdxEvidencePlatform, quote, collateral));
            }
            catch (EvidenceException)
            {
                continue;
            }
            // Only bytes outside what is signed or bound (e.g. PEM whitespace) may change without a refusal.
            Assert.Equal(expected.Measurement, claims.Measurement);
            Assert.Equal(expected.ReportData, claims.ReportData);
            Assert.Equal(expected.PlatformTests, claims.PlatformTests);
        }
    }

    [Fact]
    public void Sgx_report_DEBUG_attribute_is_read_from_flags_bit_1()
    {
        var bytes = SgxQuote();
        Assert.False(DcapQuote.Parse(bytes).SgxBody!.Debug);

        bytes[SgxBodyOffset + 48] |= 0x02;

        Assert.True(DcapQuote.Parse(bytes).SgxBody!.Debug);
    }

    [Fact]
    public void Td_report_DEBUG_attribute_is_read_from_TUD_bit_0()
    {
        var bytes = TdxQuote();
        Assert.False(DcapQuote.Parse(bytes).TdBody!.Debug);

        bytes[TdxBodyOffset + 120] |= 0x01;

        Assert.True(DcapQuote.Parse(bytes).TdBody!.Debug);
    }

    [Fact]
    public void Evidence_for_another_platform_tag_is_invalid()
    {
        var e = Assert.Throws<EvidenceException>(() => Tdx().Verify(new Evidence("intel-sgx", IntelDcapEvidence.Encode(TdxQuote(), TdxCollateral()))));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
    }

    [Fact]
    public void Every_single_byte_truncation_of_the_TDX_quote_is_refused_without_an_unhandled_exception()
    {
        var quote = TdxQuote();
        var collateral = TdxCollateral();
        var verifier = Tdx();
        for (var length = 0; length < quote.Length - 70; length += 7)
        {
            var e = Assert.Throws<EvidenceException>(() => verifier.Verify(Envelope(TdxEvidencePlatform, quote[..length], collateral)));
            Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        }
    }

    [Fact]
    public void Collateral_is_taken_from_the_configured_directory_when_the_evidence_has_none()
    {
        var dir = Directory.CreateTempSubdirectory("twinseal-dcap-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "tdx-b0c06f000000.json"), TdxCollateral());
            var verifier = Tdx(new IntelDcapVerifierOptions { CollateralDirectory = dir.FullName });

            var claims = verifier.Verify(Envelope(TdxEvidencePlatform, TdxQuote(), null));

            Assert.Equal(TdxMrtd, claims.Measurement);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Collateral_older_than_the_minimum_tcb_evaluation_data_number_is_untrusted()
    {
        var verifier = Tdx(new IntelDcapVerifierOptions { MinimumTcbEvaluationDataNumber = 18 });

        var e = Assert.Throws<EvidenceException>(() => verifier.Verify(TdxEvidence()));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("tcbEvaluationDataNumber 17", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Accepting_a_revoked_TCB_is_refused_at_construction()
    {
        var options = new IntelDcapVerifierOptions { AcceptedTcbStatuses = new HashSet<DcapTcbStatus> { DcapTcbStatus.Revoked } };

        Assert.Throws<ArgumentException>(() => Tdx(options));
    }

    [Fact]
    public void Create_tags_evidence_by_the_quotes_tee_type()
    {
        Assert.Equal("intel-tdx", IntelDcapEvidence.Create(TdxQuote(), null).Platform);
        Assert.Equal("intel-sgx", IntelDcapEvidence.Create(SgxQuote(), null).Platform);
    }

    [Fact]
    public void Envelope_round_trips_quote_and_collateral()
    {
        var (quote, collateral) = IntelDcapEvidence.Decode(IntelDcapEvidence.Encode(TdxQuote(), "{\"a\":1}"));

        Assert.Equal(TdxQuote(), quote);
        Assert.Equal("{\"a\":1}", collateral);
    }

    [Fact]
    public void Version_5_quote_with_a_TD_1_0_body_descriptor_parses_and_signs_over_the_descriptor()
    {
        var v4 = TdxQuote();
        byte[] v5 = [.. v4[..48], 2, 0, 0x48, 0x02, 0, 0, .. v4[48..]];
        v5[0] = 5;

        var quote = DcapQuote.Parse(v5);

        Assert.Equal(5, quote.Version);
        Assert.False(quote.TdBody!.IsTd15);
        Assert.Equal(TdxMrtd, Convert.ToHexStringLower(quote.TdBody.MrTd));
        Assert.Equal(48 + 6 + 584, quote.SignedData.Length);
    }

    [Fact]
    public void Version_5_quote_whose_body_descriptor_contradicts_its_size_is_invalid()
    {
        var v4 = TdxQuote();
        byte[] v5 = [.. v4[..48], 3, 0, 0x48, 0x02, 0, 0, .. v4[48..]];
        v5[0] = 5;

        var e = Assert.Throws<EvidenceException>(() => DcapQuote.Parse(v5));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
    }

    // ───────────── helpers ─────────────

    private const string TdxEvidencePlatform = IntelDcapEvidence.TdxPlatform;
    private const string SgxEvidencePlatform = IntelDcapEvidence.SgxPlatform;

    private static IntelDcapVerifier Tdx(IntelDcapVerifierOptions? options = null, DateTimeOffset? at = null)
        => new(DcapTeeType.Tdx, Samples.Read(TdxDir, "intel-sgx-root-ca.der"), new FixedClock(at ?? TdxTime), options);

    private static IntelDcapVerifier Sgx(IntelDcapVerifierOptions? options = null, DateTimeOffset? at = null)
        => new(DcapTeeType.Sgx, Samples.Read(SgxDir, "intel-sgx-root-ca.der"), new FixedClock(at ?? SgxTime), options);

    private static byte[] TdxQuote() => Samples.Read(TdxDir, "dcapqvl-tdx-quote-v4.bin");

    private static byte[] SgxQuote() => Samples.Read(SgxDir, "dcapqvl-sgx-quote-v3.bin");

    private static string TdxCollateral() => File.ReadAllText(Path.Combine(Samples.Dir(TdxDir), "dcapqvl-tdx-collateral.json"));

    private static string SgxCollateral() => File.ReadAllText(Path.Combine(Samples.Dir(SgxDir), "dcapqvl-sgx-collateral.json"));

    private static Evidence TdxEvidence() => Envelope(TdxEvidencePlatform, TdxQuote(), TdxCollateral());

    private static Evidence SgxEvidence() => Envelope(SgxEvidencePlatform, SgxQuote(), SgxCollateral());

    private static Evidence Envelope(string platform, byte[] quote, string? collateral) => new(platform, IntelDcapEvidence.Encode(quote, collateral));

    private static string EditCollateral(string collateral, string member, Func<string, string> edit)
    {
        var node = JsonNode.Parse(collateral)!.AsObject();
        node[member] = edit(node[member]!.GetValue<string>());
        return node.ToJsonString();
    }

    private static string SetMember(string collateral, string member, string value) => EditCollateral(collateral, member, _ => value);

    private static string RemoveMember(string collateral, string member)
    {
        var node = JsonNode.Parse(collateral)!.AsObject();
        node.Remove(member);
        return node.ToJsonString();
    }

    private static string ReplaceFirst(string text, string from, string to)
    {
        var i = text.IndexOf(from, StringComparison.Ordinal);
        Assert.True(i >= 0, $"'{from}' not found");
        return string.Concat(text.AsSpan(0, i), to, text.AsSpan(i + from.Length));
    }

    private static byte[] WithUInt16(byte[] data, int offset, ushort value)
    {
        data[offset] = (byte)value;
        data[offset + 1] = (byte)(value >> 8);
        return data;
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}

internal static class IntelDcapEvidenceTestData
{
    /// <summary>A CBOR map with the given text keys and byte-string or text-string values.</summary>
    public static byte[] MapWith(params (string Key, object Value)[] entries)
    {
        var w = new System.Formats.Cbor.CborWriter();
        w.WriteStartMap(entries.Length);
        foreach (var (key, value) in entries)
        {
            w.WriteTextString(key);
            if (value is byte[] b)
                w.WriteByteString(b);
            else
                w.WriteTextString((string)value);
        }
        w.WriteEndMap();
        return w.Encode();
    }
}
