using System.Security.Cryptography;
using TwinSeal.Kms.Http;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>The shared bed with an auditor, a registered party that no policy names, and a pending change of the bed's key.</summary>
public sealed class ReadScopeKms : IAsyncLifetime
{
    public KmsTestBed Bed { get; private set; } = null!;
    public TestParty Outsider { get; private set; } = null!;
    public TestParty Auditor { get; private set; } = null!;
    public ProposalStatus Pending { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Bed = await KmsTestBed.StartAsync(auditors: ["auditor"]);
        Outsider = await Bed.AddPartyAsync("outsider");
        Auditor = await Bed.AddPartyAsync("auditor");
        Pending = await Bed.Party1.Client.ProposeAsync(Bed.KeyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: KmsTestBed.TamperedMeasurement)));
    }

    public async ValueTask DisposeAsync()
    {
        if (Bed is not null) await Bed.DisposeAsync();
    }
}

/// <summary>
/// Nobody outside a policy learns anything from a read: every read is signed by a registered party, a party reads only
/// the keys, proposals and audit records its policies name it in, and whatever it may not read answers exactly like
/// something that does not exist. An auditor reads everything.
/// </summary>
public sealed class ReadAccessTests(ReadScopeKms kms) : IClassFixture<ReadScopeKms>
{
    private const string P = KmsEndpoints.Prefix;
    private KmsTestBed Bed => kms.Bed;
    private TestParty Outsider => kms.Outsider;
    private TestParty Auditor => kms.Auditor;
    private string KeyId => Bed.KeyId;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A key id of the same shape as a real one that was never created.</summary>
    private static readonly string AbsentKey = "key-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    public static TheoryData<string> Reads => new()
    {
        "/parties/party1", "/keys/{key}", "/keys/{key}/authority", "/keys/{key}/proposals/{pid}", "/audit", "/audit/verify",
    };

