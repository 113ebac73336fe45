using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Text;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.Resilience.Tests;

/// <summary>How to start the KMS under test: its data directory, trust anchor and store.</summary>
/// <param name="DataDirectory">The KMS folder: TLS identity, master key file and (without <paramref name="Postgres"/>) kms.sqlite.</param>
/// <param name="SimRootCertificate">The simulated platform root the KMS trusts.</param>
/// <param name="Postgres">A PostgreSQL connection string, or null for the SQLite store in the data directory.</param>
/// <param name="RunDirectory">Where the log and the pid file go.</param>
internal sealed record KmsLaunch(string DataDirectory, string SimRootCertificate, string? Postgres, string RunDirectory)
{
    public string LogPath => Path.Combine(RunDirectory, "kms.log");

    /// <summary>Holds the id of the KMS process currently running, so <c>scripts/crash-test</c> can end a leftover by its id.</summary>
    public string PidPath => Path.Combine(RunDirectory, "kms.pid");
}

/// <summary>
/// The real KMS (<c>dotnet twinseal.dll kms serve</c>) as a child process of the test. The process started is the KMS
/// itself (the dotnet host runs the app in-process; there is no shell in between), so <see cref="SigkillAsync"/> kills
/// exactly the KMS. Every child is also ended when it is disposed and, as a last resort, when the test host exits.
/// </summary>
internal sealed class KmsProcess : IAsyncDisposable
{
    /// <summary>Exit code .NET reports for a child that died of SIGKILL (128 + 9).</summary>
    public const int SigkillExitCode = 137;

    private static readonly ConcurrentDictionary<int, Process> Live = new();
    private readonly Process _process;
    private readonly KmsLaunch _launch;
    private readonly StreamWriter _log;
    private bool _disposed;

    static KmsProcess() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        foreach (var p in Live.Values)
        {
            try
            {
                if (!p.HasExited) p.Kill();
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }
    };

    private KmsProcess(Process process, KmsLaunch launch, StreamWriter log, int incarnation)
    {
        _process = process;
        _launch = launch;
        _log = log;
        Incarnation = incarnation;
        Id = process.Id;
    }

    /// <summary>The CLI build this test project references (see the csproj's TwinSealCli metadata).</summary>
    public static string CliDll { get; } = Path.GetFullPath(typeof(KmsProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "TwinSealCli").Value!);

    /// <summary>Which start of the KMS in this run this is (1 = the first).</summary>
    public int Incarnation { get; }

    /// <summary>OS process id of the KMS.</summary>
    public int Id { get; }

