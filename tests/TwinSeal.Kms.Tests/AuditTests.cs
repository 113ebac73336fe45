using Microsoft.Data.Sqlite;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>Every decision lands in the hash-chained audit log, and an edit to any record is found.</summary>
public sealed class AuditTests
{
    [Fact]
    public async Task AuditLog_RecordsKeyCreationAuthorityReleaseAndRefusal_AndItsChainVerifies()
    {
        await using var bed = await KmsTestBed.StartAsync(auditors: ["auditor"]);
        (await bed.RequestKeyAsync(bed.Party2)).Dispose();
        await KmsTestBed.AssertRefusedAsync("measurement-mismatch", () => bed.RequestKeyAsync(bed.Party1, measurement: KmsTestBed.TamperedMeasurement));
        // The whole chain, each party's registration included: what an auditor reads.
        var auditor = await bed.AddPartyAsync("auditor");

        var audit = await auditor.Client.AuditAsync();
        var verification = await auditor.Client.VerifyAuditAsync();

        Assert.Equal(new AuditVerification(true, audit.Length, null, null), verification);
        Assert.Contains(audit, r => r is { Event: "key-created", Actor: "party1" } && r.KeyId == bed.KeyId);
        Assert.Contains(audit, r => r is { Event: "authority-set" } && r.KeyId == bed.KeyId && r.Detail.StartsWith("version 1 ", StringComparison.Ordinal));
        Assert.Contains(audit, r => r is { Event: "key-released", Actor: "party2" } && r.KeyId == bed.KeyId);
        Assert.Contains(audit, r => r is { Event: "key-refused", Actor: "party1" } && r.KeyId == bed.KeyId && r.Detail.StartsWith("measurement-mismatch: ", StringComparison.Ordinal));
        Assert.Equal(Enumerable.Range(1, audit.Length).Select(i => (long)i), audit.Select(r => r.Sequence));
        Assert.Equal(AuditChainLinks(audit), audit.Skip(1).Select(r => r.PreviousHash));
    }

    [Fact]
    public async Task AuditVerify_FindsTheFirstRecordWhoseDetailWasEditedInTheDatabase()
    {
        await using var bed = await KmsTestBed.StartAsync();
        (await bed.RequestKeyAsync(bed.Party1)).Dispose();
        await KmsTestBed.AssertRefusedAsync("public-key-not-bound", async () =>
        {
            var nonce = await bed.NonceAsync();
            using var genuine = new Crypto.EphemeralKeyPair();
            using var swapped = new Crypto.EphemeralKeyPair();
            await KmsTestBed.SendKeyUseAsync(bed.Party1, new KeyUseRequest(bed.KeyId, nonce, bed.Attest(nonce, genuine.PublicKey), swapped.PublicKey));
        });
        var released = (await bed.Party1.Client.AuditAsync()).Single(r => r.Event == "key-released");

        using (var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = bed.DatabasePath, Pooling = false }.ToString()))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE audit SET detail = $d WHERE seq = $s";
            cmd.Parameters.AddWithValue("$d", released.Detail.Replace("party", "p4rty", StringComparison.Ordinal) + " (nothing to see here)");
            cmd.Parameters.AddWithValue("$s", released.Sequence);
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        var verification = await bed.Party1.Client.VerifyAuditAsync();

        Assert.False(verification.Valid);
        Assert.Equal(released.Sequence, verification.FirstBadSequence);
        Assert.Equal(released.Sequence - 1, verification.Records);
    }

    [Fact]
    public async Task AuditVerify_FindsADeletedRecord()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var created = (await bed.Party1.Client.AuditAsync()).Single(r => r.Event == "key-created");

        using (var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = bed.DatabasePath, Pooling = false }.ToString()))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DELETE FROM audit WHERE seq = $s";
            cmd.Parameters.AddWithValue("$s", created.Sequence);
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        var verification = await bed.Party1.Client.VerifyAuditAsync();

        Assert.Equal((false, (long?)created.Sequence), (verification.Valid, verification.FirstBadSequence));
    }

    [Fact]
    public async Task RefusedAuthorityChange_IsAudited_WithTheReason()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var keyId = await bed.CreateKeyWithAuthorityAsync(ChangeMethod.Immutable);

        await KmsTestBed.AssertProblemAsync(409, "authority-immutable",
            () => bed.Party2.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy())));

        var audit = await bed.Party1.Client.AuditAsync();
        Assert.Contains(audit, r => r is { Event: "authority-refused", Actor: "party2" } && r.KeyId == keyId && r.Detail.Contains("immutable", StringComparison.Ordinal));
        Assert.True((await bed.Party1.Client.VerifyAuditAsync()).Valid);
    }

    private static IEnumerable<string> AuditChainLinks(AuditRecord[] audit) => audit.SkipLast(1).Select(r => r.Hash);
}