    [Theory]
    [MemberData(nameof(Reads))]
    public async Task Read_WithoutASignature_IsRefusedAsUnsigned(string route)
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);

        await KmsTestBed.AssertProblemAsync(401, "unsigned-request", () => remote.SendAsync(HttpMethod.Get, P + Fill(route), null, ct: Ct));
    }

    [Theory]
    [MemberData(nameof(Reads))]
    public async Task Read_SignedByAnotherKeyThanTheParty_IsRefusedAsBadSignature(string route)
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        using var impostor = Crypto.PartySigningKey.Generate();

        await KmsTestBed.AssertProblemAsync(401, "bad-signature", () => remote.SendAsync(HttpMethod.Get, P + Fill(route), null, ("party1", impostor), ct: Ct));
    }

    [Fact]
    public async Task SignedRead_ReplayedAsCaptured_IsRefusedAsReplayed()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        var captured = CaptureRead(P + $"/keys/{KeyId}", Bed.Party2);
        Assert.Equal(KeyId, ProtocolJson.Parse<KeyInfo>(await remote.SendCapturedAsync(captured, Ct), "key").KeyId);

        await KmsTestBed.AssertProblemAsync(401, "replayed-request", () => remote.SendCapturedAsync(captured, Ct));
    }

    [Fact]
    public async Task SignedRead_WithABody_IsRefusedAsMalformed()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);

        await KmsTestBed.AssertProblemAsync(400, "malformed-request",
            () => remote.SendAsync(HttpMethod.Get, P + $"/keys/{KeyId}", "{}"u8.ToArray(), (Bed.Party1.Id, Bed.Party1.Key), ct: Ct));
    }

    [Fact]
    public async Task KeyReads_ByAPartyOutsideThePolicy_AnswerExactlyLikeAKeyThatDoesNotExist()
    {
        var pid = kms.Pending.ProposalId;

        await AssertLikeAbsentAsync(k => Outsider.Client.GetKeyAsync(k));
        await AssertLikeAbsentAsync(k => Outsider.Client.GetAuthorityAsync(k));
        await AssertLikeAbsentAsync(k => Outsider.Client.GetProposalAsync(k, pid));
        // The same reads by a party the policy names succeed, so the 404s above are the scope, not a broken route.
        Assert.Equal(KeyId, (await Bed.Party2.Client.GetKeyAsync(KeyId)).KeyId);
    }

    [Fact]
    public async Task AuditRead_ByAPartyOutsideThePolicy_HoldsNoneOfTheKeysRecords_ButThoseOfItsOwnActions()
    {
        // The outsider tries to approve a change of the key: refused, and that refusal is recorded with it as the actor.
        await KmsTestBed.AssertProblemAsync(403, "not-an-operator", () => Outsider.Client.ApproveAsync(KeyId, kms.Pending.ProposalId, kms.Pending.ProposalHash));

        var seen = await Outsider.Client.AuditAsync();
        var named = await Bed.Party2.Client.AuditAsync();

        Assert.Contains(named, r => r.KeyId == KeyId && r.Event == "key-created");
        Assert.NotEmpty(seen);
        Assert.All(seen, r => Assert.Equal("outsider", r.Actor));
        Assert.Contains(seen, r => r.Event == "party-registered");
        Assert.Contains(seen, r => r.KeyId == KeyId && r.Event == "authority-refused");
        Assert.DoesNotContain(named, r => r.Event == "party-registered" && r.Actor == "outsider");
    }

    [Fact]
    public async Task Reads_ByAPartyThePolicyNames_ShowTheKeyItsAuthorityProposalsAndAuditRecords()
    {
        var key = await Bed.Party2.Client.GetKeyAsync(KeyId);
        var authority = await Bed.Party2.Client.GetAuthorityAsync(KeyId);
        var proposal = await Bed.Party2.Client.GetProposalAsync(KeyId, kms.Pending.ProposalId);
        var records = await Bed.Party2.Client.AuditAsync();

        Assert.Equal(("party1", 1), (key.CreatedBy, authority.Version));
        Assert.Equal(kms.Pending.ProposalHash, proposal.ProposalHash);
        foreach (var evt in new[] { "key-created", "authority-proposed", "authority-approved", "authority-set" })
            Assert.Contains(records, r => r.KeyId == KeyId && r.Event == evt);
        // Party 1's own registration is about party 1, not about a key party 2 shares: party 2 does not see it.
        Assert.DoesNotContain(records, r => r.Event == "party-registered" && r.Actor == "party1");
        await KmsTestBed.AssertProblemAsync(404, "proposal-not-found", () => Bed.Party2.Client.GetProposalAsync(KeyId, "prop-0000000000000000"));
    }

    [Fact]
    public async Task Auditor_ReadsEveryKey_AndTheWholeAuditLog()
    {
        var all = await Auditor.Client.AuditAsync();
        var verdict = await Auditor.Client.VerifyAuditAsync();
        var party1 = await Bed.Party1.Client.AuditAsync();

        Assert.Equal(KeyId, (await Auditor.Client.GetKeyAsync(KeyId)).KeyId);
        Assert.Equal(1, (await Auditor.Client.GetAuthorityAsync(KeyId)).Version);
        Assert.Equal(kms.Pending.ProposalHash, (await Auditor.Client.GetProposalAsync(KeyId, kms.Pending.ProposalId)).ProposalHash);
        Assert.Equal("party1", (await Auditor.Client.GetPartyAsync("party1")).PartyId);
        Assert.Equal(Enumerable.Range(1, all.Length).Select(i => (long)i), all.Select(r => r.Sequence));
        Assert.True(verdict.Valid);
        Assert.Equal(verdict.Records, all.Length);
        Assert.Contains(all, r => r.Event == "party-registered" && r.Actor == "outsider");
        Assert.True(party1.Length < all.Length, $"party1 saw {party1.Length} of {all.Length} records");
    }

    [Fact]
    public async Task KeyWithoutAPolicy_IsReadByItsCreatorAndAuditorsOnly()
    {
        var fresh = (await Bed.Party1.Client.CreateKeyAsync("no policy yet")).KeyId;

        Assert.Equal(fresh, (await Bed.Party1.Client.GetKeyAsync(fresh)).KeyId);
        Assert.Equal(fresh, (await Auditor.Client.GetKeyAsync(fresh)).KeyId);
        await KmsTestBed.AssertProblemAsync(404, "authority-not-set", () => Bed.Party1.Client.GetAuthorityAsync(fresh));
        // Not "authority-not-set": that would tell party 2 that the key exists.
        await KmsTestBed.AssertProblemAsync(404, "key-not-found", () => Bed.Party2.Client.GetAuthorityAsync(fresh));
        await KmsTestBed.AssertProblemAsync(404, "key-not-found", () => Bed.Party2.Client.GetKeyAsync(fresh));
        Assert.DoesNotContain(await Bed.Party2.Client.AuditAsync(), r => r.KeyId == fresh);
    }

    [Fact]
    public async Task FirstPolicyProposal_IsReadByThePartiesItAsksToApprove_BeforeTheyMayReadTheKey()
    {
        var fresh = (await Bed.Party1.Client.CreateKeyAsync("first policy under review")).KeyId;
        var proposed = await Bed.Party1.Client.ProposeAsync(fresh, new ChangeProposal(0, KmsTestBed.Policy()));

        var reviewed = await Bed.Party2.Client.GetProposalAsync(fresh, proposed.ProposalId);
        await KmsTestBed.AssertProblemAsync(404, "key-not-found", () => Bed.Party2.Client.GetKeyAsync(fresh));
        await KmsTestBed.AssertProblemAsync(404, "key-not-found", () => Outsider.Client.GetProposalAsync(fresh, proposed.ProposalId));
        var applied = await Bed.Party2.Client.ApproveAsync(fresh, reviewed.ProposalId, reviewed.ProposalHash);

        Assert.Equal(PolicyDocument.Hash(PolicyDocument.Canonicalise(KmsTestBed.Policy())), PolicyDocument.Hash(reviewed.Policy!));
        Assert.Equal("applied", applied.Status);
        Assert.Equal(fresh, (await Bed.Party2.Client.GetKeyAsync(fresh)).KeyId);
    }

    [Fact]
    public async Task PartyRead_OfAPartyItSharesNoKeyWith_AnswersExactlyLikeAnUnknownParty()
    {
        var hidden = await KmsTestBed.AssertProblemAsync(404, "party-not-found", () => Outsider.Client.GetPartyAsync("party1"));
        var unknown = await KmsTestBed.AssertProblemAsync(404, "party-not-found", () => Outsider.Client.GetPartyAsync("nobody"));

        Assert.Equal(unknown.Message, hidden.Message.Replace("party1", "nobody", StringComparison.Ordinal));
        Assert.Equal(Bed.Party1.Key.PublicKey.Fingerprint, (await Bed.Party2.Client.GetPartyAsync("party1")).Fingerprint);
        Assert.Equal(Outsider.Key.PublicKey.Fingerprint, (await Outsider.Client.GetPartyAsync("outsider")).Fingerprint);
    }

    private async Task AssertLikeAbsentAsync<T>(Func<string, Task<T>> read)
    {
        var hidden = await KmsTestBed.AssertProblemAsync(404, "key-not-found", () => read(KeyId));
        var absent = await KmsTestBed.AssertProblemAsync(404, "key-not-found", () => read(AbsentKey));
        Assert.Equal(absent.Message, hidden.Message.Replace(KeyId, AbsentKey, StringComparison.Ordinal));
    }

    private string Fill(string route) => route.Replace("{key}", KeyId, StringComparison.Ordinal).Replace("{pid}", kms.Pending.ProposalId, StringComparison.Ordinal);

    private static CapturedRequest CaptureRead(string path, TestParty party)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, "https://unused" + path);
        RemoteClient.Sign(req, path, [], party.Id, party.Key);
        return new CapturedRequest("GET", path, req.Headers.ToDictionary(h => h.Key, h => h.Value.Single()), []);
    }
}

