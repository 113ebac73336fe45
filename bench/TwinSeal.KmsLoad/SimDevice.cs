using System.Security.Cryptography;
using System.Text;
using TwinSeal.Attestation;
using TwinSeal.Attestation.Sim;
using TwinSeal.Protocol;

namespace TwinSeal.KmsLoad;

/// <summary>
/// SIMULATION. The bench's simulated TEE platform: a root the KMS replicas trust and one provisioned device whose
/// attestation key signs every client's evidence, for an app whose reference values the key's policy registers.
/// </summary>
internal sealed class SimDevice
{
    public const string AppName = "secure-match";

    /// <summary>The app measurement the policy registers (SHA-384 of a fixed text).</summary>
    public static readonly byte[] Measurement = SHA384.HashData(Encoding.UTF8.GetBytes("twinseal kms load bench app bundle"));

    private static readonly IReadOnlyDictionary<string, string> Tests = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["memory-encryption"] = "pass",
        ["debug-disabled"] = "pass",
        ["firmware"] = "1.4.2",
    };

    private SimDevice(string rootCertificatePath, string deviceDirectory)
    {
        RootCertificatePath = rootCertificatePath;
        DeviceDirectory = deviceDirectory;
    }

    public string RootCertificatePath { get; }
    public string DeviceDirectory { get; }

    public static SimDevice Create(string directory)
    {
        var platform = Path.Combine(directory, "platform");
        var root = SimPlatform.EnsureRoot(platform);
        var device = Path.Combine(directory, "device");
        SimPlatform.ProvisionDevice(platform, device, "kms-load-device");
        return new SimDevice(root, device);
    }

    /// <summary>A signer of evidence; one per client, since an ECDsa instance is not meant to be shared between threads.</summary>
    public SimAttester LoadAttester() => SimAttester.Load(DeviceDirectory);

    /// <summary>The claims an isolated area running the registered app reports, binding <paramref name="nonce"/> and its public key.</summary>
    public SimClaims Claims(byte[] nonce, byte[] enclavePublicKey)
        => new(AppName, Measurement, Tests, ReportDataBinding.Compute(nonce, enclavePublicKey), DateTimeOffset.UtcNow);

    /// <summary>The reference values of that app on that platform, as the policy registers them.</summary>
    public static ReferenceValues ReferenceValues() => new(SimClaims.PlatformTag, [Convert.ToHexStringLower(Measurement)], Tests);
}
