using System.Diagnostics;
using System.Reflection;
using TwinSeal.Party;

namespace TwinSeal.EndToEnd.Tests;

/// <summary>The built twinseal CLI, started as real processes.</summary>
internal static class CliUnderTest
{
    public static string DllPath { get; } = Path.GetFullPath(typeof(CliUnderTest).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "TwinSealCli").Value!);

    /// <summary>The enclave image built next to the CLI: what every party host in these tests starts.</summary>
    public static string EnclaveImage => Path.Combine(Path.GetDirectoryName(DllPath)!, "enclave");

    public static SelfLaunch Launch => SelfLaunch.ForAssembly(DllPath);

    /// <summary>Runs the CLI to completion and returns exit code, stdout and stderr.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(params string[] args)
    {
        var psi = Launch.StartInfo(args);
        psi.RedirectStandardInput = false;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await p.WaitForExitAsync(cts.Token);
        return (p.ExitCode, await stdout, await stderr);
    }
}
