using Npgsql;
using TwinSeal.Kms;

namespace TwinSeal.Tests.Shared;

/// <summary>
/// The external services some tests need (PostgreSQL, a PKCS#11 token), as started by <c>scripts/test</c> and
/// <c>scripts/crash-test</c> through <c>scripts/services</c>. When those scripts run (CI sets
/// <c>TWINSEAL_REQUIRE_SERVICES=1</c>) a missing service fails the test; a plain <c>dotnet test</c> on a machine without
/// them skips it and says why. Linked into each test project that needs it.
/// </summary>
internal static class TestServices
{
    private static bool Required => Environment.GetEnvironmentVariable("TWINSEAL_REQUIRE_SERVICES") == "1";

    /// <summary>Connection string of a throwaway PostgreSQL cluster (<c>TWINSEAL_TEST_POSTGRES</c>), on which tests may create databases.</summary>
    public static string Postgres() => Get("TWINSEAL_TEST_POSTGRES", "PostgreSQL");

    /// <summary>A SoftHSM2 token initialised for tests: module path, token label and user PIN.</summary>
    public static Pkcs11RootOptions Pkcs11(string keyLabel = "twinseal-kek-root") => new()
    {
        LibraryPath = Get("TWINSEAL_TEST_PKCS11_LIBRARY", "a PKCS#11 token (SoftHSM2)"),
        TokenLabel = Get("TWINSEAL_TEST_PKCS11_TOKEN", "a PKCS#11 token (SoftHSM2)"),
        UserPin = Get("TWINSEAL_TEST_PKCS11_PIN", "a PKCS#11 token (SoftHSM2)"),
        KeyLabel = keyLabel,
    };

    /// <summary>A fresh, empty database on the test cluster, so each test has its own store; returns its connection string.</summary>
    public static async Task<string> NewPostgresDatabaseAsync(string prefix = "twinseal_", CancellationToken ct = default)
    {
        var server = Postgres();
        var name = prefix + Guid.NewGuid().ToString("N")[..16];
        await using (var c = new NpgsqlConnection(server))
        {
            await c.OpenAsync(ct);
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"CREATE DATABASE {name}";
            await cmd.ExecuteNonQueryAsync(ct);
        }
        return new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }

    /// <summary>Drops a database made by <see cref="NewPostgresDatabaseAsync"/> (best effort: the cluster is throwaway anyway).</summary>
    public static async Task DropPostgresDatabaseAsync(string connectionString)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database;
        NpgsqlConnection.ClearAllPools();
        try
        {
            await using var c = new NpgsqlConnection(Postgres());
            await c.OpenAsync();
            await using var cmd = c.CreateCommand();
            cmd.CommandText = $"DROP DATABASE IF EXISTS {name} WITH (FORCE)";
            await cmd.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException)
        {
            // Left behind on a throwaway cluster; nothing depends on it.
        }
    }

    private static string Get(string variable, string what)
    {
        var value = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrEmpty(value)) return value;
        var message = $"{what} is not available: {variable} is not set. Run the tests through ./scripts/test (or ./scripts/crash-test), which starts it.";
        if (Required) Assert.Fail(message);
        Assert.Skip(message);
        return "";
    }
}
