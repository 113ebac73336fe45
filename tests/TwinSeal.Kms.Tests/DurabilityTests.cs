using System.Runtime.Versioning;
using Microsoft.Data.Sqlite;
using TwinSeal.Crypto;
using TwinSeal.Kms.Store;

namespace TwinSeal.Kms.Tests;

/// <summary>Everything the KMS acknowledged survives a restart; key material at rest is sealed by the 0600 master key and destroyed on deletion.</summary>
public sealed class DurabilityTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Restart_OnTheSameDataDirectory_KeepsPartiesKeyAndAuthority_AndReleasesTheSameDataKey()
    {
        await using var bed = await KmsTestBed.StartAsync();
        using var before = await bed.RequestKeyAsync(bed.Party1);
        var keyBefore = await bed.Party1.Client.GetKeyAsync(bed.KeyId);

        await bed.RestartAsync();

        Assert.Equal(bed.Party1.Key.PublicKey.Fingerprint, (await bed.Party2.Client.GetPartyAsync("party1")).Fingerprint);
        Assert.Equal(bed.Party2.Key.PublicKey.Fingerprint, (await bed.Party1.Client.GetPartyAsync("party2")).Fingerprint);
        var keyAfter = await bed.Party1.Client.GetKeyAsync(bed.KeyId);
        Assert.Equal(keyBefore with { RetiredVersions = null }, keyAfter with { RetiredVersions = null });
        Assert.Equal(keyBefore.RetiredVersions, keyAfter.RetiredVersions);
        var authority = await bed.Party1.Client.GetAuthorityAsync(bed.KeyId);
        Assert.Equal((bed.Authority.Version, bed.Authority.PolicyHash), (authority.Version, authority.PolicyHash));
        using var after = await bed.RequestKeyAsync(bed.Party2);
        await KmsTestBed.AssertSameDataKeyAsync(before.DataKey, after.DataKey, bed.KeyId, Ct);
        Assert.True((await bed.Party1.Client.VerifyAuditAsync()).Valid);
    }

    [Fact]
    public async Task Restart_KeepsBurntNoncesBurnt()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var nonce = await bed.NonceAsync();
        using var enclave = new EphemeralKeyPair();
        var request = new Protocol.KeyUseRequest(bed.KeyId, nonce, bed.Attest(nonce, enclave.PublicKey), enclave.PublicKey);
        await KmsTestBed.SendKeyUseAsync(bed.Party1, request);

        await bed.RestartAsync();

        await KmsTestBed.AssertRefusedAsync("nonce-reused", () => KmsTestBed.SendKeyUseAsync(bed.Party1, request));
    }

    [Fact]
    public async Task StoredDataKey_UnwrapsWithTheMasterKeyFile_ToTheKeyThatIsReleased()
    {
        await using var bed = await KmsTestBed.StartAsync();
        using var released = await bed.RequestKeyAsync(bed.Party1);
        await bed.StopAsync();

        var (sealedKek, wrapped) = ReadKeyMaterial(bed, bed.KeyId);
        using var master = MasterKeyFile.LoadOrCreate(bed.DataDirectory);
        using var kek = master.UnsealKek(sealedKek!, bed.KeyId);
        using var dataKey = kek.UnwrapDataKey(wrapped!, bed.KeyId, 1);

        await KmsTestBed.AssertSameDataKeyAsync(dataKey, released.DataKey, bed.KeyId, Ct);
    }

    [Fact]
    [UnsupportedOSPlatform("windows")]
    public async Task MasterKeyFile_IsReadableAndWritableByItsOwnerOnly()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix file modes only.");
        await using var bed = await KmsTestBed.StartAsync();

        var mode = File.GetUnixFileMode(Path.Combine(bed.DataDirectory, MasterKeyFile.FileName));

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
    }

    [Fact]
    [UnsupportedOSPlatform("windows")]
    public async Task Kms_RefusesToStart_WhenOthersCanReadTheMasterKeyFile()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix file modes only.");
        await using var bed = await KmsTestBed.StartAsync();
        await bed.StopAsync();
        var path = Path.Combine(bed.DataDirectory, MasterKeyFile.FileName);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        await Assert.ThrowsAsync<InvalidOperationException>(() => KmsServer.StartAsync(bed.Options, 0, bed.Clock));

        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await bed.RestartAsync();
    }

    [Fact]
    public async Task DeletedKey_HoldsNoWrappedBytes_AndStaysDeletedAfterRestart()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var (sealedBefore, wrappedBefore) = ReadKeyMaterial(bed, bed.KeyId);
        Assert.NotNull(sealedBefore);
        Assert.NotNull(wrappedBefore);

        await bed.DeleteKeyAsync(bed.KeyId);

        var (sealedAfter, wrappedAfter) = ReadKeyMaterial(bed, bed.KeyId);
        Assert.Null(sealedAfter);
        Assert.Null(wrappedAfter);
        await bed.RestartAsync();
        Assert.Equal("deleted", (await bed.Party1.Client.GetKeyAsync(bed.KeyId)).State);
        await KmsTestBed.AssertRefusedAsync("key-deleted", () => bed.RequestKeyAsync(bed.Party1));
    }

    /// <summary>The sealed KEK and the wrapped data key (version 1) straight from the SQLite file; null where the column is NULL.</summary>
    private static (byte[]? SealedKek, byte[]? Wrapped) ReadKeyMaterial(KmsTestBed bed, string keyId)
    {
        using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = bed.DatabasePath, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT k.sealed_kek, d.wrapped FROM keys k JOIN data_keys d ON d.key_id = k.key_id AND d.version = 1 WHERE k.key_id = $k";
        cmd.Parameters.AddWithValue("$k", keyId);
        using var r = cmd.ExecuteReader();
        Assert.True(r.Read(), $"no rows for key {keyId}");
        return (r.IsDBNull(0) ? null : (byte[])r[0], r.IsDBNull(1) ? null : (byte[])r[1]);
    }
}
