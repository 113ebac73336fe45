using System.Security.Cryptography.X509Certificates;
using System.Text;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Attestation.AwsNitro;
using TwinSeal.Attestation.AzureMaa;
using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Attestation.Sim;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Tests;

/// <summary>
/// The real samples (testdata/attestation, SOURCES.md), verified by the real verifiers at their stated times, and the
/// expected values SOURCES.md gives. Claims are verified once per test run.
/// </summary>
internal static class HardwareSampleClaims
{
    public const string NitroPcr0 = "d265a83faa7b4fa0d73b82b6d06253e894445922937d0ee5a74fe4891da9817611a71e71b98e5329232902de3cf419af";
    public const string NitroPcr1 = "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f";
    public const string NitroPcr2 = "e4f634d24ad83b7f6e49fe283bafdb220f6252fb4a278a858e19d15b7cd0f263b9168ed0bacefb4444266df9f9a77f24";
    public const string NitroPcr8 = "97c5395a83c0d6a04d53ff962663c714c178c24500bf97f78456ed3721d922cf3f940614da4bb90107c439bc4a1443ca";
    public const string SnpMeasurement = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01";
    public const string TdxMrtd = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
    public const string SgxMrenclave = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
    public const string MaaMrenclave = "f56735aa42563627a832e0c7ba9911382eb68afed75830b3f97266f3e67bdc99";
    public const string MaaIssuer = "https://sharedeus.eus.attest.azure.net";

    /// <summary>Inside the Nitro leaf certificate's three hours (SOURCES.md).</summary>
    public static readonly DateTimeOffset NitroTime = new(2023, 1, 18, 15, 15, 14, TimeSpan.Zero);
    /// <summary>Inside the VCEK's validity (2022-09-24 to 2029-09-24); the report carries no time.</summary>
    public static readonly DateTimeOffset SnpTime = new(2024, 6, 1, 0, 0, 0, TimeSpan.Zero);
    /// <summary>Inside both DCAP samples' collateral windows (TDX 2025-06-19T10:32:27Z–07-19T10:00:35Z, SGX 10:56:11Z–10:01:18Z).</summary>
    public static readonly DateTimeOffset DcapTime = new(2025, 7, 1, 0, 0, 0, TimeSpan.Zero);
    /// <summary>Inside the MAA token's lifetime (2023-09-26 14:15–22:15Z).</summary>
    public static readonly DateTimeOffset MaaTime = new(2023, 9, 26, 18, 0, 0, TimeSpan.Zero);

    private static readonly Lazy<NormalisedClaims> NitroClaims = new(() => NitroVerifier().Verify(NitroEvidence()));
    private static readonly Lazy<NormalisedClaims> SnpClaims = new(() => SnpVerifier().Verify(SnpEvidence()));
    private static readonly Lazy<NormalisedClaims> TdxClaims = new(() => DcapVerifier(DcapTeeType.Tdx).Verify(TdxEvidence()));
    private static readonly Lazy<NormalisedClaims> SgxClaims = new(() => DcapVerifier(DcapTeeType.Sgx).Verify(SgxEvidence()));
    private static readonly Lazy<NormalisedClaims> MaaClaims = new(() => MaaVerifier().Verify(MaaEvidence()));

    public static NormalisedClaims Nitro() => NitroClaims.Value;

    /// <summary>The SNP sample is a debug guest (policy 0xb0000), so it is verified with debug passed through as a claim, as the KMS does.</summary>
    public static NormalisedClaims Snp() => SnpClaims.Value;

    public static NormalisedClaims Tdx() => TdxClaims.Value;

    /// <summary>The SGX sample's TCB is ConfigurationAndSWHardeningNeeded, which the verifier is configured to accept here.</summary>
    public static NormalisedClaims Sgx() => SgxClaims.Value;

    public static NormalisedClaims Maa() => MaaClaims.Value;

    // ───────────── native artefacts and evidence ─────────────

