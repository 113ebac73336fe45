using System.Security.Cryptography;

namespace TwinSeal.Enclave.Hardware;

/// <summary>
/// Records the enclave image in Intel TDX's runtime measurement register 3, through Linux's TDX measurement registers
/// (<c>/sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384</c>, Linux 6.16 and later): writing a 48-byte
/// digest there makes the TDX module set RTMR3 = SHA-384(RTMR3 ‖ digest). The isolated area writes its image measurement
/// once, before it produces any evidence, so a TD that runs this image carries
/// <see cref="ExpectedRtmr3"/> in every quote, and the parties register it as <c>platformTests.rtmr3</c>.
/// </summary>
/// <remarks>
/// RTMR3 is the guest's own register: only a TD whose launch (MRTD, RTMR0–RTMR2: firmware, kernel, initrd, command line)
/// is also registered can be trusted to have extended it honestly, so RTMR3 identifies the image inside an approved
/// guest; it does not replace registering the guest (attestation.md, "What is measured on each platform"). One isolated
/// area per TD launch: a second start in the same TD extends again and no longer matches (fails safe).
/// </remarks>
public static class TdxImageRegister
{
    /// <summary>Where Linux exposes RTMR3 for extension.</summary>
    public const string DefaultPath = "/sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384";

    private const int DigestLength = 48;

    /// <summary>Extends RTMR3 with the image measurement (96 hex digits).</summary>
    public static void Extend(string imageMeasurement, string path = DefaultPath)
    {
        var digest = Digest(imageMeasurement);
        if (!File.Exists(path))
            throw new InvalidOperationException($"intel-tdx: cannot record the enclave image in RTMR3: '{path}' is missing (it needs a TDX guest with Linux 6.16 or later).");
        // One write of exactly 48 bytes: the kernel takes each write as one extension.
        using var register = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1, FileOptions.None);
        register.Write(digest);
    }

    /// <summary>RTMR3 of a TD in which the only extension was this image: SHA-384(48 zero bytes ‖ image measurement).</summary>
    public static string ExpectedRtmr3(string imageMeasurement)
    {
        Span<byte> input = stackalloc byte[2 * DigestLength];
        input[..DigestLength].Clear();
        Digest(imageMeasurement).CopyTo(input[DigestLength..]);
        return Convert.ToHexStringLower(SHA384.HashData(input));
    }

    private static byte[] Digest(string imageMeasurement)
    {
        var digest = imageMeasurement.Length == 2 * DigestLength ? Convert.FromHexString(imageMeasurement) : null;
        return digest ?? throw new ArgumentException("An image measurement is 96 hex digits (SHA-384).", nameof(imageMeasurement));
    }
}
