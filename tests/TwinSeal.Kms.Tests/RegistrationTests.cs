using Microsoft.Data.Sqlite;
using TwinSeal.Kms.Http;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>
/// Registration is closed: a party is admitted by a single-use, expiring invitation for its id, issued with the KMS's
/// admin token, or by the admin token itself; self-registration only where the KMS allows it.
/// </summary>
public sealed class RegistrationTests(SharedKms kms) : IClassFixture<SharedKms>
{
    private KmsTestBed Bed => kms.Bed;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Registration_WithoutAnInvitation_IsRefused_BecauseSelfRegistrationIsOffByDefault()
    {
        using var stranger = Bed.NewParty("stranger");

        await KmsTestBed.AssertProblemAsync(403, "invitation-required", () => stranger.Client.RegisterAsync());

        Assert.False(Bed.Options.AllowSelfRegistration);
        Assert.Null(Bed.Server.Service.Parties.Find("stranger"));
    }

    [Fact]
    public async Task Registration_ForATakenIdWithoutAnInvitation_IsRefusedWithoutTellingTheIdIsTaken()
    {
        using var squatter = Bed.NewParty("party1");

        // Not "party-exists": that would let anyone holding a key probe which party ids a KMS serves.
        await KmsTestBed.AssertProblemAsync(403, "invitation-required", () => squatter.Client.RegisterAsync());
    }

    [Fact]
    public async Task Registration_WithAnInvitationForAnotherPartyId_IsRefused_AndTheInvitationStaysUsableByItsParty()
    {
        using var admin = Bed.Admin();
        var forAlice = await admin.InviteAsync("alice");
        using var mallory = Bed.NewParty("mallory");
        using var alice = Bed.NewParty("alice");

        await KmsTestBed.AssertProblemAsync(403, "invitation-wrong-party", () => mallory.Client.RegisterAsync(forAlice.Token));
        var registered = await alice.Client.RegisterAsync(forAlice.Token);

        Assert.Null(Bed.Server.Service.Parties.Find("mallory"));
        Assert.Equal(alice.Key.PublicKey.Fingerprint, registered.Fingerprint);
    }

    [Fact]
    public async Task Registration_WithAnInvitationUsedBefore_IsRefused_AndTheIdKeepsTheFirstKey()
    {
        using var admin = Bed.Admin();
        var invitation = await admin.InviteAsync("bob");
        using var bob = Bed.NewParty("bob");
        using var thief = Bed.NewParty("bob");
        await bob.Client.RegisterAsync(invitation.Token);

        await KmsTestBed.AssertProblemAsync(403, "invitation-used", () => thief.Client.RegisterAsync(invitation.Token));

        Assert.Equal(bob.Key.PublicKey.Fingerprint, Bed.Server.Service.Parties.Find("bob")!.Fingerprint);
        // Registering the same key again changes nothing and needs no admission.
        Assert.Equal(bob.Key.PublicKey.Fingerprint, (await bob.Client.RegisterAsync()).Fingerprint);
    }

    [Fact]
    public async Task Registration_RacingTwoKeysWithOneInvitation_AdmitsExactlyOne()
    {
        using var admin = Bed.Admin();
        var invitation = await admin.InviteAsync("carol");
        var racers = Enumerable.Range(0, 6).Select(_ => Bed.NewParty("carol")).ToList();
        try
        {
            var outcomes = await Task.WhenAll(racers.Select(async r =>
            {
                try
                {
                    return (await r.Client.RegisterAsync(invitation.Token)).Fingerprint;
                }
                catch (RemoteProblemException e)
                {
                    return e.Code;
                }
            }));

            var winner = Assert.Single(outcomes, o => o.Length == 64);
            Assert.All(outcomes.Where(o => o != winner), o => Assert.Equal("invitation-used", o));
            Assert.Equal(winner, Bed.Server.Service.Parties.Find("carol")!.Fingerprint);
        }
        finally
        {
            foreach (var r in racers) r.Dispose();
        }
    }

    [Fact]
    public async Task Registration_WithAnExpiredInvitation_IsRefused()
    {
        using var admin = Bed.Admin();
        var invitation = await admin.InviteAsync("dave", validHours: 1);
        using var dave = Bed.NewParty("dave");

        Bed.Clock.Advance(TimeSpan.FromHours(1));
        await KmsTestBed.AssertProblemAsync(403, "invitation-expired", () => dave.Client.RegisterAsync(invitation.Token));

        Assert.Null(Bed.Server.Service.Parties.Find("dave"));
    }

    [Fact]
    public async Task Registration_WithAnInvitationThisKmsNeverIssued_IsRefused()
    {
        using var erin = Bed.NewParty("erin");

        await KmsTestBed.AssertProblemAsync(403, "invitation-invalid", () => erin.Client.RegisterAsync("tsinv_" + new string('A', 43)));
    }