    public static byte[] NitroDocument() => Samples.Read("aws-nitro", "evervault-2023-01-18-nondebug.cose");
    public static string NitroRootPath => Path.Combine(Samples.Dir("aws-nitro"), "aws-nitro-enclaves-root.pem");
    public static Evidence NitroEvidence() => new(AwsNitroVerifier.PlatformTag, NitroDocument());

    public static byte[] SnpReport() => Samples.Read("amd-sev-snp", "gosevguest-milan-report.bin");
    public static string SnpVcekPath => Path.Combine(Samples.Dir("amd-sev-snp"), "gosevguest-milan-vcek.der");
    public static string SnpAskArkPath => Path.Combine(Samples.Dir("amd-sev-snp"), "amd-milan-ask-ark.pem");
    public static Evidence SnpEvidence()
    {
        var askArk = NativeEvidence.LoadCertificateFile(SnpAskArkPath);
        return new SevSnpEvidence(SnpReport(), SevSnpProduct.Milan, Vcek: File.ReadAllBytes(SnpVcekPath), Ask: askArk[0]).ToEvidence();
    }

    public static byte[] TdxQuote() => Samples.Read("intel-tdx", "dcapqvl-tdx-quote-v4.bin");
    public static string TdxCollateral() => File.ReadAllText(Path.Combine(Samples.Dir("intel-tdx"), "dcapqvl-tdx-collateral.json"));
    public static Evidence TdxEvidence() => new(IntelDcapEvidence.TdxPlatform, IntelDcapEvidence.Encode(TdxQuote(), TdxCollateral()));

    public static byte[] SgxQuote() => Samples.Read("intel-sgx-dcap", "dcapqvl-sgx-quote-v3.bin");
    public static string SgxCollateral() => File.ReadAllText(Path.Combine(Samples.Dir("intel-sgx-dcap"), "dcapqvl-sgx-collateral.json"));
    public static Evidence SgxEvidence() => new(IntelDcapEvidence.SgxPlatform, IntelDcapEvidence.Encode(SgxQuote(), SgxCollateral()));
    public static byte[] IntelRootDer() => Samples.Read("intel-tdx", "intel-sgx-root-ca.der");

    public static byte[] MaaTokenFile() => Samples.Read("azure-maa", "teaclave-sharedeus-sgx-2023-09-26.jwt");
    public static string MaaJwks() => Encoding.UTF8.GetString(Samples.Read("azure-maa", "teaclave-sharedeus-jwks.json"));
    public static Evidence MaaEvidence() => new(AzureMaaVerifier.PlatformTag, Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(MaaTokenFile()).Trim()));

    // ───────────── verifiers at the samples' times ─────────────

    public static AwsNitroVerifier NitroVerifier(DateTimeOffset? at = null)
    {
        using var root = PemCertificate.Load(NitroRootPath);
        return new AwsNitroVerifier(root, new SampleClock(at ?? NitroTime));
    }

    public static SevSnpVerifier SnpVerifier(DateTimeOffset? at = null, bool allowDebug = true)
        => new(new Dictionary<SevSnpProduct, X509Certificate2>
        {
            [SevSnpProduct.Milan] = X509CertificateLoader.LoadCertificate(NativeEvidence.LoadCertificateFile(SnpAskArkPath)[1]),
        }, new SampleClock(at ?? SnpTime), new SevSnpVerifierOptions { AllowDebug = allowDebug });

    public static IntelDcapVerifier DcapVerifier(DcapTeeType tee, DateTimeOffset? at = null)
        => new(tee, IntelRootDer(), new SampleClock(at ?? DcapTime), new IntelDcapVerifierOptions
        {
            AcceptedTcbStatuses = new HashSet<DcapTcbStatus> { DcapTcbStatus.UpToDate, DcapTcbStatus.ConfigurationAndSWHardeningNeeded },
        });

    public static AzureMaaVerifier MaaVerifier(DateTimeOffset? at = null)
        => new(MaaJwks(), MaaIssuer, new SampleClock(at ?? MaaTime));

    public sealed class SampleClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
