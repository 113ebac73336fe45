using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace TwinSeal.Enclave;

/// <summary>
/// SIMULATION of a TEE's platform operational tests: real known-answer tests of the primitives the isolated area
/// relies on, a pairwise-consistency test of ECDSA, an RNG health check, and the identity of the runtime and
/// OS. Each result is named; the KMS compares them with the registered reference values. The code of the isolated area
/// itself (its runtime included) is covered by the image measurement (<see cref="EnclaveImage"/>), not by a test here.
/// </summary>
public static class PlatformSelfTests
{
    /// <summary>Runs every test now.</summary>
    public static SortedDictionary<string, string> Run()
    {
        var results = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["kat.aes-256-gcm"] = Check(AesGcmKat),
            ["kat.sha-256"] = Check(() => Hex(SHA256.HashData("abc"u8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ["kat.sha-384"] = Check(() => Hex(SHA384.HashData("abc"u8)) == "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
            ["kat.hkdf-sha256"] = Check(HkdfKat),
            ["pct.ecdsa-p256"] = Check(EcdsaPairwiseConsistency),
            ["health.rng"] = Check(RngHealth),
            ["identity.runtime"] = RuntimeInformation.FrameworkDescription,
            ["identity.os"] = $"{RuntimeInformation.OSArchitecture} {(OperatingSystem.IsLinux() ? "Linux" : RuntimeInformation.OSDescription)}",
        };
        return results;
    }

    private static string Check(Func<bool> test)
    {
        try
        {
            return test() ? "pass" : "fail";
        }
        catch (CryptographicException)
        {
            return "fail";
        }
    }

    private static string Hex(ReadOnlySpan<byte> b) => Convert.ToHexStringLower(b);

    // NIST GCM specification, test case 14: 256-bit zero key, zero IV, one zero block.
    private static bool AesGcmKat()
    {
        var key = new byte[32];
        var iv = new byte[12];
        var pt = new byte[16];
        var ct = new byte[16];
        var tag = new byte[16];
        using var gcm = new AesGcm(key, 16);
        gcm.Encrypt(iv, pt, ct, tag);
        return Hex(ct) == "cea7403d4d606b6e074ec5d3baf39d18" && Hex(tag) == "d0d1c8a799996bf0265b98b5d48ab919";
    }

    // RFC 5869, test case 1.
    private static bool HkdfKat()
    {
        var ikm = Enumerable.Repeat((byte)0x0b, 22).ToArray();
        var salt = Convert.FromHexString("000102030405060708090a0b0c");
        var info = Convert.FromHexString("f0f1f2f3f4f5f6f7f8f9");
        var okm = HKDF.DeriveKey(HashAlgorithmName.SHA256, ikm, 42, salt, info);
        return Hex(okm) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
    }

    // FIPS 140-style pairwise consistency: a fresh key signs and verifies, and a changed message fails.
    private static bool EcdsaPairwiseConsistency()
    {
        using var k = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var msg = "twinseal platform self-test"u8.ToArray();
        var sig = k.SignData(msg, HashAlgorithmName.SHA256);
        if (!k.VerifyData(msg, sig, HashAlgorithmName.SHA256)) return false;
        msg[0] ^= 1;
        return !k.VerifyData(msg, sig, HashAlgorithmName.SHA256);
    }

    // Continuous-test style checks: consecutive draws differ, and no byte value repeats absurdly often.
    private static bool RngHealth()
    {
        var a = RandomNumberGenerator.GetBytes(64);
        var b = RandomNumberGenerator.GetBytes(64);
        if (a.AsSpan().SequenceEqual(b)) return false;
        var big = RandomNumberGenerator.GetBytes(4096);
        var counts = new int[256];
        foreach (var x in big) counts[x]++;
        return counts.Max() < 64; // expected 16 per value; 64 is far beyond chance
    }
}
