using System.Diagnostics;
using Npgsql;

namespace TwinSeal.KmsLoad;

/// <summary>
/// The PostgreSQL server phases B and C run on: <c>--postgres</c>, else <c>$TWINSEAL_TEST_POSTGRES</c>, else a throwaway
/// cluster started with <c>scripts/services/postgres start DIR</c> (and stopped at the end). Each phase gets a fresh database.
/// </summary>
internal sealed class PostgresServer : IAsyncDisposable
{
    private const string TestVariable = "TWINSEAL_TEST_POSTGRES";
    private readonly string? _clusterDirectory;
    private readonly List<string> _databases = [];

    private PostgresServer(string connectionString, string source, string? clusterDirectory)
    {
        ConnectionString = connectionString;
        Source = source;
        _clusterDirectory = clusterDirectory;
    }

    /// <summary>The server connection string (no secrets are printed: see <see cref="Describe"/>).</summary>
    public string ConnectionString { get; }

    /// <summary>Where it came from: --postgres, the environment, or the started cluster.</summary>
    public string Source { get; }

    /// <summary>Whether a failure to reach it means the bench could not run (the user asked for it explicitly).</summary>
    public bool Explicit => Source == "--postgres";

    /// <summary>Host, port and database, without credentials.</summary>
    public static string Describe(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        return $"{b.Host}:{b.Port}/{b.Database}";
    }

    /// <summary>Finds or starts a server; null with the reason when none can be had.</summary>
    public static async Task<(PostgresServer? Server, string? WhyNot)> FindAsync(string? option, string workRoot, TextWriter log, CancellationToken ct)
    {
        if (!string.IsNullOrEmpty(option)) return await CheckAsync(new PostgresServer(option, "--postgres", null), ct);
        if (Environment.GetEnvironmentVariable(TestVariable) is { Length: > 0 } env)
            return await CheckAsync(new PostgresServer(env, "$" + TestVariable, null), ct);

        var script = Path.Combine(KmsReplica.RepositoryRoot, "scripts", "services", "postgres");
        if (!File.Exists(script)) return (null, $"no --postgres, no ${TestVariable}, and {script} does not exist");
        var dir = Path.Combine(workRoot, "pg");
        log.WriteLine($"  starting a throwaway PostgreSQL cluster: {script} start {dir} …");
        var (code, stdout, stderr) = await RunAsync(script, ["start", dir], ct);
        var line = stdout.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("export " + TestVariable + "=", StringComparison.Ordinal));
        if (code != 0 || line is null)
        {
            await RunAsync(script, ["stop", dir], CancellationToken.None);
            return (null, $"{script} start failed (exit {code}): {Last(stderr)}");
        }
        var value = line[("export " + TestVariable + "=").Length..].Trim('\'', '"');
        return await CheckAsync(new PostgresServer(value, "scripts/services/postgres", dir), ct);
    }

    private static async Task<(PostgresServer?, string?)> CheckAsync(PostgresServer server, CancellationToken ct)
    {
        try
        {
            await using var c = new NpgsqlConnection(server.ConnectionString);
            await c.OpenAsync(ct);
            await using var cmd = new NpgsqlCommand("SELECT version()", c);
            server.Version = (string?)await cmd.ExecuteScalarAsync(ct) ?? "";
            await using var settings = new NpgsqlCommand("SELECT current_setting('max_connections'), current_setting('fsync'), current_setting('synchronous_commit')", c);
            await using var r = await settings.ExecuteReaderAsync(ct);
            if (await r.ReadAsync(ct)) server.Settings = $"max_connections={r.GetString(0)}, fsync={r.GetString(1)}, synchronous_commit={r.GetString(2)}";
            return (server, null);
        }
        catch (Exception e) when (e is NpgsqlException or ArgumentException or InvalidOperationException or TimeoutException)
        {
            var why = $"PostgreSQL from {server.Source} cannot be reached: {e.Message}";
            await server.DisposeAsync();
            return (null, why);
        }
    }

    /// <summary>The server's version string.</summary>
    public string Version { get; private set; } = "";

    /// <summary>The durability and connection settings the numbers depend on.</summary>
    public string Settings { get; private set; } = "";

    /// <summary>Creates a fresh, empty database and returns its connection string.</summary>
    public async Task<string> NewDatabaseAsync(string suffix, CancellationToken ct)
    {
        var name = $"twinseal_load_{Guid.NewGuid().ToString("N")[..8]}_{suffix}";
        await using (var c = new NpgsqlConnection(ConnectionString))
        {
            await c.OpenAsync(ct);
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", c);
            await cmd.ExecuteNonQueryAsync(ct);
        }
        _databases.Add(name);
        return new NpgsqlConnectionStringBuilder(ConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>
    /// The pid of the cluster's postmaster, if it runs on this machine: the parent of the backend serving this query.
    /// Null for a server elsewhere (its CPU is then not counted).
    /// </summary>
    public async Task<int?> PostmasterPidAsync(CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(ConnectionString);
        await c.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid()", c);
        var backend = Convert.ToInt32(await cmd.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
        var host = new NpgsqlConnectionStringBuilder(ConnectionString).Host;
        if (host is not ("127.0.0.1" or "localhost" or "::1") && !(host?.StartsWith('/') ?? false)) return null;
        return CpuMeter.ReadStat(backend.ToString(System.Globalization.CultureInfo.InvariantCulture)) is { } st ? st.Parent : null;
    }

    /// <summary>Drops the databases this run created (its replicas must be stopped first).</summary>
    public async Task DropDatabasesAsync(TextWriter log)
    {
        foreach (var name in _databases)
        {
            try
            {
                await using var c = new NpgsqlConnection(ConnectionString);
                await c.OpenAsync();
                await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", c);
                await cmd.ExecuteNonQueryAsync();
            }
            catch (NpgsqlException e)
            {
                log.WriteLine($"  could not drop database {name}: {e.Message}");
            }
        }
        _databases.Clear();
    }

    /// <summary>Stops the cluster if this run started it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_clusterDirectory is not null)
            await RunAsync(Path.Combine(KmsReplica.RepositoryRoot, "scripts", "services", "postgres"), ["stop", _clusterDirectory], CancellationToken.None);
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string file, string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync(ct);
            var stderr = p.StandardError.ReadToEndAsync(ct);
            await p.WaitForExitAsync(ct);
            return (p.ExitCode, await stdout, await stderr);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, "", e.Message);
        }
    }

    private static string Last(string text) => string.Join(" | ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(3));
}
