using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.EndToEnd.Tests;

/// <summary>
/// Who may send a dataset to whom, checked by the receiving host on the key's current authority before anything reaches
/// its inbox; through the real hosts, KMS and enclave processes. The fixture's key lets party 1 and party 2 use it and
/// releases to party 2; party 3 is registered but named by no policy.
/// </summary>
public sealed class SenderRuleTests(TwoPartyFixture f) : IClassFixture<TwoPartyFixture>
{
    [Fact]
    public async Task Upload_FromAPartyOutsideThePolicy_IsRefused_AndNothingEverReachesTheInbox()
    {
        var id = Guid.NewGuid();
        var created = new List<string>();
        using var watcher = new FileSystemWatcher(Path.Combine(f.Work, "party2", "inbox")) { EnableRaisingEvents = true };
        watcher.Created += (_, e) => { lock (created) created.Add(e.Name!); };

        var e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.UploadAsAsync(TwoPartyFixture.Outsider, f.Party2, f.KeyId, id));
        await Task.Delay(200, TestContext.Current.CancellationToken);

        Assert.Equal(("sender-not-authorised", 403), (e.Code, e.Status));
        lock (created) Assert.DoesNotContain(created, n => n.StartsWith(id.ToString(), StringComparison.Ordinal));
        Assert.Empty(f.InboxFiles("party2", id));
    }

    [Fact]
    public async Task Refusal_OfAnOutsider_NamesNothingFromThePolicy_AndIsTheSameAsForAKeyThatDoesNotExist()
    {
        var known = await Assert.ThrowsAsync<RemoteProblemException>(() => f.UploadAsAsync(TwoPartyFixture.Outsider, f.Party2, f.KeyId, Guid.NewGuid()));
        var unknown = await Assert.ThrowsAsync<RemoteProblemException>(() => f.UploadAsAsync(TwoPartyFixture.Outsider, f.Party2, "key-that-does-not-exist", Guid.NewGuid()));

        Assert.Equal((known.Code, known.Status), (unknown.Code, unknown.Status));
        Assert.Equal(known.Message.Replace(f.KeyId, "K", StringComparison.Ordinal), unknown.Message.Replace("key-that-does-not-exist", "K", StringComparison.Ordinal));
        Assert.DoesNotContain("party1", known.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("party2", known.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upload_FromAGranteeToAPartyThatIsNotTheRecipient_IsRefused_AndNothingReachesTheInbox()
    {
        // Party 2 may use the key, but the policy releases to party 2: party 1's isolated area would never compute on it.
        var id = Guid.NewGuid();

        var e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.UploadAsAsync("party2", f.Party1, f.KeyId, id));

        Assert.Equal(("not-the-recipient", 403), (e.Code, e.Status));
        Assert.Empty(f.InboxFiles("party1", id));
    }

    [Fact]
    public async Task Upload_FromAGranteeToTheRecipient_IsStored_WithItsSender()
    {
        var id = Guid.NewGuid();

        var receipt = await f.UploadAsAsync("party1", f.Party2, f.KeyId, id);

        Assert.Equal(id, receipt.DatasetId);
        Assert.Equal("party1", await File.ReadAllTextAsync(Path.Combine(f.Work, "party2", "inbox", $"{id}.tsds.from"), TestContext.Current.CancellationToken));
        Assert.Equal(2, f.InboxFiles("party2", id).Count);
    }

    [Fact]
    public async Task Upload_WhoseSignedHeaderNamesAnotherDatasetThanItsPath_IsRefused_AndNothingIsStored()
    {
        using var identity = PartyIdentity.Load(Path.Combine(f.Work, "party1"));
        var (inPath, inHeader) = (Guid.NewGuid(), Guid.NewGuid());
        var dataset = TwoPartyFixture.Dataset(f.KeyId, inHeader, 64);
        using var peer = new RemoteClient(f.Party2.Endpoint);

        var e = await Assert.ThrowsAsync<RemoteProblemException>(() => peer.SendStreamAsync(HttpMethod.Put, $"/peer/v1/datasets/{inPath}",
            new MemoryStream(dataset), dataset.Length, TwoPartyFixture.HeaderSha256(dataset), (identity.PartyId, identity.Key), TestContext.Current.CancellationToken));

        Assert.Equal(("dataset-id-mismatch", 400), (e.Code, e.Status));
        Assert.Empty(f.InboxFiles("party2", inPath));
        Assert.Empty(f.InboxFiles("party2", inHeader));
    }
}
