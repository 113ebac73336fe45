using Microsoft.Data.Sqlite;

namespace TwinSeal.Kms.Store;

/// <summary>
/// The KMS's SQLite file: WAL journal, synchronous=FULL so an acknowledged write survives a crash,
/// one write transaction at a time (BEGIN IMMEDIATE) so read-modify-write decisions cannot interleave.
/// </summary>
public sealed class KmsDatabase
{
    private readonly string _connectionString;
    private readonly SemaphoreSlim _writeGate = new(1, 1);

    /// <summary>Opens (creating if needed) the database at <paramref name="path"/>.</summary>
    public KmsDatabase(string path)
    {
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        using var c = Open();
        Execute(c, null, "PRAGMA journal_mode=WAL;");
        using (var v = Command(c, null, "PRAGMA user_version;"))
        {
            var version = Convert.ToInt64(v.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
            if (version > SchemaVersion)
                throw new InvalidOperationException($"The KMS store '{path}' was written by a newer TwinSeal (schema {version}; this one knows {SchemaVersion}).");
        }
        Execute(c, null, Schema);
        Execute(c, null, $"PRAGMA user_version={SchemaVersion};");
    }

    /// <summary>Version of the schema below, kept in SQLite's user_version.</summary>
    public const int SchemaVersion = 1;

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS parties(party_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, fingerprint TEXT NOT NULL, registered_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS keys(key_id TEXT PRIMARY KEY, label TEXT, created_by TEXT NOT NULL, created_at INTEGER NOT NULL, state TEXT NOT NULL, sealed_kek BLOB, current_version INTEGER NOT NULL, deleted_at INTEGER, deletion_due_at INTEGER);
        CREATE TABLE IF NOT EXISTS data_keys(key_id TEXT NOT NULL, version INTEGER NOT NULL, wrapped BLOB, created_at INTEGER NOT NULL, PRIMARY KEY(key_id, version));
        CREATE TABLE IF NOT EXISTS authorities(key_id TEXT NOT NULL, version INTEGER NOT NULL, policy BLOB NOT NULL, policy_hash TEXT NOT NULL, applied_at INTEGER NOT NULL, proposal_id TEXT, PRIMARY KEY(key_id, version));
        CREATE TABLE IF NOT EXISTS proposals(proposal_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, kind TEXT NOT NULL, base_version INTEGER NOT NULL, body BLOB NOT NULL, proposal_hash TEXT NOT NULL, proposed_by TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, status TEXT NOT NULL, applied_version INTEGER);
        CREATE TABLE IF NOT EXISTS approvals(proposal_id TEXT NOT NULL, party_id TEXT NOT NULL, approved_at INTEGER NOT NULL, PRIMARY KEY(proposal_id, party_id));
        CREATE TABLE IF NOT EXISTS nonces(nonce BLOB PRIMARY KEY, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER);
        CREATE TABLE IF NOT EXISTS request_ids(party_id TEXT NOT NULL, request_id TEXT NOT NULL, seen_at INTEGER NOT NULL, PRIMARY KEY(party_id, request_id));
        CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, event TEXT NOT NULL, key_id TEXT, actor TEXT, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, signed_request BLOB, signature BLOB);
        """;

    /// <summary>Opens a connection with the durability pragmas set (they are per connection in SQLite).</summary>
    public SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        Execute(c, null, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;");
        return c;
    }

    /// <summary>Runs <paramref name="work"/> in one immediate write transaction and commits it.</summary>
    public async Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, T> work)
    {
        await _writeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            using var c = Open();
            using var tx = c.BeginTransaction(deferred: false);
            try
            {
                var result = work(c, tx);
                tx.Commit();
                return result;
            }
            catch (KmsException e) when (e.KeepChanges)
            {
                tx.Commit();
                throw;
            }
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Runs a read.</summary>
    public T Read<T>(Func<SqliteConnection, T> work)
    {
        using var c = Open();
        return work(c);
    }

    /// <summary>Executes a statement with named parameters (<c>$name</c>).</summary>
    public static int Execute(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        return cmd.ExecuteNonQuery();
    }

    /// <summary>Builds a command with named parameters.</summary>
    public static SqliteCommand Command(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v ?? DBNull.Value);
        return cmd;
    }
}
