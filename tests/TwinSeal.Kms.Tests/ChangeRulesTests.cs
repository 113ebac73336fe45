using Microsoft.Data.Sqlite;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>
/// The rules two distrustful parties rely on when an authority or a key's life changes: proposal expiry, app upgrades
/// with a grace period, racing approvals, deletion and retirement under the change method, and signed audit records.
/// Each test gets its own KMS, because several move the clock.
/// </summary>
public sealed class ChangeRulesTests
{
    private static readonly string OldApp = KmsTestBed.GenuineMeasurement;
    private static readonly string NewApp = KmsTestBed.MeasurementOf("twinseal app, release 2");

    private static AuthorityPolicy PolicyAccepting(params string[] measurements) => KmsTestBed.Policy() with
    {
        Usage = [.. new[] { "party1", "party2" }.Select(p => new UsageGrant(p, new ReferenceValues("sim", measurements, KmsTestBed.GenuineTests)))],
    };

    private static async Task<ProposalStatus> ChangeAsync(KmsTestBed bed, int baseVersion, AuthorityPolicy policy)
    {
        var p = await bed.Party1.Client.ProposeAsync(bed.KeyId, new ChangeProposal(baseVersion, policy));
        return await bed.Party2.Client.ApproveAsync(bed.KeyId, p.ProposalId, p.ProposalHash);
    }

    [Fact]
    public async Task Approval_IsRefused_AfterTheProposalExpired_AndThePolicyStaysAsItWas()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var p = await bed.Party1.Client.ProposeAsync(bed.KeyId, new ChangeProposal(1, PolicyAccepting(NewApp)));

        bed.Clock.Advance(bed.Options.ProposalLifetime + TimeSpan.FromSeconds(1));

