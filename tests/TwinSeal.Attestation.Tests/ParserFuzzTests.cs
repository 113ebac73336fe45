using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Security.Cryptography.Cose;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Attestation.AwsNitro;
using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Attestation.Sim;
using TwinSeal.Protocol;
using static TwinSeal.Attestation.Tests.HardwareSampleClaims;

namespace TwinSeal.Attestation.Tests;

/// <summary>
/// Property-based tests (FsCheck, 2,000 cases per property by default) over every evidence parser: random bytes, truncations,
/// byte mutations, oversized inputs (valid input plus random or zero tails, and inputs past each parser's limit) built
/// from the real samples either parse or are refused with the parser's documented exception — never anything else.
/// A failing case is printed as (kind, seed), which regenerates the exact input through <see cref="Input"/>.
/// </summary>
public sealed class ParserFuzzTests
{
    /// <summary>
    /// The run is reproducible by default (a fixed seed, so CI does not flake on a case nobody has looked at);
    /// <c>TWINSEAL_FUZZ_SEED=random</c> or a number explores other inputs and <c>TWINSEAL_FUZZ_CASES</c> runs more of
    /// them, as in <c>TWINSEAL_FUZZ_SEED=random TWINSEAL_FUZZ_CASES=100000 dotnet test --filter ParserFuzzTests</c>.
    /// A failure prints the seed it ran with.
    /// </summary>
    private static readonly Config Quick = FuzzConfig();

    private static Config FuzzConfig()
    {
        var cases = int.TryParse(Environment.GetEnvironmentVariable("TWINSEAL_FUZZ_CASES"), out var n) && n > 0 ? n : 2000;
        var seedText = Environment.GetEnvironmentVariable("TWINSEAL_FUZZ_SEED");
        ulong seed = seedText switch
        {
            null or "" => 0x7715_5EA1_2026_1127UL,
            "random" => (ulong)System.Random.Shared.NextInt64(),
            _ => ulong.Parse(seedText, System.Globalization.CultureInfo.InvariantCulture),
        };
        return Config.QuickThrowOnFailure.WithMaxTest(cases).WithQuietOnSuccess(true)
            .WithReplay(new Replay(new Rnd(seed, 0x9E37_79B9_7F4A_7C15UL), Microsoft.FSharp.Core.FSharpOption<int>.None))
            .WithName($"TWINSEAL_FUZZ_SEED={seed}");
    }

    private enum Kind
    {
        Random,
        Truncated,
        Mutated,
        TruncatedMutated,
        RandomTail,
        ZeroTail,
        PastLimit,
    }

    /// <summary>The input of one case: deterministic in (kind, seed), so a counterexample can be replayed.</summary>
    private static byte[] Input(byte[] valid, int limit, Kind kind, int seed)
    {
        var rnd = new Random(seed);
        byte[] Bytes(int n)
        {
            var b = new byte[n];
            rnd.NextBytes(b);
            return b;
        }
        byte[] Mutate(byte[] data)
        {
            var copy = data.ToArray();
            if (copy.Length == 0)
                return copy;
            var edits = rnd.Next(1, 9);
            for (var i = 0; i < edits; i++)
            {
                var at = rnd.Next(copy.Length);
                copy[at] = rnd.Next(3) == 0 ? (byte)(copy[at] ^ (1 << rnd.Next(8))) : (byte)rnd.Next(256);
            }
            return copy;
        }
        return kind switch
        {
            Kind.Random => Bytes(rnd.Next(0, valid.Length * 2 + 2)),
            Kind.Truncated => valid[..rnd.Next(0, valid.Length)],
            Kind.Mutated => Mutate(valid),
            Kind.TruncatedMutated => Mutate(valid[..rnd.Next(0, valid.Length)]),
            Kind.RandomTail => [.. valid, .. Bytes(rnd.Next(1, 4097))],
            Kind.ZeroTail => [.. valid, .. new byte[rnd.Next(1, 4097)]],
            _ => [.. Mutate(valid), .. Bytes(limit + 1 - valid.Length + rnd.Next(0, 1024))],
        };
    }

    private static void ForAllInputs(byte[] valid, int limit, Action<byte[]> parse, Func<Exception, bool> documented)
    {
        var kinds = Gen.Elements(Enum.GetValues<Kind>());
        var seeds = Gen.Choose(0, int.MaxValue);
        var cases = kinds.SelectMany(k => seeds.Select(s => (Kind: k, Seed: s)));
        Check.One(Quick, Prop.ForAll(Arb.From(cases), c =>
        {
            var input = Input(valid, limit, c.Kind, c.Seed);
            try
            {
                parse(input);
            }
            catch (Exception e) when (documented(e))
            {
            }
            return true; // any other exception escapes and falsifies the property, with the case printed
        }));
    }

