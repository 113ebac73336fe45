using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Protocol;
using static TwinSeal.Attestation.Tests.HardwareSampleClaims;

namespace TwinSeal.Attestation.Tests;

/// <summary>
/// Revoking the real PCK certificate by editing Intel's real PCK CRL: nobody but Intel can sign a CRL, so the edited
/// list must fail its own signature check before the verifier would ever read its entries.
/// </summary>
public sealed class IntelDcapRealCrlTests
{
    [Theory]
    [InlineData("intel-tdx")]
    [InlineData("intel-sgx")]
    public void Pck_crl_edited_to_list_the_pck_leaf_fails_the_crls_own_signature_check(string platform)
    {
        var tdx = platform == "intel-tdx";
        var quote = tdx ? TdxQuote() : SgxQuote();
        var collateral = JsonNode.Parse(tdx ? TdxCollateral() : SgxCollateral())!.AsObject();
        var crl = Convert.FromHexString(collateral["pck_crl"]!.GetValue<string>());
        var pckSerial = PckLeafSerial(quote);
        Assert.DoesNotContain(pckSerial, RevokedSerials(crl));

        var edited = WithRevokedSerial(crl, pckSerial, DcapTime.AddDays(-1));
        collateral["pck_crl"] = Convert.ToHexStringLower(edited);

        // The edit is a well-formed CRL that does list the leaf; only its signature no longer matches.
        Assert.Contains(pckSerial, RevokedSerials(edited));
        var verifier = DcapVerifier(tdx ? DcapTeeType.Tdx : DcapTeeType.Sgx);
        var e = Assert.Throws<EvidenceException>(() => verifier.Verify(new Evidence(platform, IntelDcapEvidence.Encode(quote, collateral.ToJsonString()))));
        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.StartsWith("PCK CRL signature does not verify", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_unedited_real_pck_crl_has_44_entries_for_tdx_and_does_not_list_the_leaf()
    {
        var crl = Convert.FromHexString(JsonNode.Parse(TdxCollateral())!["pck_crl"]!.GetValue<string>());

        var serials = RevokedSerials(crl);

        Assert.Equal(44, serials.Count);
        Assert.DoesNotContain(PckLeafSerial(TdxQuote()), serials);
        Assert.Equal(TdxMrtd, Tdx().Measurement);
    }

    private static byte[] PckLeafSerial(byte[] quote)
    {
        var pem = Encoding.Latin1.GetString(DcapQuote.Parse(quote).PckCertChainPem);
        Assert.True(PemEncoding.TryFind(pem, out var fields));
        using var leaf = X509CertificateLoader.LoadCertificate(Convert.FromBase64String(pem[fields.Base64Data]));
        Assert.Contains("SGX PCK Certificate", leaf.Subject, StringComparison.Ordinal);
        return leaf.SerialNumberBytes.ToArray(); // big-endian two's complement, as in the CRL
    }

    private static List<byte[]> RevokedSerials(byte[] crl)
    {
        var tbs = new AsnReader(crl, AsnEncodingRules.DER).ReadSequence().ReadSequence();
        ReadHeader(tbs);
        var result = new List<byte[]>();
        if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
        {
            var revoked = tbs.ReadSequence();
            while (revoked.HasData)
                result.Add(revoked.ReadSequence().ReadIntegerBytes().ToArray());
        }
        return result;
    }

    /// <summary>Re-encodes the CRL with one more revokedCertificates entry, keeping Intel's signature.</summary>
    private static byte[] WithRevokedSerial(byte[] crl, byte[] serial, DateTimeOffset revokedAt)
    {
        var outer = new AsnReader(crl, AsnEncodingRules.DER).ReadSequence();
        var tbs = outer.ReadSequence();
        var signatureAlgorithm = outer.ReadEncodedValue();
        var signature = outer.ReadEncodedValue();

        var w = new AsnWriter(AsnEncodingRules.DER);
        using (w.PushSequence())
        {
            using (w.PushSequence())
            {
                foreach (var field in ReadHeader(tbs))
                    w.WriteEncodedValue(field.Span);
                using (w.PushSequence())
                {
                    if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
                    {
                        var revoked = tbs.ReadSequence();
                        while (revoked.HasData)
                            w.WriteEncodedValue(revoked.ReadEncodedValue().Span);
                    }
                    using (w.PushSequence())
                    {
                        w.WriteInteger(serial);
                        w.WriteUtcTime(revokedAt);
                    }
                }
                while (tbs.HasData)
                    w.WriteEncodedValue(tbs.ReadEncodedValue().Span); // crlExtensions [0]
            }
            w.WriteEncodedValue(signatureAlgorithm.Span);
            w.WriteEncodedValue(signature.Span);
        }
        return w.Encode();
    }

    /// <summary>Reads the TBSCertList fields before revokedCertificates: version, signature, issuer, thisUpdate, nextUpdate.</summary>
    private static List<ReadOnlyMemory<byte>> ReadHeader(AsnReader tbs)
    {
        var fields = new List<ReadOnlyMemory<byte>>();
        if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
            fields.Add(tbs.ReadEncodedValue()); // version
        fields.Add(tbs.ReadEncodedValue()); // signature
        fields.Add(tbs.ReadEncodedValue()); // issuer
        fields.Add(tbs.ReadEncodedValue()); // thisUpdate
        if (tbs.HasData && (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) || tbs.PeekTag().HasSameClassAndValue(Asn1Tag.GeneralizedTime)))
            fields.Add(tbs.ReadEncodedValue()); // nextUpdate
        return fields;
    }
}
