using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>S5–S9: a key's authority changes only by its change method, against the current version, and nothing changes when a change is refused.</summary>
public sealed class AuthorityTests(SharedKms kms) : IClassFixture<SharedKms>
{
    private static readonly string NewMeasurement = KmsTestBed.MeasurementOf("twinseal genuine app bundle, release 2");

    private KmsTestBed Bed => kms.Bed;

    [Fact]
    public async Task FirstAuthority_AppliesAsVersion1_OnceEveryOperatorApproved()
    {
        var key = await Bed.Party1.Client.CreateKeyAsync("first authority");

        var proposed = await Bed.Party1.Client.ProposeAsync(key.KeyId, new ChangeProposal(0, KmsTestBed.Policy()));
        Assert.Equal(("pending", "party1", "party1,party2"), (proposed.Status, Names(proposed.ApprovedBy), Names(proposed.Required)));
        await KmsTestBed.AssertProblemAsync(404, "authority-not-set", () => Bed.Party1.Client.GetAuthorityAsync(key.KeyId));

        var applied = await Bed.Party2.Client.ApproveAsync(key.KeyId, proposed.ProposalId, proposed.ProposalHash);

        Assert.Equal(("applied", 1), (applied.Status, applied.AppliedVersion));
        var authority = await Bed.Party1.Client.GetAuthorityAsync(key.KeyId);
        Assert.Equal(1, authority.Version);
        Assert.Equal(PolicyDocument.Hash(KmsTestBed.Policy()), authority.PolicyHash);
    }

    [Fact]
    public async Task FirstAuthority_IsRefused_WhenProposedByAPartyOtherThanTheKeysCreator()
    {
        var key = await Bed.Party1.Client.CreateKeyAsync("created by party1");

        await KmsTestBed.AssertProblemAsync(403, "not-key-creator",
            () => Bed.Party2.Client.ProposeAsync(key.KeyId, new ChangeProposal(0, KmsTestBed.Policy())));

        Assert.Equal(0, (await Bed.Party1.Client.GetKeyAsync(key.KeyId)).AuthorityVersion);
    }

    [Fact]
    public async Task ChangeOfAnImmutableAuthority_IsRefused_AndNothingChanges()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync(ChangeMethod.Immutable);
        var before = await Bed.Party1.Client.GetAuthorityAsync(keyId);

