using System.Globalization;

namespace TwinSeal.Bench;

/// <summary>Peak resident memory of one child process of a demo run.</summary>
internal sealed record ProcessPeak(string Role, int Pid, long PeakBytes);

/// <summary>
/// Finds the demo's child processes (KMS, party hosts, isolated areas) by scanning /proc for command lines that
/// contain the demo's work directory, and keeps the largest VmHWM (peak resident set, i.e. peak working set) seen
/// for each. VmHWM never decreases while a process lives, so polling misses at most the growth in the last
/// interval before the process is stopped. Linux only; elsewhere it reports nothing.
/// </summary>
internal sealed class ProcessMemorySampler : IAsyncDisposable
{
    private readonly string _workDirectory;
    private readonly Dictionary<int, (string Role, long Peak)> _seen = [];
    private readonly HashSet<int> _ignored = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public ProcessMemorySampler(string workDirectory, TimeSpan interval)
    {
        _workDirectory = Path.GetFullPath(workDirectory).TrimEnd('/');
        _loop = OperatingSystem.IsLinux() ? Task.Run(() => LoopAsync(interval)) : Task.CompletedTask;
    }

    /// <summary>Peaks per process, in order of role.</summary>
    public IReadOnlyList<ProcessPeak> Peaks
    {
        get
        {
            lock (_seen)
                return [.. _seen.Select(kv => new ProcessPeak(kv.Value.Role, kv.Key, kv.Value.Peak)).OrderBy(p => RoleOrder(p.Role)).ThenBy(p => p.Pid)];
        }
    }

    private static int RoleOrder(string role) => role switch
    {
        "kms" => 0,
        "party1 host" => 1,
        "party1 enclave" => 2,
        "party2 host" => 3,
        "party2 enclave" => 4,
        _ => 5,
    };

    private async Task LoopAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval);
        do
        {
            Sample();
        }
        while (await WaitAsync(timer));
    }

    private async Task<bool> WaitAsync(PeriodicTimer timer)
    {
        try
        {
            return await timer.WaitForNextTickAsync(_stop.Token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>One pass over /proc: classify new processes, update the peaks of known ones.</summary>
    public void Sample()
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) continue;
            string? role;
            lock (_seen)
            {
                if (_ignored.Contains(pid)) continue;
                role = _seen.TryGetValue(pid, out var known) ? known.Role : null;
            }
            try
            {
                if (role is null)
                {
                    role = Classify(File.ReadAllBytes(Path.Combine(dir, "cmdline")));
                    if (role is null)
                    {
                        lock (_seen) _ignored.Add(pid);
                        continue;
                    }
                }
                var hwm = ReadHighWaterMark(Path.Combine(dir, "status"));
                if (hwm <= 0) continue;
                lock (_seen)
                {
                    var peak = _seen.TryGetValue(pid, out var old) ? Math.Max(old.Peak, hwm) : hwm;
                    _seen[pid] = (role, peak);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process ended between listing and reading; its last sample stands.
            }
        }
    }

    /// <summary>Which demo process a command line belongs to, or null if it is not one of this run's.</summary>
    private string? Classify(byte[] cmdline)
    {
        var args = System.Text.Encoding.UTF8.GetString(cmdline).Split('\0', StringSplitOptions.RemoveEmptyEntries);
        if (!args.Any(a => a.StartsWith(_workDirectory + "/", StringComparison.Ordinal))) return null;
        string? Arg(string name)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        }
        bool Verb(string a, string b)
        {
            for (var i = 0; i + 1 < args.Length; i++)
                if (args[i] == a && args[i + 1] == b) return true;
            return false;
        }
        if (Verb("kms", "serve")) return "kms";
        if (Verb("party", "serve"))
        {
            var dir = Path.GetFileName(Arg("--dir")?.TrimEnd('/') ?? "");
            return dir switch
            {
                "party1" or "party2" => dir + " host",
                "party1-tampered" => "attack host (tampered app)",
                "party1-hooked" => "attack host (injected startup hook)",
                _ => "other host (" + dir + ")",
            };
        }
        if (Path.GetFileName(args[0]) == Enclave.EnclaveImage.ExecutableName && args.Length > 1 && args[1] == "run")
        {
            // The demo's tampered-app attack runs a second party-1 enclave on the same device, from another image.
            if (args[0].StartsWith(_workDirectory + "/", StringComparison.Ordinal)) return "attack enclave (tampered app)";
            var device = Path.GetFileName(Arg("--device")?.TrimEnd('/') ?? "");
            return device.EndsWith("-device", StringComparison.Ordinal) ? device[..^"-device".Length] + " enclave" : "other enclave";
        }
        return null;
    }

    private static long ReadHighWaterMark(string statusPath)
    {
        foreach (var line in File.ReadLines(statusPath))
        {
            if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
            var parts = line["VmHWM:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[0], CultureInfo.InvariantCulture) * 1024;
        }
        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
