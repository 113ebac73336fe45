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
    public async Task Upload_FromARegisteredPartyThatSharesNoKeyWithTheReceiver_IsRefusedAsUnknown_AndNothingReachesTheInbox()
    {
        var id = Guid.NewGuid();

        var e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.UploadAsAsync(TwoPartyFixture.Stranger, f.Party2, f.KeyId, id));

        // The receiver's host may not even read that party's public key at the KMS (reads are scoped).
        Assert.Equal(("unknown-party", 401), (e.Code, e.Status));
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

/// <summary>The two-party set-up with party 2's peer API limited tightly enough to reach every limit in a test.</summary>
public sealed class PeerLimitsFixture : TwoPartyFixture
{
    public const long MaxUploadBytes = 64 * 1024;
    public const int UploadsPerMinute = 8;

    protected override PeerUploadLimits PeerLimits(string party)
        => party == "party2" ? new PeerUploadLimits(MaxUploadBytes, UploadsPerMinute, ConcurrentUploads: 1) : base.PeerLimits(party);
}

/// <summary>
/// Per-sender limits of the peer API (size, rate, uploads at once), enforced after the sender is authenticated and before
/// the upload is read; party 2 runs with <see cref="PeerLimitsFixture"/>'s limits.
/// </summary>
public sealed class PeerLimitTests(PeerLimitsFixture f) : IClassFixture<PeerLimitsFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Upload_LargerThanTheLimit_IsRefusedWith413_AndNothingIsStored()
    {
        var id = Guid.NewGuid();

        var e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.UploadAsAsync("party1", f.Party2, f.KeyId, id, plaintextBytes: (int)PeerLimitsFixture.MaxUploadBytes));

        Assert.Equal(("body-too-large", 413), (e.Code, e.Status));
        Assert.Contains($"at most {PeerLimitsFixture.MaxUploadBytes} bytes", e.Message, StringComparison.Ordinal);
        Assert.Empty(f.InboxFiles("party2", id));
    }

    [Fact]
    public async Task Uploads_BeyondThePerMinuteLimit_AreRefusedWith429_ForThatSenderOnly()
    {
        // Party 3 is outside the policy: its uploads are refused anyway, but each one still costs the receiver a
        // signature check and a KMS read, so they count against its own limit and against nobody else's.
        using var http = TwoPartyFixture.PinnedClient(f.Party2.Endpoint);
        var answers = new List<HttpResponseMessage>();
        try
        {
            for (var i = 0; i < 3 * PeerLimitsFixture.UploadsPerMinute && answers.LastOrDefault()?.StatusCode != System.Net.HttpStatusCode.TooManyRequests; i++)
                answers.Add(await RawUploadAsync(http, TwoPartyFixture.Outsider, Guid.NewGuid()));

            var limited = answers[^1];
            Assert.Equal(System.Net.HttpStatusCode.TooManyRequests, limited.StatusCode);
            Assert.Equal("application/problem+json", limited.Content.Headers.ContentType?.MediaType);
            Assert.Contains("\"code\":\"rate-limited\"", await limited.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
            Assert.True(limited.Headers.RetryAfter?.Delta > TimeSpan.Zero);
            // The bucket refills one upload every 60/8 s: a slow run may get one more through, never many more.
            Assert.InRange(answers.Count - 1, PeerLimitsFixture.UploadsPerMinute, PeerLimitsFixture.UploadsPerMinute + 2);
            Assert.All(answers[..^1], a => Assert.Equal(System.Net.HttpStatusCode.Forbidden, a.StatusCode));
        }
        finally
        {
            foreach (var a in answers) a.Dispose();
        }

        var id = Guid.NewGuid();
        Assert.Equal(id, (await f.UploadAsAsync("party1", f.Party2, f.KeyId, id)).DatasetId);
    }

    [Fact]
    public async Task Upload_WhileTheSameSenderHasOneInProgress_IsRefusedWith429_AndTheSlotFreesWhenItEnds()
    {
        var slowId = Guid.NewGuid();
        var dataset = TwoPartyFixture.Dataset(f.KeyId, slowId, 32 * 1024);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var identity = PartyIdentity.Load(Path.Combine(f.Work, "party1"));
        using var peer = new RemoteClient(f.Party2.Endpoint);
        // Half the dataset goes out, then the upload waits: the receiver has accepted it and is writing it to its inbox.
        var slow = peer.SendStreamAsync(HttpMethod.Put, $"/peer/v1/datasets/{slowId}", new GatedStream(dataset, dataset.Length / 2, gate.Task),
            dataset.Length, TwoPartyFixture.HeaderSha256(dataset), (identity.PartyId, identity.Key), Ct);
        try
        {
            var partial = Path.Combine(f.Work, "party2", "inbox", $"{slowId}.tsds.partial");
            for (var waited = 0; !File.Exists(partial); waited += 20)
            {
                Assert.True(waited < 30_000, "the slow upload never reached the receiver's inbox");
                Assert.False(slow.IsCompleted, "the slow upload ended before it was released");
                await Task.Delay(20, Ct);
            }

            var e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.UploadAsAsync("party1", f.Party2, f.KeyId, Guid.NewGuid()));

            Assert.Equal(("rate-limited", 429), (e.Code, e.Status));
            Assert.Contains("in progress", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            gate.SetResult();
        }
        Assert.Equal(dataset.Length, ProtocolJson.Parse<DatasetReceipt>(await slow, "receipt").Bytes);
        var next = Guid.NewGuid();
        Assert.Equal(next, (await f.UploadAsAsync("party1", f.Party2, f.KeyId, next)).DatasetId);
    }

    /// <summary>A signed upload sent with a plain client, so the test sees the whole response (status, headers, body).</summary>
    private async Task<HttpResponseMessage> RawUploadAsync(HttpClient http, string party, Guid id)
    {
        using var identity = PartyIdentity.Load(Path.Combine(f.Work, party));
        var dataset = TwoPartyFixture.Dataset(f.KeyId, id, 64);
        var path = $"/peer/v1/datasets/{id}";
        using var req = new HttpRequestMessage(HttpMethod.Put, f.Party2.Endpoint.Url + path) { Content = new ByteArrayContent(dataset) };
        req.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
        var headerSha256 = TwoPartyFixture.HeaderSha256(dataset);
        RemoteClient.Sign(req, path, headerSha256, identity.PartyId, identity.Key);
        req.Headers.Remove(TwinSeal.Protocol.SignedRequest.ContentHashHeader);
        req.Headers.Add(TwinSeal.Protocol.SignedRequest.DatasetHeaderHashHeader, headerSha256);
        return await http.SendAsync(req, Ct);
    }

}