    [Fact]
    public async Task Registration_WithTheAdminToken_Works_AndTheAuditSaysSo()
    {
        using var operatorParty = Bed.NewParty("operator");

        var registered = await operatorParty.Client.RegisterAsync(adminToken: Bed.AdminToken);

        Assert.Equal(operatorParty.Key.PublicKey.Fingerprint, registered.Fingerprint);
        var record = Assert.Single(await operatorParty.Client.AuditAsync(), r => r.Event == "party-registered");
        Assert.EndsWith("admitted by the admin token", record.Detail);
    }

    [Fact]
    public async Task Registration_WithAWrongAdminToken_IsRefused()
    {
        using var frank = Bed.NewParty("frank");

        await KmsTestBed.AssertProblemAsync(401, "bad-admin-token", () => frank.Client.RegisterAsync(adminToken: Bed.AdminToken[..^1] + (Bed.AdminToken[^1] == '0' ? '1' : '0')));

        Assert.Null(Bed.Server.Service.Parties.Find("frank"));
    }

    [Fact]
    public async Task InvitationRequest_WithoutTheAdminToken_IsRefused_EvenSignedByARegisteredParty()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        using var wrong = new KmsAdminClient(Bed.Server.Endpoint, "not-the-admin-token-but-long-enough-to-look-like-one");
        var path = KmsEndpoints.Prefix + "/invitations";

        await KmsTestBed.AssertProblemAsync(401, "admin-token-required", () => remote.SendAsync(HttpMethod.Post, path, new InvitationRequest("grace"), ct: Ct));
        await KmsTestBed.AssertProblemAsync(401, "admin-token-required",
            () => remote.SendAsync(HttpMethod.Post, path, new InvitationRequest("grace"), (Bed.Party1.Id, Bed.Party1.Key), ct: Ct));
        await KmsTestBed.AssertProblemAsync(401, "bad-admin-token", () => wrong.InviteAsync("grace"));
    }

    [Fact]
    public async Task Invitation_ForARegisteredParty_OrOutOfRange_IsNotIssued()
    {
        using var admin = Bed.Admin();

        await KmsTestBed.AssertProblemAsync(409, "party-exists", () => admin.InviteAsync("party1"));
        await KmsTestBed.AssertProblemAsync(400, "invalid-invitation-request", () => admin.InviteAsync("heidi", validHours: 721));
        await KmsTestBed.AssertProblemAsync(400, "invalid-party-id", () => admin.InviteAsync("no spaces"));
    }

    [Fact]
    public async Task Invitation_IsKeptOnlyAsItsHash_InTheStoreAndTheAuditLog()
    {
        using var admin = Bed.Admin();
        var invitation = await admin.InviteAsync("ivan");

        using var c = new SqliteConnection($"Data Source={Bed.DatabasePath};Mode=ReadOnly;Pooling=False");
        await c.OpenAsync(Ct);
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT token_hash FROM invitations WHERE party_id = 'ivan' UNION ALL SELECT detail FROM audit WHERE event = 'invitation-issued'";
        var stored = new List<string>();
        using (var r = await cmd.ExecuteReaderAsync(Ct))
            while (await r.ReadAsync(Ct)) stored.Add(r.GetString(0));

        Assert.Contains(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(invitation.Token))), stored);
        var secret = invitation.Token[Store.Invitations.TokenPrefix.Length..];
        Assert.All(stored, s => Assert.DoesNotContain(secret, s, StringComparison.Ordinal));
    }
}

/// <summary>A KMS started with self-registration allowed, as the option promises.</summary>
public sealed class SelfRegistrationTests
{
    [Fact]
    public async Task SelfRegistration_IsAccepted_WhenTheKmsAllowsIt_AndAudited()
    {
        await using var bed = await KmsTestBed.StartAsync(allowSelfRegistration: true);
        using var judy = bed.NewParty("judy");

        var registered = await judy.Client.RegisterAsync();

        Assert.Equal(judy.Key.PublicKey.Fingerprint, registered.Fingerprint);
        Assert.EndsWith("admitted by self-registration", Assert.Single(await judy.Client.AuditAsync(), r => r.Event == "party-registered").Detail);
    }
}

/// <summary>The admin token admits registrations and mints invitations, so it is kept like the master key.</summary>
public sealed class AdminTokenFileTests
{
    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task AdminTokenFile_IsMadeAtFirstStart_ReadableAndWritableByItsOwnerOnly()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix file modes only.");
        await using var bed = await KmsTestBed.StartAsync();

        var path = Path.Combine(bed.DataDirectory, Store.AdminTokenFile.FileName);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(64, bed.AdminToken.Length);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Kms_RefusesToStart_WhenOthersCanReadTheAdminTokenFile()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix file modes only.");
        await using var bed = await KmsTestBed.StartAsync();
        await bed.StopAsync();
        var path = Path.Combine(bed.DataDirectory, Store.AdminTokenFile.FileName);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => KmsServer.StartAsync(bed.Options, 0, bed.Clock));

        Assert.Contains(Store.AdminTokenFile.FileName, e.Message);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await bed.RestartAsync();
    }
}
