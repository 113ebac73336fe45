using System.Diagnostics;
using System.Reflection;
using System.Text.Json;

namespace TwinSeal.Bench;

/// <summary>What psi.js did, or why it could not run.</summary>
internal sealed record PsiResult(int Elements, bool Ran, string? WhyNot, string? Version, string? Node, long IntersectionSize, double TotalMilliseconds, IReadOnlyDictionary<string, double> Steps, long PeakRssBytes, string? RawJson);

/// <summary>
/// Runs bench/psi/psi-bench.js (OpenMined's ECDH-PSI, @openmined/psi.js, under Node) on the same generated CSVs,
/// as a child process with a bounded time. Installs the package on first use.
/// </summary>
internal static class PsiJs
{
    private static string PackageDirectory { get; } = Path.GetFullPath(typeof(PsiJs).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "PsiJsDirectory").Value!);

    public static async Task<PsiResult> RunAsync(int elements, string party1Csv, string party2Csv, TimeSpan timeout, TextWriter log)
    {
        PsiResult No(string why) => new(elements, false, why, null, null, -1, 0, new Dictionary<string, double>(), 0, null);

        var node = await RunAsync("node", ["--version"], PackageDirectory, TimeSpan.FromSeconds(30));
        if (node.Started is false) return No($"node is not installed here ({node.Error})");
        if (node.ExitCode != 0) return No($"`node --version` failed: {Tail(node.Stderr)}");

        var package = Path.Combine(PackageDirectory, "node_modules", "@openmined", "psi.js", "package.json");
        if (!File.Exists(package))
        {
            // --ignore-scripts: a dependency of psi.js (protoc-gen-js, a code generator psi.js does not need at run
            // time) downloads a protoc binary from outside the npm registry in its install script, which cannot work
            // on a machine that reaches only package registries. psi.js itself ships its WebAssembly in the package.
            log.WriteLine("    installing @openmined/psi.js into bench/psi (npm install --ignore-scripts) …");
            var npm = await RunAsync("npm", ["install", "--ignore-scripts", "--no-package-lock", "--no-audit", "--no-fund"], PackageDirectory, TimeSpan.FromMinutes(5));
            if (npm.Started is false) return No($"npm is not installed here ({npm.Error})");
            if (npm.TimedOut) return No("`npm install @openmined/psi.js` did not finish within 5 minutes (registry unreachable?)");
            if (npm.ExitCode != 0 || !File.Exists(package))
                return No($"`npm install` in bench/psi failed (exit {npm.ExitCode}): {Tail(npm.Stderr)}");
        }

        log.WriteLine($"    running psi.js on {elements:N0} × {elements:N0} elements (timeout {timeout.TotalMinutes:N0} min) …");
        var run = await RunAsync("node", [Path.Combine(PackageDirectory, "psi-bench.js"), party1Csv, party2Csv], PackageDirectory, timeout);
        if (run.TimedOut) return No($"psi.js did not finish within {timeout.TotalSeconds:N0} s and was stopped");
        if (run.ExitCode != 0) return No($"psi.js exited with code {run.ExitCode}: {Tail(run.Stderr)}");
        try
        {
            var line = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Last();
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            var steps = root.GetProperty("milliseconds").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble(), StringComparer.Ordinal);
            return new PsiResult(elements, true, null, root.GetProperty("version").GetString(), root.GetProperty("node").GetString(),
                root.GetProperty("intersectionSize").GetInt64(),
                // Reading the CSVs counts, as loading them counts for TwinSeal; loading the WebAssembly module does not.
                root.GetProperty("totalMilliseconds").GetDouble() + steps.GetValueOrDefault("read"),
                steps, root.GetProperty("peakRssBytes").GetInt64(), line);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            return No($"psi.js printed no result this bench understands: {e.Message}; output: {Tail(run.Stdout)}");
        }
    }

    private sealed record Outcome(bool Started, string? Error, bool TimedOut, int ExitCode, string Stdout, string Stderr);

    private static async Task<Outcome> RunAsync(string file, string[] args, string directory, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = directory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException("no process");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return new Outcome(false, e.Message, false, -1, "", "");
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                // Only the process this bench started, by its own handle.
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                return new Outcome(true, null, true, -1, await stdout, await stderr);
            }
            return new Outcome(true, null, false, process.ExitCode, await stdout, await stderr);
        }
    }

    private static string Tail(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no output)" : string.Join(" | ", lines.TakeLast(4));
    }
}