/// <summary>The two-party set-up with party 2 cutting off any upload slower than 1 MiB/s once 2 seconds have passed.</summary>
public sealed class SlowUploadFixture : TwoPartyFixture
{
    protected override PeerUploadLimits PeerLimits(string party)
        => party == "party2" ? new PeerUploadLimits(MinUploadBytesPerSecond: 1 << 20, UploadRateGraceSeconds: 2) : base.PeerLimits(party);
}

/// <summary>A sender that trickles its dataset, to hold the receiver's isolated area for as long as it likes.</summary>
public sealed class SlowUploadTests(SlowUploadFixture f) : IClassFixture<SlowUploadFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task An_upload_computed_on_arrival_that_trickles_is_cut_off_stores_nothing_and_frees_the_isolated_area()
    {
        await f.Control2.PostAsync<ArrivalCommand>("/arrivals", new ArrivalCommand(f.KeyId, "subscribers", "party1"));
        var id = Guid.NewGuid();
        var dataset = TwoPartyFixture.Dataset(f.KeyId, id, 256 * 1024);
        using var identity = PartyIdentity.Load(Path.Combine(f.Work, "party1"));
        using var peer = new RemoteClient(f.Party2.Endpoint);

        // 8 KiB, then nothing for 8 s (four times the grace): far below the receiver's minimum rate. Were it not cut
        // off, the rest would follow and the upload succeed.
        await Assert.ThrowsAnyAsync<Exception>(() => peer.SendStreamAsync(HttpMethod.Put, $"/peer/v1/datasets/{id}",
            new GatedStream(dataset, 8 * 1024, Task.Delay(TimeSpan.FromSeconds(8), Ct)), dataset.Length, TwoPartyFixture.HeaderSha256(dataset), (identity.PartyId, identity.Key), Ct));

        Assert.Empty(f.InboxFiles("party2", id));
        var loaded = await f.Control2.PutAsync<LoadTableResult>("/tables/after_the_trickle", "email\na@example.org\n"u8.ToArray());
        Assert.Equal(1, loaded.Rows);
    }

    [Fact]
    public async Task An_upload_that_sends_a_burst_then_stalls_is_cut_off_once_it_stalls_and_frees_the_isolated_area()
    {
        await f.Control2.PostAsync<ArrivalCommand>("/arrivals", new ArrivalCommand(f.KeyId, "subscribers", "party1"));
        var id = Guid.NewGuid();
        var dataset = TwoPartyFixture.Dataset(f.KeyId, id, 24 << 20);
        using var identity = PartyIdentity.Load(Path.Combine(f.Work, "party1"));
        using var peer = new RemoteClient(f.Party2.Endpoint);
        var stall = TimeSpan.FromSeconds(20);

        // 20 MiB at once, then nothing for 20 s (ten times the grace). The receiver's minimum is 1 MiB/s: an average
        // over the whole upload lets the burst buy a 20 s stall while the isolated area waits for the rest.
        var upload = peer.SendStreamAsync(HttpMethod.Put, $"/peer/v1/datasets/{id}",
            new GatedStream(dataset, 20 << 20, Task.Delay(stall, Ct)), dataset.Length, TwoPartyFixture.HeaderSha256(dataset), (identity.PartyId, identity.Key), Ct);
        await Task.Delay(TimeSpan.FromSeconds(8), Ct);
        var load = f.Control2.PutAsync<LoadTableResult>("/tables/during_the_stall", "email\na@example.org\n"u8.ToArray());

        var first = await Task.WhenAny(load, Task.Delay(TimeSpan.FromSeconds(6), Ct));
        try
        {
            await upload;
        }
        catch (Exception)
        {
            // Cut off, or refused once whole: either way it is over now.
        }
        Assert.Same(load, first);
    }
}