    private static bool Evidence(Exception e) => e is EvidenceException;

    // ───────────── AMD SEV-SNP ─────────────

    [Fact]
    public void SevSnpReport_Parse_throws_only_EvidenceException()
        => ForAllInputs(SnpReport(), SevSnpReport.Size, b => SevSnpReport.Parse(b), Evidence);

    [Fact]
    public void SevSnpEvidence_Decode_throws_only_EvidenceException()
        => ForAllInputs(SnpEvidence().Document, SevSnpEvidence.MaxDocumentBytes, b => SevSnpEvidence.Decode(b), Evidence);

    [Fact]
    public void SevSnpVerifier_on_mutated_envelopes_throws_only_EvidenceException()
    {
        var verifier = SnpVerifier();
        ForAllInputs(SnpEvidence().Document, SevSnpEvidence.MaxDocumentBytes, b => verifier.Verify(new Evidence("amd-sev-snp", b)), Evidence);
    }

    // ───────────── Intel DCAP ─────────────

    [Fact]
    public void DcapQuote_Parse_of_TDX_quotes_throws_only_EvidenceException()
        => ForAllInputs(TdxQuote(), DcapQuote.MaxSize, b => DcapQuote.Parse(b), Evidence);

    [Fact]
    public void DcapQuote_Parse_of_SGX_quotes_throws_only_EvidenceException()
        => ForAllInputs(SgxQuote(), DcapQuote.MaxSize, b => DcapQuote.Parse(b), Evidence);

    [Fact]
    public void IntelDcapEvidence_Decode_throws_only_EvidenceException()
        => ForAllInputs(IntelDcapEvidence.Encode(TdxQuote(), "{}"), IntelDcapEvidence.MaxDocumentSize, b => IntelDcapEvidence.Decode(b), Evidence);

    [Fact]
    public void IntelDcapVerifier_on_mutated_TDX_quotes_throws_only_EvidenceException()
    {
        var verifier = DcapVerifier(DcapTeeType.Tdx);
        var collateral = TdxCollateral();
        ForAllInputs(TdxQuote(), DcapQuote.MaxSize, b => verifier.Verify(new Evidence("intel-tdx", IntelDcapEvidence.Encode(b, collateral))), Evidence);
    }

    // ───────────── AWS Nitro ─────────────

    private static byte[] NitroPayload() => CoseMessage.DecodeSign1(NitroDocument()).Content!.Value.ToArray();

    [Fact]
    public void AwsNitroDocument_Decode_throws_only_EvidenceException()
        => ForAllInputs(NitroPayload(), 64 * 1024, b => AwsNitroDocument.Decode(b), Evidence);

    [Fact]
    public void AwsNitroVerifier_on_mutated_COSE_documents_throws_only_EvidenceException()
    {
        var verifier = NitroVerifier();
        ForAllInputs(NitroDocument(), 64 * 1024, b => verifier.Verify(new Evidence("aws-nitro", b)), Evidence);
    }

    // ───────────── simulated claims ─────────────

    private static byte[] SimClaimsSample() => new SimClaims("secure-match", Enumerable.Range(0, 48).Select(i => (byte)i).ToArray(),
        new Dictionary<string, string> { ["kat.sha-256"] = "pass", ["health.rng"] = "pass" },
        Enumerable.Range(0x80, 64).Select(i => (byte)i).ToArray(), DateTimeOffset.FromUnixTimeSeconds(1_700_000_000)).Encode();

    /// <summary>
    /// <see cref="SimClaims.Decode"/> documents no exception type of its own; its one caller, <see cref="SimEvidenceVerifier"/>,
    /// maps <see cref="CborContentException"/>, <see cref="InvalidOperationException"/>, <see cref="FormatException"/> and
    /// <see cref="OverflowException"/> to <c>evidence-invalid</c>, so those are what it may throw.
    /// </summary>
    private static bool SimDocumented(Exception e) => e is CborContentException or InvalidOperationException or FormatException or OverflowException;

    [Fact]
    public void SimClaims_Decode_throws_only_the_exceptions_its_verifier_maps()
        => ForAllInputs(SimClaimsSample(), 64 * 1024, b => SimClaims.Decode(b), SimDocumented);

