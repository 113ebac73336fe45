using System.Buffers.Binary;
using System.Runtime.Loader;
using System.Security.Cryptography;
using System.Text;
using TwinSeal.Enclave;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Apps.Tests;

public sealed class EnclaveImageTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    private string NewImage(string name = "image") => Bundles.Create(_temp.Sub(name));

    private static string Measure(params (string Relative, byte[] Bytes)[] files)
    {
        using var digest = new MeasurementDigest();
        foreach (var (relative, bytes) in files) digest.Add(relative, bytes);
        return digest.Finish();
    }

    // The documented measurement, computed independently: SHA-384 over (u32 BE path length ‖ path ‖ u64 BE
    // content length ‖ content) for every file, ordered by its '/'-separated relative path (ordinal).
    private static string ReferenceMeasurement(string directory)
    {
        var files = Directory.GetFiles(directory, "*", SearchOption.AllDirectories)
            .Select(f => (Relative: Path.GetRelativePath(directory, f).Replace('\\', '/'), Path: f))
            .OrderBy(f => f.Relative, StringComparer.Ordinal);
        var all = new List<byte>();
        foreach (var (relative, path) in files)
        {
            var name = Encoding.UTF8.GetBytes(relative);
            var content = File.ReadAllBytes(path);
            var len = new byte[8];
            BinaryPrimitives.WriteUInt32BigEndian(len, (uint)name.Length);
            all.AddRange(len.AsSpan(0, 4));
            all.AddRange(name);
            BinaryPrimitives.WriteUInt64BigEndian(len, (ulong)content.Length);
            all.AddRange(len);
            all.AddRange(content);
        }
        return Convert.ToHexStringLower(SHA384.HashData(all.ToArray()));
    }

    [Fact]
    public void Measurement_is_lower_case_hex_sha_384_of_the_documented_file_encoding()
    {
        var dir = NewImage();
        File.WriteAllText(Path.Combine(dir, "README.txt"), "notes");
        Directory.CreateDirectory(Path.Combine(dir, "data"));
        File.WriteAllText(Path.Combine(dir, "data", "lookup.csv"), "a,b\n1,2\n");

        var measurement = EnclaveImage.Load(dir).Measurement;

        Assert.Matches("^[0-9a-f]{96}$", measurement);
        Assert.Equal(ReferenceMeasurement(dir), measurement);
    }

    [Fact]
    public void Measuring_the_same_bundle_twice_gives_the_same_measurement()
    {
        var dir = NewImage();

        Assert.Equal(EnclaveImage.Load(dir).Measurement, EnclaveImage.Load(dir).Measurement);
    }

    [Fact]
    public void Measurement_does_not_depend_on_where_the_bundle_folder_is()
    {
        var a = NewImage("a");
        var b = Bundles.Create(Path.Combine(_temp.Sub("elsewhere"), "deeper", "image"));

        Assert.Equal(EnclaveImage.Load(a).Measurement, EnclaveImage.Load(b).Measurement);
    }

    [Fact]
    public void Changing_one_byte_of_the_app_assembly_changes_the_measurement()
    {
        var original = NewImage("original");
        var tampered = NewImage("tampered");
        Bundles.FlipBuildMarker(tampered);

        Assert.NotEqual(EnclaveImage.Load(original).Measurement, EnclaveImage.Load(tampered).Measurement);
    }

    [Fact]
    public void Changing_any_byte_of_the_app_assembly_changes_the_measured_hash()
    {
        var bytes = File.ReadAllBytes(Bundles.AppDllPath);
        var baseline = Measure((Bundles.AppFileName, bytes));
        foreach (var at in new[] { 0, bytes.Length / 3, bytes.Length / 2, bytes.Length - 1 })
        {
            var copy = (byte[])bytes.Clone();
            copy[at] ^= 0x80;
            Assert.NotEqual(baseline, Measure((Bundles.AppFileName, copy)));
        }
    }

    [Fact]
    public void Adding_a_file_to_the_bundle_changes_the_measurement()
    {
        var dir = NewImage();
        var before = EnclaveImage.Load(dir).Measurement;

        File.WriteAllText(Path.Combine(dir, "extra.json"), "{}");

        Assert.NotEqual(before, EnclaveImage.Load(dir).Measurement);
    }

    [Fact]
    public void Adding_an_empty_file_in_a_subfolder_changes_the_measurement()
    {
        var dir = NewImage();
        var before = EnclaveImage.Load(dir).Measurement;

        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllBytes(Path.Combine(dir, "sub", "empty"), []);

        Assert.NotEqual(before, EnclaveImage.Load(dir).Measurement);
    }

    [Fact]
    public void Renaming_a_file_changes_the_measurement()
    {
        var dir = NewImage();
        File.WriteAllText(Path.Combine(dir, "config.txt"), "x");
        var before = EnclaveImage.Load(dir).Measurement;

        File.Move(Path.Combine(dir, "config.txt"), Path.Combine(dir, "config2.txt"));

        Assert.NotEqual(before, EnclaveImage.Load(dir).Measurement);
    }

    [Fact]
    public void Moving_bytes_between_a_file_name_and_its_content_changes_the_measurement()
    {
        // Length prefixes keep (path "ab", content "c") apart from (path "a", content "bc").
        Assert.NotEqual(
            Measure(("ab", "c"u8.ToArray())),
            Measure(("a", "bc"u8.ToArray())));
    }

    [Fact]
    public void The_app_loads_from_the_bundle_and_runs()
    {
        var bundle = EnclaveImage.Load(NewImage()).LoadApp();

        Assert.Equal("secure-match", bundle.App.Name);
        var own = Tables.Of(["id", "o"], ["k", "1"], ["j", "2"]);
        var peer = Tables.Of(["id", "p"], ["k", "3"], ["k", "4"]);
        var output = bundle.App.Run(new AppInput(own, peer, new OutputPolicy("secure-match", "id", ResultKind.JoinedRows, "party2"), "party2", "party1"));
        Assert.Equal(["id", "o", "p"], output.Rows!.Columns);
        Assert.Equal(2, output.Rows.Rows.Count);
    }

    [Fact]
    public void The_app_is_loaded_from_the_measured_bytes_in_its_own_load_context_not_from_the_file()
    {
        var bundle = EnclaveImage.Load(NewImage()).LoadApp();

        var assembly = bundle.App.GetType().Assembly;
        Assert.NotSame(typeof(SecureMatchApp).Assembly, assembly);
        Assert.NotSame(AssemblyLoadContext.Default, AssemblyLoadContext.GetLoadContext(assembly));
        Assert.Equal("", assembly.Location); // loaded from a byte stream, so it has no file behind it
    }

    [Fact]
    public void A_bundle_app_with_a_changed_build_marker_still_loads_and_runs()
    {
        var dir = NewImage();
        Bundles.FlipBuildMarker(dir);

        var bundle = EnclaveImage.Load(dir).LoadApp();

        Assert.Equal("secure-match", bundle.App.Name);
        var t = Tables.Of(["id"], ["k"]);
        Assert.Equal(1, bundle.App.Run(new AppInput(t, t, Releases.MatchCountPolicy(), "party2", "party1")).DistinctMatchedKeys);
    }

    [Fact]
    public void A_bundle_with_no_app_is_refused()
    {
        var dir = _temp.Sub("no-app");
        Directory.CreateDirectory(Bundles.AppFolder(dir));
        File.WriteAllText(Path.Combine(Bundles.AppFolder(dir), "README.txt"), "no assemblies here");

        var e = Assert.Throws<InvalidOperationException>(() => EnclaveImage.Load(dir).LoadApp());

        Assert.Contains("exactly one app", e.Message, StringComparison.Ordinal);
        Assert.Contains("found 0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bundle_whose_assemblies_hold_no_app_is_refused()
    {
        var dir = _temp.Sub("contract-only");
        Directory.CreateDirectory(Bundles.AppFolder(dir));
        File.Copy(typeof(IEnclaveApp).Assembly.Location, Path.Combine(Bundles.AppFolder(dir), "TwinSeal.Protocol.dll"));

        var e = Assert.Throws<InvalidOperationException>(() => EnclaveImage.Load(dir).LoadApp());

        Assert.Contains("found 0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_bundle_folder_is_refused()
    {
        var e = Assert.Throws<InvalidOperationException>(() => EnclaveImage.Load(_temp.Sub("empty")).LoadApp());

        Assert.Contains("empty", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_bundle_folder_is_refused()
    {
        var e = Assert.Throws<InvalidOperationException>(() => EnclaveImage.Load(Path.Combine(_temp.Path, "nope")).LoadApp());

        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_dll_that_is_not_an_assembly_is_refused_naming_the_file()
    {
        var dir = NewImage();
        File.WriteAllBytes(Path.Combine(Bundles.AppFolder(dir), "junk.dll"), RandomNumberGenerator.GetBytes(4096));

        var e = Assert.Throws<InvalidOperationException>(() => EnclaveImage.Load(dir).LoadApp());

        Assert.Contains("junk.dll", e.Message, StringComparison.Ordinal);
        Assert.Contains("not a loadable assembly", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_truncated_app_assembly_is_refused_naming_the_file()
    {
        var dir = NewImage();
        var path = Path.Combine(Bundles.AppFolder(dir), Bundles.AppFileName);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes.AsSpan(0, 512).ToArray());

        var e = Assert.Throws<InvalidOperationException>(() => EnclaveImage.Load(dir).LoadApp());

        Assert.Contains(Bundles.AppFileName, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bundle_with_two_copies_of_the_app_is_refused()
    {
        var dir = NewImage();
        File.Copy(Bundles.AppDllPath, Path.Combine(Bundles.AppFolder(dir), "Copy.Of.Apps.dll"));

        var e = Assert.Throws<InvalidOperationException>(() => EnclaveImage.Load(dir).LoadApp());

        Assert.Contains("found 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_image_holding_a_symbolic_link_is_refused_naming_it()
    {
        var dir = NewImage();
        File.CreateSymbolicLink(Path.Combine(dir, "libextra.so"), "/usr/lib/x86_64-linux-gnu/libc.so.6");

        var e = Assert.Throws<InvalidOperationException>(() => EnclaveImage.Load(dir));

        Assert.Contains("libextra.so", e.Message, StringComparison.Ordinal);
        Assert.Contains("symbolic link", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_runtimeconfig_beside_the_executable_changes_the_measurement()
    {
        var dir = NewImage();
        var before = EnclaveImage.Load(dir).Measurement;

        File.WriteAllText(Path.Combine(dir, EnclaveImage.ExecutableName + ".runtimeconfig.json"), """{"runtimeOptions":{}}""");

        Assert.NotEqual(before, EnclaveImage.Load(dir).Measurement);
    }

    [Fact]
    public void The_documented_vector_gives_the_documented_measurement()
    {
        // docs/format.md, "Image measurement".
        Assert.Equal("ae61300a0e987f37298bf7ff9bfef1ca80121d725acf3b3dafe1abaa726cbf8c86c2c4bae9b389032cdc97571a39ba9b",
            Measure(("a.dll", [1, 2, 3]), ("b/c.json", "{}"u8.ToArray())));
    }

    [Fact]
    public void Files_must_be_measured_in_ordinal_path_order()
    {
        using var digest = new MeasurementDigest();
        digest.Add("b", [1]);

        Assert.Throws<InvalidOperationException>(() => digest.Add("a", [2]));
    }

    [Fact]
    public void A_measured_folder_reports_its_measurement_with_no_process_to_inspect()
    {
        var image = EnclaveImage.Load(NewImage());

        Assert.Null(image.ExecutablePath);
        Assert.Equal(image.Measurement, image.CurrentMeasurement());
    }
}
