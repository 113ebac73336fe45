using DuckDB.NET.Data;
using TwinSeal.Apps.Engine;

namespace TwinSeal.Apps.Tests;

/// <summary>The engine inside the isolated area cannot reach files, databases, extensions or its own settings once locked down.</summary>
public sealed class IsolatedDatabaseTests
{
    [Theory]
    [InlineData("SELECT * FROM read_csv('/etc/passwd')")]
    [InlineData("SELECT * FROM read_text('/etc/hostname')")]
    [InlineData("SELECT * FROM glob('/etc/*')")]
    [InlineData("ATTACH '/tmp/twinseal-isolated-attach.duckdb' AS other")]
    [InlineData("INSTALL httpfs")]
    [InlineData("LOAD httpfs")]
    [InlineData("COPY (SELECT 42 AS answer) TO '/tmp/twinseal-isolated-copy.csv'")]
    [InlineData("EXPORT DATABASE '/tmp/twinseal-isolated-export'")]
    public void LockedDown_StatementReachingOutside_IsRefused(string sql)
    {
        using var db = IsolatedDatabase.Open([], memoryLimitBytes: 256L << 20, threads: 1);
        Assert.ThrowsAny<DuckDBException>(() => db.Execute(sql));
        Assert.False(File.Exists("/tmp/twinseal-isolated-attach.duckdb"));
        Assert.False(File.Exists("/tmp/twinseal-isolated-copy.csv"));
        Assert.False(Directory.Exists("/tmp/twinseal-isolated-export"));
    }

    [Theory]
    [InlineData("SET enable_external_access = true")]
    [InlineData("SET lock_configuration = false")]
    [InlineData("SET autoload_known_extensions = true")]
    [InlineData("SET temp_directory = '/tmp'")]
    [InlineData("SET memory_limit = '100GB'")]
    [InlineData("RESET enable_external_access")]
    public void LockedDown_ChangingASetting_IsRefused(string sql)
    {
        using var db = IsolatedDatabase.Open([], memoryLimitBytes: 256L << 20, threads: 1);
        Assert.ThrowsAny<DuckDBException>(() => db.Execute(sql));
        Assert.Equal("false", db.Setting("enable_external_access"));
        Assert.Equal("true", db.Setting("lock_configuration"));
    }

    [Fact]
    public void LockedDown_Settings_AreTheAgreedOnes()
    {
        using var db = IsolatedDatabase.Open([], memoryLimitBytes: 256L << 20, threads: 1);
        Assert.Equal("false", db.Setting("autoinstall_known_extensions"));
        Assert.Equal("false", db.Setting("autoload_known_extensions"));
        Assert.Equal("false", db.Setting("allow_community_extensions"));
        Assert.Equal("", db.Setting("temp_directory"));
        Assert.Equal("1", db.Setting("threads"));
    }

    [Fact]
    public void LockedDown_MoreThanTheMemoryLimit_FailsInsteadOfSpillingToTheTempFolder()
    {
        var before = TempEntries();
        using var db = IsolatedDatabase.Open([], memoryLimitBytes: 64L << 20, threads: 1);
        // A sort of ~200 MB of distinct strings cannot fit in 64 MiB: with a temp directory DuckDB would spill it.
        var e = Assert.ThrowsAny<DuckDBException>(() => db.Scalar("SELECT count(*) FROM (SELECT md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS s FROM range(3000000) t(i) ORDER BY s)"));
        // The error SecureMatchApp turns into engine-out-of-memory.
        Assert.Equal(DuckDB.NET.Native.DuckDBErrorType.OutOfMemory, e.ErrorType);
        // DuckDB names what it spills duckdb_temp_*; any other new entry of the shared temp folder is another process's
        // (the test runner and the build write tmpXXXX.tmp files there while the suite runs).
        Assert.DoesNotContain(TempEntries().Except(before), e => Path.GetFileName(e).Contains("duckdb", StringComparison.OrdinalIgnoreCase));
        Assert.False(Directory.Exists(Path.Combine(Environment.CurrentDirectory, ".tmp")));
    }

    [Fact]
    public void LockedDown_Computation_StillRuns()
    {
        using var db = IsolatedDatabase.Open([], memoryLimitBytes: 256L << 20, threads: 1);
        Assert.Equal(4950L, Convert.ToInt64(db.Scalar("SELECT sum(i)::BIGINT FROM range(100) t(i)"), System.Globalization.CultureInfo.InvariantCulture));
    }

    private static HashSet<string> TempEntries() => Directory.EnumerateFileSystemEntries(Path.GetTempPath()).ToHashSet(StringComparer.Ordinal);
}