        await KmsTestBed.AssertProblemAsync(409, "proposal-expired", () => bed.Party2.Client.ApproveAsync(bed.KeyId, p.ProposalId, p.ProposalHash));
        Assert.Equal("expired", (await bed.Party1.Client.GetProposalAsync(bed.KeyId, p.ProposalId)).Status);
        Assert.Equal(1, (await bed.Party1.Client.GetAuthorityAsync(bed.KeyId)).Version);
    }

    [Fact]
    public async Task AppUpgrade_AcceptsBothAppsDuringTheGracePeriod_ThenRefusesTheOldOneRightAfterRevocation()
    {
        await using var bed = await KmsTestBed.StartAsync();

        Assert.Equal("applied", (await ChangeAsync(bed, 1, PolicyAccepting(OldApp, NewApp))).Status);
        (await bed.RequestKeyAsync(bed.Party1, measurement: OldApp)).Dispose();
        (await bed.RequestKeyAsync(bed.Party2, measurement: NewApp)).Dispose();

        Assert.Equal("applied", (await ChangeAsync(bed, 2, PolicyAccepting(NewApp))).Status);
        await KmsTestBed.AssertRefusedAsync("measurement-mismatch", () => bed.RequestKeyAsync(bed.Party1, measurement: OldApp));
        (await bed.RequestKeyAsync(bed.Party1, measurement: NewApp)).Dispose();
    }

    [Fact]
    public async Task RevokedApp_ComesBack_OnlyThroughANewApprovalRound()
    {
        await using var bed = await KmsTestBed.StartAsync();
        await ChangeAsync(bed, 1, PolicyAccepting(OldApp, NewApp));
        await ChangeAsync(bed, 2, PolicyAccepting(NewApp));

        // Party 1 alone tries to bring the old app back: the proposal stays pending and the old app stays refused.
        var back = await bed.Party1.Client.ProposeAsync(bed.KeyId, new ChangeProposal(3, PolicyAccepting(OldApp, NewApp)));

        Assert.Equal("pending", back.Status);
        await KmsTestBed.AssertRefusedAsync("measurement-mismatch", () => bed.RequestKeyAsync(bed.Party1, measurement: OldApp));
        Assert.Equal(3, (await bed.Party1.Client.GetAuthorityAsync(bed.KeyId)).Version);
    }

    [Fact]
    public async Task TwoApprovalsRacing_LeaveExactlyOneVersionBump()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var third = await bed.AddPartyAsync("party3");
        var key = await bed.Party1.Client.CreateKeyAsync("race");
        var operators = new[] { "party1", "party2", "party3" };
        var quorum = KmsTestBed.Policy(ChangeMethod.Quorum, operators: operators) with { Quorum = 2 };
        var first = await bed.Party1.Client.ProposeAsync(key.KeyId, new ChangeProposal(0, quorum));
        await bed.Party2.Client.ApproveAsync(key.KeyId, first.ProposalId, first.ProposalHash);
        await third.Client.ApproveAsync(key.KeyId, first.ProposalId, first.ProposalHash);

        for (var round = 0; round < 10; round++)
        {
            var version = (await bed.Party1.Client.GetAuthorityAsync(key.KeyId)).Version;
            var p = await bed.Party1.Client.ProposeAsync(key.KeyId, new ChangeProposal(version, quorum with { Output = quorum.Output with { KeyColumn = $"col{round}" } }));
            var results = await Task.WhenAll(
                bed.Party2.Client.ApproveAsync(key.KeyId, p.ProposalId, p.ProposalHash),
                third.Client.ApproveAsync(key.KeyId, p.ProposalId, p.ProposalHash));

            Assert.All(results, r => Assert.Equal("applied", r.Status));
            Assert.Equal(version + 1, (await bed.Party1.Client.GetAuthorityAsync(key.KeyId)).Version);
        }
    }

    [Fact]
    public async Task TwoCompetingProposalsOnOneVersion_OnlyOneApplies_TheOtherIsStale()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var a = await bed.Party1.Client.ProposeAsync(bed.KeyId, new ChangeProposal(1, PolicyAccepting(NewApp)));
        var b = await bed.Party2.Client.ProposeAsync(bed.KeyId, new ChangeProposal(1, PolicyAccepting(OldApp, NewApp)));

        var outcomes = await Task.WhenAll(
            Try(() => bed.Party2.Client.ApproveAsync(bed.KeyId, a.ProposalId, a.ProposalHash)),
            Try(() => bed.Party1.Client.ApproveAsync(bed.KeyId, b.ProposalId, b.ProposalHash)));

        Assert.Single(outcomes, o => o == "applied");
        Assert.Single(outcomes, o => o == "stale-base-version");
        Assert.Equal(2, (await bed.Party1.Client.GetAuthorityAsync(bed.KeyId)).Version);

        static async Task<string> Try(Func<Task<ProposalStatus>> approve)
        {
            try
            {
                return (await approve()).Status;
            }
            catch (Party.RemoteProblemException e)
            {
                return e.Code;
            }
        }
    }

    [Fact]
    public async Task Deletion_OfAnAllPartiesKey_WithOneApproval_IsNotScheduled()
    {
        await using var bed = await KmsTestBed.StartAsync();

        var proposal = await bed.Party1.Client.DeleteKeyAsync(bed.KeyId);

        Assert.Equal(("pending", 2), (proposal.Status, proposal.Threshold));
        Assert.Equal("active", (await bed.Party1.Client.GetKeyAsync(bed.KeyId)).State);
        (await bed.RequestKeyAsync(bed.Party1)).Dispose();
    }

    [Fact]
    public async Task Deletion_OfAnImmutableKey_NeedsEveryParty()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var keyId = await bed.CreateKeyWithAuthorityAsync(ChangeMethod.Immutable);

        var proposal = await bed.Party2.Client.DeleteKeyAsync(keyId);
        Assert.Equal("pending", proposal.Status);
        var applied = await bed.Party1.Client.ApproveAsync(keyId, proposal.ProposalId, proposal.ProposalHash);

        Assert.Equal("applied", applied.Status);
        Assert.Equal("pending-deletion", (await bed.Party1.Client.GetKeyAsync(keyId)).State);
    }

    [Fact]
    public async Task ScheduledDeletion_RefusesKeyUse_AndCanBeCancelledByEitherParty_ThenTheKeyWorksAgain()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var p = await bed.Party1.Client.DeleteKeyAsync(bed.KeyId);
        await bed.Party2.Client.ApproveAsync(bed.KeyId, p.ProposalId, p.ProposalHash);
        var scheduled = await bed.Party1.Client.GetKeyAsync(bed.KeyId);
        Assert.Equal("pending-deletion", scheduled.State);
        Assert.Equal(bed.Clock.GetUtcNow() + bed.Options.DeletionWaitingPeriod, scheduled.DeletionDueAt!.Value, TimeSpan.FromSeconds(1));
        await KmsTestBed.AssertRefusedAsync("key-pending-deletion", () => bed.RequestKeyAsync(bed.Party1));

        var cancelled = await bed.Party2.Client.CancelDeletionAsync(bed.KeyId);

        Assert.Equal("active", cancelled.State);
        bed.Clock.Advance(bed.Options.DeletionWaitingPeriod + TimeSpan.FromMinutes(1));
        await bed.Server.Service.Deletion.CompleteDueAsync();
        (await bed.RequestKeyAsync(bed.Party1)).Dispose();
    }

    [Fact]
    public async Task CompletedDeletion_RefusesForEver_AndTheKeyBytesAreGoneFromTheStoreFile()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var p = await bed.Party1.Client.DeleteKeyAsync(bed.KeyId);
        await bed.Party2.Client.ApproveAsync(bed.KeyId, p.ProposalId, p.ProposalHash);
        var sealedKek = ReadBlob(bed, "SELECT sealed_kek FROM keys WHERE key_id = $k", bed.KeyId)!;
        var wrapped = ReadBlob(bed, "SELECT wrapped FROM data_keys WHERE key_id = $k", bed.KeyId)!;

        bed.Clock.Advance(bed.Options.DeletionWaitingPeriod + TimeSpan.FromSeconds(1));

        // The next request completes the due deletion before it is judged.
        await KmsTestBed.AssertRefusedAsync("key-deleted", () => bed.RequestKeyAsync(bed.Party1));
        await KmsTestBed.AssertProblemAsync(410, "key-deleted", () => bed.Party1.Client.CancelDeletionAsync(bed.KeyId));
        await bed.StopAsync();
        SqliteConnection.ClearAllPools();
        var file = await File.ReadAllBytesAsync(bed.DatabasePath, TestContext.Current.CancellationToken);
        var wal = bed.DatabasePath + "-wal";
        var walBytes = File.Exists(wal) ? await File.ReadAllBytesAsync(wal, TestContext.Current.CancellationToken) : [];
        Assert.Equal(-1, file.AsSpan().IndexOf(sealedKek));
        Assert.Equal(-1, file.AsSpan().IndexOf(wrapped));
        Assert.Equal(-1, walBytes.AsSpan().IndexOf(wrapped));
    }

    [Fact]
    public async Task RetiredVersion_IsNeverReleasedAgain_WhileTheCurrentOneStillIs()
    {
        await using var bed = await KmsTestBed.StartAsync();
        await bed.Party1.Client.RotateKeyAsync(bed.KeyId);
        var p = await bed.Party1.Client.ProposeLifecycleAsync(bed.KeyId, new LifecycleProposal(1, LifecycleAction.RetireVersion, 1));
        var applied = await bed.Party2.Client.ApproveAsync(bed.KeyId, p.ProposalId, p.ProposalHash);

        Assert.Equal("applied", applied.Status);
        Assert.Equal([1], (await bed.Party1.Client.GetKeyAsync(bed.KeyId)).RetiredVersions!);
        (await bed.RequestKeyAsync(bed.Party1)).Dispose();
        var nonce = await bed.NonceAsync();
        using var enclave = new Crypto.EphemeralKeyPair();
        await KmsTestBed.AssertRefusedAsync("key-version-unavailable",
            () => KmsTestBed.SendKeyUseAsync(bed.Party1, new KeyUseRequest(bed.KeyId, nonce, bed.Attest(nonce, enclave.PublicKey), enclave.PublicKey, 1)));
    }

    [Fact]
    public async Task CurrentVersion_CannotBeRetired()
    {
        await using var bed = await KmsTestBed.StartAsync();

        await KmsTestBed.AssertProblemAsync(400, "invalid-proposal",
            () => bed.Party1.Client.ProposeLifecycleAsync(bed.KeyId, new LifecycleProposal(1, LifecycleAction.RetireVersion, 1)));
    }

    [Fact]
    public async Task FirstAuthority_NeedsTheApprovalOfEveryPartyItNames_NotOnlyItsOperators()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var key = await bed.Party1.Client.CreateKeyAsync("party1 names itself sole operator");
        var selfServing = KmsTestBed.Policy(operators: ["party1"]);

        var p = await bed.Party1.Client.ProposeAsync(key.KeyId, new ChangeProposal(0, selfServing));

        Assert.Equal("pending", p.Status);
        Assert.Contains("party2", p.Required);
        Assert.Equal("applied", (await bed.Party2.Client.ApproveAsync(key.KeyId, p.ProposalId, p.ProposalHash)).Status);
    }

    [Fact]
    public async Task AuditLog_KeepsEachSignedDecisionWithItsSignature_AndVerifyChecksThem()
    {
        await using var bed = await KmsTestBed.StartAsync();
        var p = await bed.Party1.Client.DeleteKeyAsync(bed.KeyId);
        await bed.Party2.Client.ApproveAsync(bed.KeyId, p.ProposalId, p.ProposalHash);
        await bed.Party1.Client.CancelDeletionAsync(bed.KeyId);

        var records = await bed.Party1.Client.AuditAsync();
        foreach (var evt in new[] { "key-created", "authority-proposed", "authority-approved", "lifecycle-proposed", "authority-approved", "deletion-cancelled" })
            Assert.Contains(records, r => r.Event == evt && r.SignedRequest is not null && r.Signature is not null);
        var signed = records.First(r => r.Event == "deletion-cancelled");
        Assert.True(Crypto.PartyPublicKey.FromSubjectPublicKeyInfo(bed.Party1.Key.PublicKey.SubjectPublicKeyInfo).Verify(signed.SignedRequest!, signed.Signature!));
        Assert.True((await bed.Party1.Client.VerifyAuditAsync()).Valid);

        // Someone with write access to the store file replaces the signature and recomputes the whole hash chain from
        // there: the chain checks again, but the signature does not, and verify names that record.
        ForgeSignatureAndRehash(bed, signed.Sequence);
        var verdict = await bed.Party1.Client.VerifyAuditAsync();
        Assert.False(verdict.Valid);
        Assert.Equal(signed.Sequence, verdict.FirstBadSequence);
        Assert.Contains("signature", verdict.Problem);
    }

    /// <summary>Replaces the signature of record <paramref name="fromSequence"/> and recomputes the hash chain from there, as someone who can write the store file could.</summary>
    internal static void ForgeSignatureAndRehash(KmsTestBed bed, long fromSequence)
    {
        using var c = new SqliteConnection($"Data Source={bed.DatabasePath};Pooling=False");
        c.Open();
        var rows = new List<(long Seq, long At, string Evt, string? Key, string? Actor, string Detail, string Prev, byte[]? Req, byte[]? Sig)>();
        using (var read = c.CreateCommand())
        {
            read.CommandText = "SELECT seq, at, event, key_id, actor, detail, prev_hash, signed_request, signature FROM audit WHERE seq >= $q ORDER BY seq";
            read.Parameters.AddWithValue("$q", fromSequence);
            using var r = read.ExecuteReader();
            while (r.Read())
                rows.Add((r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4), r.GetString(5), r.GetString(6),
                    r.IsDBNull(7) ? null : (byte[])r[7], r.IsDBNull(8) ? null : (byte[])r[8]));
        }
        var prev = rows[0].Prev;
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            var sig = i == 0 ? System.Security.Cryptography.RandomNumberGenerator.GetBytes(64) : row.Sig;
            var hash = Audit.AuditLog.Hash(row.Seq, row.At, row.Evt, row.Key, row.Actor, row.Detail, prev, row.Req, sig);
            using var write = c.CreateCommand();
            write.CommandText = "UPDATE audit SET signature = $s, prev_hash = $p, hash = $h WHERE seq = $q";
            write.Parameters.AddWithValue("$s", (object?)sig ?? DBNull.Value);
            write.Parameters.AddWithValue("$p", prev);
            write.Parameters.AddWithValue("$h", hash);
            write.Parameters.AddWithValue("$q", row.Seq);
            write.ExecuteNonQuery();
            prev = hash;
        }
    }

    private static byte[]? ReadBlob(KmsTestBed bed, string sql, string keyId)
    {
        using var c = new SqliteConnection($"Data Source={bed.DatabasePath};Mode=ReadOnly;Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("$k", keyId);
        return cmd.ExecuteScalar() as byte[];
    }
}
