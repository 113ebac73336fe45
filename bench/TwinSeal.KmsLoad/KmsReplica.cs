using System.Diagnostics;
using System.Reflection;
using TwinSeal.Attestation.Sim;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.KmsLoad;

/// <summary>
/// One KMS replica: <c>twinseal kms serve</c> as its own OS process (as the demo and the end-to-end bench start it),
/// its output in a log file, ready once it has written <c>endpoint.json</c> (URL and pinned certificate fingerprint)
/// into its data dir.
/// </summary>
internal sealed class KmsReplica : IAsyncDisposable
{
    /// <summary>The CLI built next to this bench in the same configuration.</summary>
    public static string CliDll { get; } = Path.GetFullPath(Metadata("TwinSealCli"));

    /// <summary>The repository this bench was built from (for <c>scripts/services/postgres</c>).</summary>
    public static string RepositoryRoot { get; } = Path.GetFullPath(Metadata("RepositoryRoot"));

    // The CLI reads a PostgreSQL connection string from here when --postgres is not given; the bench passes it this way
    // (so it is not on the process list) and removes it for a SQLite replica, so an inherited value cannot switch the store.
    private const string PostgresVariable = "TWINSEAL_KMS_POSTGRES";

    private readonly Process _process;
    private readonly StreamWriter _log;

    private KmsReplica(string name, Process process, StreamWriter log, string logPath, string dataDirectory)
    {
        Name = name;
        _process = process;
        _log = log;
        LogPath = logPath;
        DataDirectory = dataDirectory;
    }

    public string Name { get; }
    public string LogPath { get; }
    public string DataDirectory { get; }
    public ServiceEndpoint Endpoint { get; private set; } = null!;
    public int ProcessId => _process.Id;

    /// <summary>CPU time the replica's process has used so far.</summary>
    public TimeSpan CpuTime
    {
        get
        {
            try
            {
                _process.Refresh();
                return _process.TotalProcessorTime;
            }
            catch (InvalidOperationException)
            {
                return TimeSpan.Zero;
            }
        }
    }

    /// <summary>Writes the same 32-byte master key file (0600) into every data dir, as replicas sharing one store need.</summary>
    public static void ShareMasterKey(IEnumerable<string> dataDirectories)
    {
        var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        try
        {
            foreach (var dir in dataDirectories)
            {
                Directory.CreateDirectory(dir);
                SecretFile.WriteAllBytes(Path.Combine(dir, "master.key"), key);
            }
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
        }
    }

    public static async Task<KmsReplica> StartAsync(string name, string dataDirectory, string simRoot, string? postgres, string logDirectory, CancellationToken ct)
    {
        Directory.CreateDirectory(dataDirectory);
        Directory.CreateDirectory(logDirectory);
        ServiceEndpointFile.Clear(dataDirectory);
        var logPath = Path.Combine(logDirectory, name + ".log");
        var log = new StreamWriter(logPath, append: false) { AutoFlush = true };
        var psi = SelfLaunch.ForAssembly(CliDll).StartInfo(
            ["kms", "serve", "--data-dir", dataDirectory, "--listen", "127.0.0.1", "--port", "0", "--accept-simulated-evidence", "--trust-sim-root", simRoot, "--allow-self-registration"]);
        psi.RedirectStandardInput = false;
        if (postgres is null) psi.Environment.Remove(PostgresVariable);
        else psi.Environment[PostgresVariable] = postgres;
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"{name} did not start.");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var replica = new KmsReplica(name, process, log, logPath, dataDirectory);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (true)
        {
            if (ServiceEndpointFile.TryRead(dataDirectory) is { } ep)
            {
                replica.Endpoint = ep;
                return replica;
            }
            if (process.HasExited || DateTime.UtcNow > deadline || ct.IsCancellationRequested)
            {
                var why = process.HasExited ? $"exited with code {process.ExitCode}" : ct.IsCancellationRequested ? "was cancelled" : "did not become ready in 90 s";
                await replica.DisposeAsync();
                var tail = string.Join(Environment.NewLine, File.ReadLines(logPath).TakeLast(15));
                throw new InvalidOperationException($"KMS replica {name} {why}. Last lines of {logPath}:{Environment.NewLine}{tail}");
            }
            await Task.Delay(50, CancellationToken.None);
        }
    }

    /// <summary>The last lines of the replica's log (for a failure message).</summary>
    public string Tail(int lines = 10)
    {
        lock (_log) _log.Flush();
        try
        {
            using var s = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var r = new StreamReader(s);
            var all = r.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return string.Join(Environment.NewLine, all.TakeLast(lines));
        }
        catch (IOException)
        {
            return "";
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                // Killed already; nothing more to wait for.
            }
        }
        _process.Dispose();
        lock (_log) _log.Dispose();
    }

    private static string Metadata(string key)
        => typeof(KmsReplica).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
}
