using System.Globalization;
using System.Security.Cryptography;
using TwinSeal.Crypto;
using TwinSeal.Kms.Http;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>Administrative requests are signed by the party's long-term key: missing, wrong, stale or replayed signatures are refused and change nothing.</summary>
public sealed class RequestAuthenticationTests(SharedKms kms) : IClassFixture<SharedKms>
{
    private const string KeysPath = KmsEndpoints.Prefix + "/keys";
    private KmsTestBed Bed => kms.Bed;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task UnsignedRequest_IsRefused_WithUnsignedRequest()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        var before = await KeysCreatedAsync();

        await KmsTestBed.AssertProblemAsync(401, "unsigned-request",
            () => remote.SendAsync(HttpMethod.Post, KeysPath, new KeyCreateRequest("unsigned"), ct: Ct));

        Assert.Equal(before, await KeysCreatedAsync());
    }

    [Fact]
    public async Task RequestSignedByAnotherKey_IsRefused_WithBadSignature()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        using var impostor = PartySigningKey.Generate();
        var before = await KeysCreatedAsync();

        await KmsTestBed.AssertProblemAsync(401, "bad-signature",
            () => remote.SendAsync(HttpMethod.Post, KeysPath, new KeyCreateRequest("impostor"), ("party1", impostor), ct: Ct));

        Assert.Equal(before, await KeysCreatedAsync());
    }

    [Fact]
    public async Task RequestWhoseBodyWasChangedAfterSigning_IsRefused_WithBadSignature()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        var captured = RemoteClient.Capture(HttpMethod.Post, KeysPath, new KeyCreateRequest("signed label"), "party1", Bed.Party1.Key);
        var altered = captured with { Body = ProtocolJson.Canonical(new KeyCreateRequest("altered label")) };

        await KmsTestBed.AssertProblemAsync(401, "bad-signature", () => remote.SendCapturedAsync(altered, Ct));
    }

    [Fact]
    public async Task RequestFromAnUnregisteredParty_IsRefused_WithUnknownParty()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        using var stranger = PartySigningKey.Generate();

        await KmsTestBed.AssertProblemAsync(401, "unknown-party",
            () => remote.SendAsync(HttpMethod.Post, KeysPath, new KeyCreateRequest("stranger"), ("stranger", stranger), ct: Ct));
    }

    [Fact]
    public async Task RequestSignedTenMinutesAgo_IsRefused_WithStaleRequest()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        var signedAt = DateTimeOffset.UtcNow.AddMinutes(-10);
        var before = await KeysCreatedAsync();

        await KmsTestBed.AssertProblemAsync(401, "stale-request",
            () => remote.SendCapturedAsync(SignAt(signedAt, new KeyCreateRequest("stale")), Ct));

        Assert.Equal(before, await KeysCreatedAsync());
    }

    [Fact]
    public async Task RequestSignedTenMinutesAhead_IsRefused_WithStaleRequest()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);

        await KmsTestBed.AssertProblemAsync(401, "stale-request",
            () => remote.SendCapturedAsync(SignAt(DateTimeOffset.UtcNow.AddMinutes(10), new KeyCreateRequest("future")), Ct));
    }

    [Fact]
    public async Task RequestSignedTwoMinutesAgo_IsAccepted_WithinTheAllowedSkew()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);

        var reply = await remote.SendCapturedAsync(SignAt(DateTimeOffset.UtcNow.AddMinutes(-2), new KeyCreateRequest("skewed clock")), Ct);

        Assert.Equal("skewed clock", ProtocolJson.Parse<KeyInfo>(reply, "reply").Label);
    }

    [Fact]
    public async Task SameSignedRequestSentTwice_IsRefused_TheSecondTime_WithReplayedRequest()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        var captured = RemoteClient.Capture(HttpMethod.Post, KeysPath, new KeyCreateRequest("once"), "party1", Bed.Party1.Key);
        var before = await KeysCreatedAsync();
        await remote.SendCapturedAsync(captured, Ct);

        await KmsTestBed.AssertProblemAsync(401, "replayed-request", () => remote.SendCapturedAsync(captured, Ct));

        Assert.Equal(before + 1, await KeysCreatedAsync());
    }

    [Fact]
    public async Task PartyRegistration_IsRefused_WhenNotSignedByTheKeyItRegisters()
    {
        using var remote = new RemoteClient(Bed.Server.Endpoint);
        using var registered = PartySigningKey.Generate();
        using var signer = PartySigningKey.Generate();
        var registration = new PartyRegistration("squatter", registered.PublicKey.SubjectPublicKeyInfo);

        await KmsTestBed.AssertProblemAsync(401, "bad-signature",
            () => remote.SendAsync(HttpMethod.Post, KmsEndpoints.Prefix + "/parties", registration, ("squatter", signer), ct: Ct));

        await KmsTestBed.AssertProblemAsync(404, "party-not-found", () => Bed.Party1.Client.GetPartyAsync("squatter"));
    }

    [Fact]
    public async Task PartyRegistration_IsRefused_ForATakenIdWithAnotherKey_EvenWithTheAdminToken()
    {
        using var other = PartySigningKey.Generate();
        using var client = new KmsClient(Bed.Server.Endpoint, "party1", other, Bed.Clock);

        await KmsTestBed.AssertProblemAsync(409, "party-exists", () => client.RegisterAsync(adminToken: Bed.AdminToken));

        Assert.Equal(Bed.Party1.Key.PublicKey.Fingerprint, (await Bed.Party1.Client.GetPartyAsync("party1")).Fingerprint);
    }

    private CapturedRequest SignAt(DateTimeOffset at, object body)
    {
        var bytes = ProtocolJson.Canonical(body);
        var unix = at.ToUnixTimeSeconds();
        var requestId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var signature = Bed.Party1.Key.Sign(SignedRequest.SigningInput("POST", KeysPath, "party1", unix, requestId, bytes));
        var headers = new Dictionary<string, string>
        {
            [SignedRequest.PartyHeader] = "party1",
            [SignedRequest.TimestampHeader] = unix.ToString(CultureInfo.InvariantCulture),
            [SignedRequest.RequestIdHeader] = requestId,
            [SignedRequest.SignatureHeader] = System.Buffers.Text.Base64Url.EncodeToString(signature),
        };
        return new CapturedRequest("POST", KeysPath, headers, bytes);
    }

    private async Task<int> KeysCreatedAsync()
        => (await Bed.Party1.Client.AuditAsync()).Count(r => r.Event == "key-created");
}
