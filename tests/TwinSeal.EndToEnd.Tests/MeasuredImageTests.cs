using TwinSeal.Cli.Demo;
using TwinSeal.Enclave;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.EndToEnd.Tests;

/// <summary>
/// Every way found to run code in an isolated area that its measurement does not cover, each through real processes.
/// Each ends in one of two ways: the injected code never ran in the isolated area, or the KMS answers
/// <c>measurement-mismatch</c> (docs/threat-model.md, "Code the measurement does not cover").
/// </summary>
public sealed class MeasuredImageTests(MeasuredImageFixture f) : IClassFixture<MeasuredImageFixture>
{
    private const string EnclaveExecutable = EnclaveImage.ExecutableName;

    private static bool RanInTheIsolatedArea(IEnumerable<string> processes) => processes.Any(p => Path.GetFileName(p) == EnclaveExecutable);

    [Fact]
    public async Task The_genuine_image_started_by_its_host_gets_the_key()
    {
        await using var enclave = await EnclaveProcess.StartAsync(CliUnderTest.EnclaveImage, f.Device);

        Assert.Null(await f.AskForTheKeyAsync(enclave));
    }

    [Fact]
    public async Task The_measure_verb_prints_what_the_running_isolated_area_reports()
    {
        var (exit, stdout, _) = await CliUnderTest.RunAsync("enclave", "measure", "--image", CliUnderTest.EnclaveImage);

        Assert.Equal(0, exit);
        Assert.Equal(f.RegisteredMeasurement, stdout.Trim());
    }

    [Fact]
    public async Task Appending_one_byte_to_any_file_of_the_image_changes_what_the_measure_verb_prints()
    {
        var image = f.CopyOfTheImage();
        var files = Directory.GetFiles(image, "*", SearchOption.AllDirectories);
        Assert.Contains(files, p => Path.GetFileName(p) == EnclaveExecutable);

        foreach (var file in files)
        {
            var original = File.ReadAllBytes(file);
            File.WriteAllBytes(file, [.. original, 0]);
            var (exit, stdout, stderr) = await CliUnderTest.RunAsync("enclave", "measure", "--image", image);
            File.WriteAllBytes(file, original);

            Assert.True(exit == 0, stderr);
            Assert.NotEqual(f.RegisteredMeasurement, stdout.Trim());
        }
    }

    [Fact]
    public async Task A_startup_hook_in_the_hosts_environment_runs_in_the_host_but_never_in_the_isolated_area()
    {
        var dir = f.NewDirectory("hook");
        var marker = Path.Combine(dir, "ran-in.txt");
        var hook = InjectedStartupHook.Write(dir, marker);

        await using var host = await f.StartHostAsync(new Dictionary<string, string> { ["DOTNET_STARTUP_HOOKS"] = hook });
        using var control = new ControlClient(host.Endpoint, MeasuredImageFixture.Token(host));
        var described = await control.GetAsync<EnclaveDescription>("/enclave");

        var ranIn = InjectedStartupHook.ProcessesItRanIn(marker);
        Assert.NotEmpty(ranIn); // the injection was live: the host ran it
        Assert.False(RanInTheIsolatedArea(ranIn));
        Assert.Equal(f.RegisteredMeasurement, described.Measurement);
    }

    [Fact]
    public async Task A_startup_hook_given_to_the_isolated_area_directly_never_runs_and_the_key_is_refused()
    {
        var dir = f.NewDirectory("hook");
        var marker = Path.Combine(dir, "ran-in.txt");
        var psi = EnclaveProcess.StartInfo(CliUnderTest.EnclaveImage, f.Device);
        psi.Environment["DOTNET_STARTUP_HOOKS"] = InjectedStartupHook.Write(dir, marker);

        await using var enclave = await EnclaveProcess.StartAsync(psi);

        Assert.Empty(InjectedStartupHook.ProcessesItRanIn(marker)); // the image's runtime configuration switches hooks off
        Assert.Equal("measurement-mismatch", await f.AskForTheKeyAsync(enclave)); // and the environment is not the agreed one
    }

    [Fact]
    public async Task A_startup_hook_in_a_runtimeconfig_beside_the_executable_never_runs_and_the_key_is_refused()
    {
        var dir = f.NewDirectory("hook");
        var marker = Path.Combine(dir, "ran-in.txt");
        var hook = InjectedStartupHook.Write(dir, marker);
        var image = f.CopyOfTheImage();
        File.WriteAllText(Path.Combine(image, EnclaveExecutable + ".runtimeconfig.json"), $$$$"""
            {"runtimeOptions":{"configProperties":{"STARTUP_HOOKS":"{{{{hook}}}}","System.StartupHookProvider.IsSupported":true}}}
            """);

        await using var enclave = await EnclaveProcess.StartAsync(image, f.Device);

        Assert.Empty(InjectedStartupHook.ProcessesItRanIn(marker)); // the bundled runtimeconfig is the one that counts
        Assert.Equal("measurement-mismatch", await f.AskForTheKeyAsync(enclave)); // and the extra file is measured
    }

    [Fact]
    public async Task A_patched_entry_assembly_runs_but_the_key_is_refused()
    {
        var image = f.CopyOfTheImage();
        AttackerCopies.FlipStringLiteral(Path.Combine(image, EnclaveExecutable), "TWINSEAL-ENCLAVE-IMAGE-BUILD-1");

        await using var enclave = await EnclaveProcess.StartAsync(image, f.Device);

        Assert.Equal("measurement-mismatch", await f.AskForTheKeyAsync(enclave));
    }