    /// <summary>URL and pinned certificate fingerprint, from the endpoint file the KMS wrote once listening.</summary>
    public ServiceEndpoint Endpoint { get; private set; } = null!;

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>Starts the KMS and waits until it has written its endpoint file; on failure kills it and says why, with the log's last lines.</summary>
    public static async Task<KmsProcess> StartAsync(KmsLaunch launch, int incarnation, CancellationToken ct)
    {
        if (!File.Exists(CliDll)) throw new InvalidOperationException($"The twinseal CLI is not built at {CliDll}.");
        Directory.CreateDirectory(launch.DataDirectory);
        // The killed predecessor's endpoint file names a dead port: only a file written by this process counts.
        ServiceEndpointFile.Clear(launch.DataDirectory);
        string[] args =
        [
            "kms", "serve", "--data-dir", launch.DataDirectory, "--port", "0",
            "--accept-simulated-evidence", "--trust-sim-root", launch.SimRootCertificate,
            // The harness registers its two parties itself, and reads the whole audit chain as party 1.
            "--allow-self-registration", "--auditor", CrashRig.Party1,
            .. launch.Postgres is null ? Array.Empty<string>() : ["--postgres", launch.Postgres],
        ];
        var psi = SelfLaunch.ForAssembly(CliDll).StartInfo(args);
        psi.RedirectStandardInput = false;
        // The store is chosen by the arguments alone: a TWINSEAL_KMS_POSTGRES in the test's environment must not switch a SQLite run to PostgreSQL.
        psi.Environment.Remove("TWINSEAL_KMS_POSTGRES");
        var log = new StreamWriter(launch.LogPath, append: true, Encoding.UTF8) { AutoFlush = true };
        log.WriteLine($"===== KMS start #{incarnation} at {DateTimeOffset.UtcNow:O}");
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException("The KMS process did not start.");
        }
        catch
        {
            log.Dispose();
            throw;
        }
        Live[process.Id] = process;
        await File.WriteAllTextAsync(launch.PidPath, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), CancellationToken.None);
        var kms = new KmsProcess(process, launch, log, incarnation);
        process.OutputDataReceived += (_, e) => kms.Log(e.Data);
        process.ErrorDataReceived += (_, e) => kms.Log(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                if (ServiceEndpointFile.TryRead(launch.DataDirectory) is { } endpoint)
                {
                    kms.Endpoint = endpoint;
                    return kms;
                }
                if (process.HasExited)
                {
                    // Also waits for the end of its output, so the log holds why it stopped.
                    await process.WaitForExitAsync(ct);
                    throw new InvalidOperationException($"KMS start #{incarnation} exited with code {process.ExitCode} before it was listening.{kms.LogTail()}");
                }
                if (deadline.Elapsed > TimeSpan.FromSeconds(60))
                    throw new InvalidOperationException($"KMS start #{incarnation} was not listening after 60 s.{kms.LogTail()}");
                await Task.Delay(25, ct);
            }
        }
        catch
        {
            await kms.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Sends SIGKILL to the KMS process (after checking that this pid is still the KMS we started) and waits for it to
    /// die. Returns its exit code: <see cref="SigkillExitCode"/> when SIGKILL is what ended it.
    /// </summary>
    public async Task<int> SigkillAsync()
    {
        if (_process.HasExited)
            throw new InvalidOperationException($"KMS start #{Incarnation} (pid {Id}) had already exited with code {_process.ExitCode} before it was killed.{LogTail()}");
        var cmdline = ReadCommandLine(Id);
        if (cmdline is not null && !(cmdline.Contains(CliDll, StringComparison.Ordinal) && cmdline.Contains("serve", StringComparison.Ordinal)))
            throw new InvalidOperationException($"pid {Id} is not the KMS process (its command line is '{cmdline}'); refusing to kill it.");
        _process.Kill(); // SIGKILL on Linux: no shutdown hook, no flush, no graceful close of the store.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(timeout.Token);
        Log($"===== KMS start #{Incarnation} (pid {Id}) SIGKILLed; exit code {_process.ExitCode}");
        return _process.ExitCode;
    }

    /// <summary>The last lines of the KMS log, for failure messages.</summary>
    public string LogTail(int lines = 25)
    {
        string[] tail;
        lock (_log)
        {
            try
            {
                using var read = new FileStream(_launch.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                using var reader = new StreamReader(read);
                tail = [.. reader.ReadToEnd().Split('\n').TakeLast(lines)];
            }
            catch (IOException e)
            {
                return $" (log {_launch.LogPath} unreadable: {e.Message})";
            }
        }
        return $"{Environment.NewLine}Last lines of {_launch.LogPath}:{Environment.NewLine}{string.Join('\n', tail)}";
    }

    private void Log(string? line)
    {
        if (line is null) return;
        lock (_log)
        {
            try
            {
                _log.WriteLine($"[#{Incarnation}] {line}");
            }
            catch (ObjectDisposedException)
            {
                // Output that arrives after disposal is dropped.
            }
        }
    }

    private static string? ReadCommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Ends the process if it still runs (SIGKILL) and releases everything; safe to call more than once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await _process.WaitForExitAsync(timeout.Token);
            }
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }
        catch (OperationCanceledException)
        {
            // SIGKILL cannot be ignored; a process still there after 30 s is stuck in the kernel and nothing more can be done here.
        }
        Live.TryRemove(Id, out _);
        try
        {
            if (File.Exists(_launch.PidPath) && File.ReadAllText(_launch.PidPath).Trim() == Id.ToString(System.Globalization.CultureInfo.InvariantCulture))
                File.Delete(_launch.PidPath);
        }
        catch (IOException)
        {
            // Only informational for scripts/crash-test.
        }
        _process.Dispose();
        lock (_log) _log.Dispose();
    }
}
