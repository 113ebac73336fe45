using System.Diagnostics;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.Cli.Demo;

/// <summary>A twinseal service (KMS or party host) running as its own OS process, with its output in a log file.</summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;

    private ServiceProcess(string name, Process process, StreamWriter log, string logPath)
    {
        Name = name;
        _process = process;
        _log = log;
        LogPath = logPath;
    }

    /// <summary>Service name for messages.</summary>
    public string Name { get; }
    /// <summary>Where its output goes.</summary>
    public string LogPath { get; }
    /// <summary>Its endpoint, once ready.</summary>
    public ServiceEndpoint Endpoint { get; private set; } = null!;
    /// <summary>OS process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>Starts the service and waits until it has written its endpoint file into <paramref name="directory"/>.</summary>
    /// <param name="environment">Variables added to the inherited environment (the demo's attacks use this).</param>
    /// <param name="workingDirectory">The process's working folder (default: this process's).</param>
    public static async Task<ServiceProcess> StartAsync(string name, SelfLaunch launch, IEnumerable<string> arguments, string directory, string logDirectory, TimeSpan? timeout = null, IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        Directory.CreateDirectory(directory);
        Directory.CreateDirectory(logDirectory);
        ServiceEndpointFile.Clear(directory);
        var logPath = Path.Combine(logDirectory, name + ".log");
        var log = new StreamWriter(logPath, append: false) { AutoFlush = true };
        var psi = launch.StartInfo(arguments);
        psi.RedirectStandardInput = false;
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"{name} did not start.");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var service = new ServiceProcess(name, process, log, logPath);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(90));
        while (true)
        {
            if (ServiceEndpointFile.TryRead(directory) is { } ep)
            {
                service.Endpoint = ep;
                return service;
            }
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                var why = process.HasExited ? $"exited with code {process.ExitCode}" : "did not become ready in time";
                await service.DisposeAsync().ConfigureAwait(false);
                var tail = string.Join(Environment.NewLine, File.ReadLines(logPath).TakeLast(15));
                throw new InvalidOperationException($"{name} {why}. Last lines of {logPath}:{Environment.NewLine}{tail}");
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Already killed; nothing more to do.
            }
        }
        _process.Dispose();
        lock (_log) _log.Dispose();
    }
}
