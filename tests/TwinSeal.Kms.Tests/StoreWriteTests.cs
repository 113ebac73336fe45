using System.Data.Common;
using TwinSeal.Kms.Store;

namespace TwinSeal.Kms.Tests;

/// <summary>
/// The store's write path, on SQLite and on PostgreSQL: group-committed writes are each all-or-nothing, a failing
/// write does not disturb the others in its batch, a recorded refusal keeps its changes, and migrations are versioned.
/// </summary>
public sealed class StoreWriteTests
{
    public static TheoryData<string> Stores => new() { "sqlite", "postgres" };

    private static async Task<(KmsDatabase Db, string Dir)> OpenAsync(string store)
    {
        var dir = Directory.CreateTempSubdirectory("twinseal-store-").FullName;
        var options = new KmsOptions
        {
            DataDirectory = dir,
            PostgresConnectionString = store == "postgres" ? await TestServices.NewPostgresDatabaseAsync(ct: TestContext.Current.CancellationToken) : null,
        };
        return (KmsDatabase.Open(options), dir);
    }

    private static int Count(KmsDatabase db, string where)
        => db.Read(c =>
        {
            using var cmd = KmsDatabase.Command(c, null, $"SELECT COUNT(*) FROM request_ids WHERE {where}");
            return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        });

    private static Task<int> Insert(KmsDatabase db, string id, Func<int>? then = null)
        => db.WriteAsync((c, tx) =>
        {
            KmsDatabase.Execute(c, tx, "INSERT INTO request_ids(party_id, request_id, seen_at) VALUES('p', @r, 0)", ("@r", id));
            return then?.Invoke() ?? 1;
        });

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Concurrent_writes_all_commit_and_each_is_acknowledged_once(string store)
    {
        var (db, _) = await OpenAsync(store);
        await using (db)
        {
            var results = await Task.WhenAll(Enumerable.Range(0, 500).Select(i => Insert(db, $"ok-{i}")));

            Assert.All(results, r => Assert.Equal(1, r));
            Assert.Equal(500, Count(db, "request_id LIKE 'ok-%'"));
        }
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_failing_write_is_undone_without_undoing_the_writes_batched_with_it(string store)
    {
        var (db, _) = await OpenAsync(store);
        await using (db)
        {
            var tasks = Enumerable.Range(0, 200).Select(i => i % 3 == 0
                ? Insert(db, $"bad-{i}", () => throw KmsException.Conflict("test-refusal", "refused after writing"))
                : Insert(db, $"good-{i}")).ToList();

            var outcomes = await Task.WhenAll(tasks.Select(async t =>
            {
                try { await t; return "ok"; }
                catch (KmsException e) { return e.Code; }
            }));

            Assert.Equal(67, outcomes.Count(o => o == "test-refusal"));
            Assert.Equal(0, Count(db, "request_id LIKE 'bad-%'"));
            Assert.Equal(133, Count(db, "request_id LIKE 'good-%'"));
        }
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_recorded_refusal_keeps_what_it_wrote_and_still_reaches_the_caller(string store)
    {
        var (db, _) = await OpenAsync(store);
        await using (db)
        {
            var e = await Assert.ThrowsAsync<KmsException>(() => Insert(db, "recorded", () => throw KmsException.Forbidden("refused", "audited refusal").Recorded()));

            Assert.Equal("refused", e.Code);
            Assert.Equal(1, Count(db, "request_id = 'recorded'"));
        }
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task A_write_that_breaks_a_constraint_changes_nothing_and_fails_alone(string store)
    {
        var (db, _) = await OpenAsync(store);
        await using (db)
        {
            await Insert(db, "dup");

            var failing = db.WriteAsync((c, tx) =>
            {
                KmsDatabase.Execute(c, tx, "INSERT INTO request_ids(party_id, request_id, seen_at) VALUES('p', 'first-half', 0)");
                KmsDatabase.Execute(c, tx, "INSERT INTO request_ids(party_id, request_id, seen_at) VALUES('p', 'dup', 0)");
                return 0;
            });
            var alongside = Insert(db, "alongside");

            await Assert.ThrowsAnyAsync<DbException>(() => failing);
            Assert.Equal(1, await alongside);
            var after = await Insert(db, "after");

            Assert.Equal(0, Count(db, "request_id = 'first-half'"));
            Assert.Equal(1, Count(db, "request_id = 'alongside'"));
            Assert.Equal(1, after);
        }
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task Opening_a_store_records_the_current_schema_version(string store)
    {
        var (db, _) = await OpenAsync(store);
        await using (db)
        {
            Assert.Equal(KmsSchema.Version, db.AppliedSchemaVersion());
            Assert.Empty(db.Migrate());
        }
    }

    [Fact]
    public async Task An_SQLite_store_written_by_a_newer_TwinSeal_is_refused()
    {
        var (db, dir) = await OpenAsync("sqlite");
        await using (db)
        {
            db.Read(c => KmsDatabase.Execute(c, null, $"PRAGMA user_version={KmsSchema.Version + 1}"));
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();

        var e = Assert.Throws<InvalidOperationException>(() => KmsDatabase.Open(new KmsOptions { DataDirectory = dir }));

        Assert.Contains("newer TwinSeal", e.Message);
    }

    [Fact]
    public async Task A_store_that_cannot_be_reached_at_start_is_named_in_a_clear_error()
    {
        var options = new KmsOptions { DataDirectory = Path.GetTempPath(), PostgresConnectionString = "Host=127.0.0.1;Port=1;Username=nobody;Database=none;Timeout=2" };

        var e = await Task.Run(() => Assert.Throws<InvalidOperationException>(() => KmsDatabase.Open(options)));

        Assert.Contains("Cannot open the KMS store (PostgreSQL 127.0.0.1:1/none)", e.Message);
    }

    [Fact]
    public async Task A_write_to_a_store_that_went_away_fails_as_store_unavailable()
    {
        var (db, dir) = await OpenAsync("sqlite");
        await using (db)
        {
            await Insert(db, "before");
            // The file's folder disappears under the KMS: the closest SQLite gets to a database going away.
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(dir, recursive: true);

            var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => Insert(db, "after"));

            Assert.Contains("nothing was changed", e.Message);
        }
    }
}