    [Fact]
    public void SimClaims_Decode_refuses_an_issued_at_outside_the_representable_range_with_a_documented_exception()
    {
        var w = new CborWriter(CborConformanceMode.Canonical);
        w.WriteStartMap(7);
        w.WriteTextString("app"); w.WriteTextString("secure-match");
        w.WriteTextString("iat"); w.WriteInt64(long.MaxValue);
        w.WriteTextString("platform"); w.WriteTextString("sim");
        w.WriteTextString("simulated"); w.WriteBoolean(true);
        w.WriteTextString("measurement"); w.WriteByteString(new byte[48]);
        w.WriteTextString("report_data"); w.WriteByteString(new byte[64]);
        w.WriteTextString("tests"); w.WriteStartMap(0); w.WriteEndMap();
        w.WriteEndMap();

        var e = Record.Exception(() => SimClaims.Decode(w.Encode()));

        Assert.True(e is not null && SimDocumented(e), $"threw {e?.GetType().Name}");
    }

    private static (SimEvidenceVerifier Verifier, byte[] Document) SignedSimEvidence()
    {
        var now = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest("CN=fuzz sim root", rootKey, HashAlgorithmName.SHA256);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        using var root = rootRequest.CreateSelfSigned(now.AddDays(-1), now.AddYears(1));
        using var deviceKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var deviceRequest = new CertificateRequest("CN=fuzz sim device", deviceKey, HashAlgorithmName.SHA256);
        deviceRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        using var device = deviceRequest.Create(root, now.AddDays(-1), now.AddYears(1), [1, 2, 3, 4]);
        using var attester = SimAttester.FromKey(deviceKey, device);
        var document = attester.Sign(SimClaims.Decode(SimClaimsSample())).Document;
        var verifier = new SimEvidenceVerifier([X509CertificateLoader.LoadCertificate(root.RawData)], new SampleClock(now));
        Assert.Equal("sim", verifier.Verify(new Evidence("sim", document)).Platform);
        return (verifier, document);
    }

    /// <summary>A COSE_Sign1 whose protected header has a label past 32 bits: .NET's decoder throws OverflowException on it.</summary>
    private static byte[] CoseWithHugeHeaderLabel(int algorithm)
    {
        var header = new CborWriter();
        header.WriteStartMap(2);
        header.WriteInt32(1); header.WriteInt32(algorithm);
        header.WriteUInt64(1UL << 40); header.WriteInt32(0);
        header.WriteEndMap();
        var w = new CborWriter();
        w.WriteTag((CborTag)18);
        w.WriteStartArray(4);
        w.WriteByteString(header.Encode());
        w.WriteStartMap(0); w.WriteEndMap();
        w.WriteByteString([1, 2, 3]);
        w.WriteByteString(new byte[64]);
        w.WriteEndArray();
        return w.Encode();
    }

    [Fact]
    public void SimEvidenceVerifier_refuses_a_header_label_beyond_32_bits_as_invalid_evidence()
    {
        var (verifier, _) = SignedSimEvidence();

        var e = Assert.Throws<EvidenceException>(() => verifier.Verify(new Evidence("sim", CoseWithHugeHeaderLabel(-7))));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
    }

    [Fact]
    public void AwsNitroVerifier_refuses_a_header_label_beyond_32_bits_as_invalid_evidence()
    {
        var verifier = NitroVerifier();

        var e = Assert.Throws<EvidenceException>(() => verifier.Verify(new Evidence("aws-nitro", CoseWithHugeHeaderLabel(-35))));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
    }

    [Fact]
    public void SimEvidenceVerifier_on_mutated_COSE_documents_throws_only_EvidenceException()
    {
        var (verifier, document) = SignedSimEvidence();
        ForAllInputs(document, 64 * 1024, b => verifier.Verify(new Evidence("sim", b)), Evidence);
    }

    // ───────────── Azure MAA ─────────────

    [Fact]
    public void AzureMaaVerifier_throws_only_EvidenceException()
    {
        var verifier = MaaVerifier();
        ForAllInputs(MaaEvidence().Document, 64 * 1024, b => verifier.Verify(new Evidence("azure-maa", b)), Evidence);
    }

    [Fact]
    public void AzureMaaVerifier_on_base64url_text_mutations_throws_only_EvidenceException()
    {
        // Mutations that stay inside the JWS alphabet reach the JSON and signature layers instead of the character check.
        var token = Encoding.ASCII.GetString(MaaEvidence().Document);
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
        var verifier = MaaVerifier();
        var cases = Gen.Choose(0, int.MaxValue);
        Check.One(Quick, Prop.ForAll(Arb.From(cases), seed =>
        {
            var rnd = new Random(seed);
            var chars = token.ToCharArray();
            for (var i = rnd.Next(1, 6); i > 0; i--)
                chars[rnd.Next(chars.Length)] = alphabet[rnd.Next(alphabet.Length)];
            var text = new string(chars);
            if (rnd.Next(4) == 0)
                text = text[..rnd.Next(text.Length)];
            try
            {
                verifier.Verify(new Evidence("azure-maa", Encoding.ASCII.GetBytes(text)));
            }
            catch (EvidenceException)
            {
            }
            return true;
        }));
    }
}