/// <summary>The two-party set-up with party 2's inbox on a disk that can be made to fill up, as a real one does mid-write.</summary>
public sealed class DiskFullFixture : TwoPartyFixture
{
    /// <summary>Bytes party 2's inbox still takes from the next upload on, before the disk reports full; null: no limit.</summary>
    public long? InboxSpaceLeft { get; set; }

    /// <summary>Bytes the last upload wrote to its inbox file before the disk was full.</summary>
    public long WrittenBeforeFull { get; private set; }

    protected override Func<Stream, Stream> InboxWriteStream(string party)
        => party == "party2" ? file => InboxSpaceLeft is { } left ? new FillingDisk(file, left, n => WrittenBeforeFull = n) : file : base.InboxWriteStream(party);

    /// <summary>Writes through to the file until <c>spaceLeft</c> is used up, then fails the way Linux reports ENOSPC, having written what fitted.</summary>
    private sealed class FillingDisk(Stream file, long spaceLeft, Action<long> full) : Stream
    {
        private long _written;

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var fits = (int)Math.Min(buffer.Length, spaceLeft - _written);
            await file.WriteAsync(buffer[..fits], cancellationToken);
            _written += fits;
            if (fits < buffer.Length)
            {
                full(_written);
                throw new IOException("No space left on device", 28);
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
        public override void Flush() => file.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}

/// <summary>A receiver whose disk fills up while an upload is written answers 507 and keeps nothing of it.</summary>
public sealed class DiskFullTests(DiskFullFixture f) : IClassFixture<DiskFullFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void IsStorageFull_IsTrue_ForTheErrorTheKernelGivesWhenADeviceIsFull()
    {
        Assert.SkipUnless(File.Exists("/dev/full"), "needs /dev/full (Linux)");
        // The injected fault below throws what this real write throws: the mapping is checked against the kernel, not against itself.
        var e = Assert.Throws<IOException>(() =>
        {
            using var full = new FileStream("/dev/full", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 1);
            full.Write(new byte[64]);
        });