        await KmsTestBed.AssertProblemAsync(409, "authority-immutable",
            () => Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(before.Version, KmsTestBed.Policy(ChangeMethod.AllParties, NewMeasurement))));

        var after = await Bed.Party1.Client.GetAuthorityAsync(keyId);
        Assert.Equal((before.Version, before.PolicyHash), (after.Version, after.PolicyHash));
        (await Bed.RequestKeyAsync(Bed.Party1, keyId)).Dispose();
        await KmsTestBed.AssertRefusedAsync("measurement-mismatch", () => Bed.RequestKeyAsync(Bed.Party1, keyId, NewMeasurement));
    }

    [Fact]
    public async Task AllPartiesChange_WithOneApproval_StaysPending_AndTheOldPolicyStillGovernsKeyUse()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();

        var proposed = await Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: NewMeasurement)));

        Assert.Equal(("pending", (int?)null), (proposed.Status, proposed.AppliedVersion));
        Assert.Equal(1, (await Bed.Party1.Client.GetAuthorityAsync(keyId)).Version);
        using var released = await Bed.RequestKeyAsync(Bed.Party2, keyId);
        Assert.Equal(1, released.Response.AuthorityVersion);
        await KmsTestBed.AssertRefusedAsync("measurement-mismatch", () => Bed.RequestKeyAsync(Bed.Party2, keyId, NewMeasurement));
    }

    [Fact]
    public async Task AllPartiesChange_WithBothApprovals_Applies_AndTheNewReferenceValuesGovernTheNextKeyUse()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();
        var newPolicy = KmsTestBed.Policy(measurement: NewMeasurement);
        var proposed = await Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(1, newPolicy));

        var applied = await Bed.Party2.Client.ApproveAsync(keyId, proposed.ProposalId, proposed.ProposalHash);

        Assert.Equal(("applied", 2), (applied.Status, applied.AppliedVersion));
        var authority = await Bed.Party1.Client.GetAuthorityAsync(keyId);
        Assert.Equal((2, PolicyDocument.Hash(newPolicy)), (authority.Version, authority.PolicyHash));
        using var released = await Bed.RequestKeyAsync(Bed.Party1, keyId, NewMeasurement);
        Assert.Equal((2, authority.PolicyHash), (released.Response.AuthorityVersion, released.Response.PolicyHash));
        await KmsTestBed.AssertRefusedAsync("measurement-mismatch", () => Bed.RequestKeyAsync(Bed.Party1, keyId));
    }

    [Fact]
    public async Task Change_IsRefused_WhenItNamesAStaleBaseVersion()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();

        await KmsTestBed.AssertProblemAsync(409, "stale-base-version",
            () => Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(0, KmsTestBed.Policy(measurement: NewMeasurement))));

        Assert.Equal(1, (await Bed.Party1.Client.GetAuthorityAsync(keyId)).Version);
    }

    [Fact]
    public async Task Change_IsRefused_WhenAnotherChangeAppliedSinceItWasProposed()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();
        var first = await Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: NewMeasurement)));
        var second = await Bed.Party2.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: KmsTestBed.TamperedMeasurement)));
        await Bed.Party2.Client.ApproveAsync(keyId, first.ProposalId, first.ProposalHash);

        await KmsTestBed.AssertProblemAsync(409, "stale-base-version",
            () => Bed.Party1.Client.ApproveAsync(keyId, second.ProposalId, second.ProposalHash));

        var authority = await Bed.Party1.Client.GetAuthorityAsync(keyId);
        Assert.Equal((2, PolicyDocument.Hash(KmsTestBed.Policy(measurement: NewMeasurement))), (authority.Version, authority.PolicyHash));
    }

    [Fact]
    public async Task Approval_IsRefused_FromAPartyOutsideTheOperationAuthority()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();
        var outsider = await Bed.AddPartyAsync("outsider-" + Guid.NewGuid().ToString("N")[..8]);
        var proposed = await Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: NewMeasurement)));

        await KmsTestBed.AssertProblemAsync(403, "not-an-operator",
            () => outsider.Client.ApproveAsync(keyId, proposed.ProposalId, proposed.ProposalHash));

        var status = await Bed.Party1.Client.ApproveAsync(keyId, proposed.ProposalId, proposed.ProposalHash);
        Assert.Equal(("pending", "party1"), (status.Status, Names(status.ApprovedBy)));
        Assert.Equal(1, (await Bed.Party1.Client.GetAuthorityAsync(keyId)).Version);
    }

    [Fact]
    public async Task Proposal_IsRefused_FromAPartyOutsideTheOperationAuthority()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();
        var outsider = await Bed.AddPartyAsync("outsider-" + Guid.NewGuid().ToString("N")[..8]);

        await KmsTestBed.AssertProblemAsync(403, "not-an-operator",
            () => outsider.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy(users: ["party1", "party2", outsider.Id]))));

        Assert.Equal(1, (await Bed.Party1.Client.GetAuthorityAsync(keyId)).Version);
    }

    [Fact]
    public async Task SameApprovalTwice_CountsOnce()
    {
        var third = await Bed.AddPartyAsync("operator3-" + Guid.NewGuid().ToString("N")[..8]);
        var operators = new[] { "party1", "party2", third.Id };
        var key = await Bed.Party1.Client.CreateKeyAsync("three operators");
        var first = await Bed.Party1.Client.ProposeAsync(key.KeyId, new ChangeProposal(0, KmsTestBed.Policy(operators: operators)));
        await Bed.Party2.Client.ApproveAsync(key.KeyId, first.ProposalId, first.ProposalHash);
        await third.Client.ApproveAsync(key.KeyId, first.ProposalId, first.ProposalHash);
        var proposed = await Bed.Party1.Client.ProposeAsync(key.KeyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: NewMeasurement, operators: operators)));

        var once = await Bed.Party2.Client.ApproveAsync(key.KeyId, proposed.ProposalId, proposed.ProposalHash);
        var twice = await Bed.Party2.Client.ApproveAsync(key.KeyId, proposed.ProposalId, proposed.ProposalHash);

        Assert.Equal(("pending", "party1,party2"), (once.Status, Names(once.ApprovedBy)));
        Assert.Equal(("pending", "party1,party2"), (twice.Status, Names(twice.ApprovedBy)));
        Assert.Equal(1, (await Bed.Party1.Client.GetAuthorityAsync(key.KeyId)).Version);
        var applied = await third.Client.ApproveAsync(key.KeyId, proposed.ProposalId, proposed.ProposalHash);
        Assert.Equal(("applied", 2), (applied.Status, applied.AppliedVersion));
    }

    [Fact]
    public async Task ProposersRepeatedApproval_CountsOnce_AndDoesNotApplyTheChange()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();
        var proposed = await Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: NewMeasurement)));

        var again = await Bed.Party1.Client.ApproveAsync(keyId, proposed.ProposalId, proposed.ProposalHash);
        var thrice = await Bed.Party1.Client.ApproveAsync(keyId, proposed.ProposalId, proposed.ProposalHash);

        Assert.Equal(("pending", "party1"), (again.Status, Names(again.ApprovedBy)));
        Assert.Equal(("pending", "party1"), (thrice.Status, Names(thrice.ApprovedBy)));
        Assert.Equal(1, (await Bed.Party1.Client.GetAuthorityAsync(keyId)).Version);
        var audit = await Bed.Party1.Client.AuditAsync();
        Assert.DoesNotContain(audit, r => r.Event == "authority-approved" && r.Detail.Contains(proposed.ProposalId, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Approval_IsRefused_WhenItNamesAnotherProposalHash()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();
        var proposed = await Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: NewMeasurement)));

        await KmsTestBed.AssertProblemAsync(409, "proposal-hash-mismatch",
            () => Bed.Party2.Client.ApproveAsync(keyId, proposed.ProposalId, new string('a', 64)));

        Assert.Equal(1, (await Bed.Party1.Client.GetAuthorityAsync(keyId)).Version);
    }

    [Fact]
    public async Task Proposal_IsRefused_WhenItNamesAnUnregisteredParty()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();

        await KmsTestBed.AssertProblemAsync(400, "invalid-policy",
            () => Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy(users: ["party1", "party2", "nobody"]))));
    }

    [Fact]
    public async Task Proposal_IsRefused_ForADeletedKey()
    {
        var keyId = await Bed.CreateKeyWithAuthorityAsync();
        await Bed.DeleteKeyAsync(keyId);

        await KmsTestBed.AssertProblemAsync(410, "key-deleted",
            () => Bed.Party1.Client.ProposeAsync(keyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: NewMeasurement))));
    }

    private static string Names(IEnumerable<string> parties) => string.Join(",", parties);
}