/// <summary>Audit verification for a party that may not read every record: the verdict is global, the details are not.</summary>
public sealed class AuditVerifyScopeTests
{
    [Fact]
    public async Task AuditVerify_ForAPartyOutsideTheKey_NamesTheFirstBadRecord_ButNotWhatItSays()
    {
        await using var bed = await KmsTestBed.StartAsync(auditors: ["auditor"]);
        var outsider = await bed.AddPartyAsync("outsider");
        var auditor = await bed.AddPartyAsync("auditor");
        var approval = (await bed.Party1.Client.AuditAsync()).First(r => r.KeyId == bed.KeyId && r.Event == "authority-approved");
        Assert.Equal("party2", approval.Actor);

        ChangeRulesTests.ForgeSignatureAndRehash(bed, approval.Sequence);
        var byOutsider = await outsider.Client.VerifyAuditAsync();
        var byParty1 = await bed.Party1.Client.VerifyAuditAsync();
        var byAuditor = await auditor.Client.VerifyAuditAsync();

        foreach (var v in new[] { byOutsider, byParty1, byAuditor })
            Assert.Equal((false, (long?)approval.Sequence, approval.Sequence - 1), (v.Valid, v.FirstBadSequence, v.Records));
        Assert.DoesNotContain("party2", byOutsider.Problem);
        Assert.Contains("not one you may read", byOutsider.Problem);
        Assert.Contains("'party2'", byParty1.Problem);
        Assert.Contains("'party2'", byAuditor.Problem);
    }
}