        Assert.True(TwinSeal.Kms.Http.HttpsLoopbackHost.IsStorageFull(e), $"HResult {e.HResult}: {e.Message}");
        Assert.Equal(28, e.HResult);
        Assert.False(TwinSeal.Kms.Http.HttpsLoopbackHost.IsStorageFull(new IOException("Broken pipe", 32)));
    }

    [Fact]
    public async Task Upload_WhenTheInboxDiskFills_Answers507_AndLeavesNoPartialFile_AndTheSameDatasetCanBeSentAgain()
    {
        var id = Guid.NewGuid();
        f.InboxSpaceLeft = 8 * 1024;
        RemoteProblemException e;
        try
        {
            e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.UploadAsAsync("party1", f.Party2, f.KeyId, id, plaintextBytes: 64 * 1024));
        }
        finally
        {
            f.InboxSpaceLeft = null;
        }

        Assert.Equal((InboxSpace.FullCode, 507), (e.Code, e.Status));
        Assert.Equal(8 * 1024, f.WrittenBeforeFull);
        Assert.Empty(f.InboxFiles("party2", id));
        Assert.Equal(id, (await f.UploadAsAsync("party1", f.Party2, f.KeyId, id, plaintextBytes: 64 * 1024)).DatasetId);
    }

    [Fact]
    public async Task Upload_WhenTheDiskFillsWhileAnArrivalOrderComputes_Answers507_AndTheOrderAndTheIsolatedAreaStillServe()
    {
        // A table big enough that the isolated area is already decrypting when the disk fills.
        var data = TwinSeal.Cli.Demo.DataGenerator.Generate(Path.Combine(f.Work, "big"), 2_000, 0.3, 11);
        await f.Control1.PutAsync<LoadTableResult>("/tables/big", await File.ReadAllBytesAsync(data.Party1Csv, Ct));
        await f.Control2.PostAsync<ArrivalCommand>("/arrivals", new ArrivalCommand(f.KeyId, "subscribers", "party1"));
        var inbox = Path.Combine(f.Work, "party2", "inbox");
        var before = Directory.GetFiles(inbox).Length;
        f.InboxSpaceLeft = 16 * 1024;
        RemoteProblemException e;
        try
        {
            e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.Control1.PostAsync<SendTableResult>("/send", new SendTableCommand(f.KeyId, "big", f.Party2.Endpoint.Url, f.Party2.Endpoint.Fingerprint)));
        }
        finally
        {
            f.InboxSpaceLeft = null;
        }

        Assert.Equal(InboxSpace.FullCode, e.Code);
        Assert.Equal(16 * 1024, f.WrittenBeforeFull);
        Assert.Equal(before, Directory.GetFiles(inbox).Length);
        var (id, _) = await f.SendAsync();
        Assert.Equal(TwoPartyFixture.SharedRows, (await f.Control2.GetAsync<ComputeResult>($"/results/{id}")).DistinctMatchedKeys);
    }
}

/// <summary>Yields <c>bytes</c>, pausing after the first <c>pauseAt</c> until <c>resume</c> completes.</summary>
internal sealed class GatedStream(byte[] bytes, int pauseAt, Task resume) : Stream
{
    private int _position;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position == pauseAt) await resume.WaitAsync(cancellationToken);
        var end = _position < pauseAt ? pauseAt : bytes.Length;
        var n = Math.Min(buffer.Length, end - _position);
        bytes.AsMemory(_position, n).CopyTo(buffer);
        _position += n;
        return n;
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => bytes.Length;
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