    [Fact]
    public async Task A_patched_dependency_that_parses_plaintext_runs_but_the_key_is_refused()
    {
        var image = f.CopyOfTheImage();
        var sep = Path.Combine(Path.GetDirectoryName(CliUnderTest.DllPath)!, "Sep.dll");
        MeasuredImageFixture.FlipStringLiteralOfBundledAssembly(Path.Combine(image, EnclaveExecutable), sep);

        await using var enclave = await EnclaveProcess.StartAsync(image, f.Device);

        Assert.Equal("measurement-mismatch", await f.AskForTheKeyAsync(enclave));
    }

    [Fact]
    public async Task A_patched_app_runs_but_the_key_is_refused()
    {
        var image = f.CopyOfTheImage();
        AttackerCopies.FlipStringLiteral(Path.Combine(image, EnclaveImage.AppsFolder, "secure-match", "TwinSeal.Apps.dll"), "TWINSEAL-SECURE-MATCH-APP-BUILD-1");

        await using var enclave = await EnclaveProcess.StartAsync(image, f.Device);

        Assert.Equal("measurement-mismatch", await f.AskForTheKeyAsync(enclave));
    }

    [Fact]
    public async Task An_extra_file_in_the_image_is_measured_and_the_key_is_refused()
    {
        var image = f.CopyOfTheImage();
        File.Copy(Path.Combine(Path.GetDirectoryName(CliUnderTest.DllPath)!, "Sep.dll"), Path.Combine(image, "Sep.dll"));

        await using var enclave = await EnclaveProcess.StartAsync(image, f.Device);

        Assert.NotEqual(f.RegisteredMeasurement, EnclaveImage.Load(image).Measurement);
        Assert.Equal("measurement-mismatch", await f.AskForTheKeyAsync(enclave));
    }

    [Fact]
    public async Task A_preloaded_library_in_the_hosts_environment_runs_in_the_host_but_never_in_the_isolated_area()
    {
        var marker = Path.Combine(f.NewDirectory("preload-marker"), "ran-in.txt");
        var library = f.BuildPreloadLibrary(marker);

        await using var host = await f.StartHostAsync(new Dictionary<string, string> { ["LD_PRELOAD"] = library });
        using var control = new ControlClient(host.Endpoint, MeasuredImageFixture.Token(host));
        var described = await control.GetAsync<EnclaveDescription>("/enclave");

        var ranIn = InjectedStartupHook.ProcessesItRanIn(marker);
        Assert.NotEmpty(ranIn);
        Assert.False(RanInTheIsolatedArea(ranIn));
        Assert.Equal(f.RegisteredMeasurement, described.Measurement);
    }

    [Fact]
    public async Task A_library_preloaded_into_the_isolated_area_directly_is_seen_and_the_key_is_refused()
    {
        var marker = Path.Combine(f.NewDirectory("preload-marker"), "ran-in.txt");
        var psi = EnclaveProcess.StartInfo(CliUnderTest.EnclaveImage, f.Device);
        psi.Environment["LD_PRELOAD"] = f.BuildPreloadLibrary(marker);

        await using var enclave = await EnclaveProcess.StartAsync(psi);

        Assert.True(RanInTheIsolatedArea(InjectedStartupHook.ProcessesItRanIn(marker))); // the loader ran it before any of our code
        Assert.Equal("measurement-mismatch", await f.AskForTheKeyAsync(enclave));
    }

    [Fact]
    public async Task A_DOTNET_ROOT_pointing_at_a_patched_runtime_is_never_loaded_and_the_key_is_refused()
    {
        // A complete copy of the installed shared runtime with one byte of CoreLib changed.
        var runtimeDir = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var fakeRoot = f.NewDirectory("dotnet-root");
        var fakeRuntime = Path.Combine(fakeRoot, "shared", "Microsoft.NETCore.App", Path.GetFileName(runtimeDir));
        Directory.CreateDirectory(fakeRuntime);
        foreach (var file in Directory.GetFiles(runtimeDir)) File.Copy(file, Path.Combine(fakeRuntime, Path.GetFileName(file)));
        var corelib = Path.Combine(fakeRuntime, "System.Private.CoreLib.dll");
        var bytes = File.ReadAllBytes(corelib);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(corelib, bytes);
        var psi = EnclaveProcess.StartInfo(CliUnderTest.EnclaveImage, f.Device);
        psi.Environment["DOTNET_ROOT"] = fakeRoot;

        await using var enclave = await EnclaveProcess.StartAsync(psi);

        Assert.DoesNotContain(MeasuredImageFixture.MappedPaths(enclave.ProcessId), p => p.StartsWith(fakeRoot, StringComparison.Ordinal));
        Assert.Equal("measurement-mismatch", await f.AskForTheKeyAsync(enclave));
    }

    [Fact]
    public async Task The_isolated_area_a_host_starts_has_exactly_the_agreed_environment_whatever_the_hosts_own()
    {
        var psi = EnclaveProcess.StartInfo(CliUnderTest.EnclaveImage, f.Device);

        await using var enclave = await EnclaveProcess.StartAsync(psi);

        var environ = File.ReadAllText($"/proc/{enclave.ProcessId}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        var agreed = ProcessIntegrity.EnvironmentFor(RealPath.Of(CliUnderTest.EnclaveImage));
        Assert.Equal(agreed.Select(e => $"{e.Key}={e.Value}").Order(StringComparer.Ordinal), environ.Order(StringComparer.Ordinal));
        Assert.DoesNotContain(MeasuredImageFixture.MappedPaths(enclave.ProcessId), p => p.Contains("dotnet-diagnostic", StringComparison.Ordinal) || p.Contains("dotnet_ipc", StringComparison.Ordinal));
    }
}
