namespace TwinSeal.Attestation.Tests;

/// <summary>Paths of the real evidence samples copied next to the test assembly.</summary>
internal static class Samples
{
    public static string Dir(string platform) => Path.Combine(AppContext.BaseDirectory, "testdata", "attestation", platform);

    public static byte[] Read(string platform, string file) => File.ReadAllBytes(Path.Combine(Dir(platform), file));
}
