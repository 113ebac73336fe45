using System.Security.Cryptography;
using TwinSeal.Enclave.Hardware;

namespace TwinSeal.Apps.Tests;

public sealed class TdxImageRegisterTests : IDisposable
{
    private readonly TempDir _dir = new();
    private static readonly string Image = Convert.ToHexStringLower(SHA384.HashData("an enclave image"u8));

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Extending_writes_the_image_measurement_as_one_48_byte_digest()
    {
        // A regular file stands in for the sysfs attribute: it records exactly what the kernel would be handed.
        var register = Path.Combine(_dir.Path, "rtmr3:sha384");
        File.WriteAllBytes(register, []);

        TdxImageRegister.Extend(Image, register);

        Assert.Equal(Convert.FromHexString(Image), File.ReadAllBytes(register));
    }

    [Fact]
    public void The_expected_RTMR3_is_SHA_384_of_48_zero_bytes_and_the_image_measurement()
    {
        var expected = Convert.ToHexStringLower(SHA384.HashData([.. new byte[48], .. Convert.FromHexString(Image)]));

        Assert.Equal(expected, TdxImageRegister.ExpectedRtmr3(Image));
    }

    [Fact]
    public void Another_image_gives_another_RTMR3()
    {
        var other = Convert.ToHexStringLower(SHA384.HashData("another image"u8));

        Assert.NotEqual(TdxImageRegister.ExpectedRtmr3(Image), TdxImageRegister.ExpectedRtmr3(other));
    }

    [Fact]
    public void A_guest_without_the_measurement_registers_says_what_it_needs()
    {
        var e = Assert.Throws<InvalidOperationException>(() => TdxImageRegister.Extend(Image, Path.Combine(_dir.Path, "missing")));

        Assert.Contains("Linux 6.16", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_measurement_that_is_not_96_hex_digits_is_refused()
    {
        Assert.Throws<ArgumentException>(() => TdxImageRegister.ExpectedRtmr3("abcd"));
    }
}
