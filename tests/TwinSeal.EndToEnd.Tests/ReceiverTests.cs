using System.Net;
using System.Net.Http.Headers;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.EndToEnd.Tests;

/// <summary>What party 2's host and isolated area do with what party 1 sends, through the real hosts and enclave processes.</summary>
public sealed class ReceiverTests(TwoPartyFixture f) : IClassFixture<TwoPartyFixture>
{
    [Fact]
    public async Task GenuineDataset_IsMatched()
    {
        var (id, _) = await f.SendAsync();
        var result = await f.ComputeAsync(id);
        Assert.Equal(TwoPartyFixture.SharedRows, result.DistinctMatchedKeys);
        Assert.Equal(ResultKind.MatchCount, result.Result);
        Assert.Null(result.JoinedRowsPath);
        Assert.Null(result.PeerRows); // party 1's row count is not party 2's to learn: the policy does not release it
    }

    [Fact]
    public async Task TamperedCiphertext_IsDetectedByReceivingEnclave_AndNothingIsReleased()
    {
        var (id, inbox) = await f.SendAsync();
        var bytes = await File.ReadAllBytesAsync(inbox, TestContext.Current.CancellationToken);
        bytes[bytes.Length / 2] ^= 0x40;
        await File.WriteAllBytesAsync(inbox, bytes, TestContext.Current.CancellationToken);
        var e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.ComputeAsync(id));
        Assert.Equal("dataset-rejected", e.Code);
        Assert.Contains("segment-authentication-failed", e.Message);
    }

    [Fact]
    public async Task TruncatedCiphertext_IsDetectedByReceivingEnclave()
    {
        var (id, inbox) = await f.SendAsync();
        var bytes = await File.ReadAllBytesAsync(inbox, TestContext.Current.CancellationToken);
        await File.WriteAllBytesAsync(inbox, bytes[..^17], TestContext.Current.CancellationToken);
        var e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.ComputeAsync(id));
        Assert.Equal("dataset-rejected", e.Code);
    }

    [Fact]
    public async Task SentDataset_LeavesNoPlaintextDigestSizeOrPeerRowCount_InEitherHostsAnswersOrFiles()
    {
        var ct = TestContext.Current.CancellationToken;
        // Party 1's table as loaded: the manifest inside the dataset carries its SHA-256 and byte size.
        var table = await File.ReadAllBytesAsync(Path.Combine(f.Work, "data", "party1.csv"), ct);
        var digest = System.Text.Encoding.ASCII.GetBytes(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(table)));
        using var host1 = new RemoteClient(f.Party1.Endpoint);
        using var host2 = new RemoteClient(f.Party2.Endpoint);
        await f.Control2.PostAsync<ArrivalCommand>("/arrivals", new ArrivalCommand(f.KeyId, "subscribers", "party1"));

        var sent = await host1.SendAsync(HttpMethod.Post, "/control/v1/send", new SendTableCommand(f.KeyId, "customers", f.Party2.Endpoint.Url, f.Party2.Endpoint.Fingerprint), bearer: f.Token("party1"), ct: ct);
        var id = ProtocolJson.Parse<SendTableResult>(sent, "send").DatasetId;
        var streamed = await host2.SendAsync(HttpMethod.Get, $"/control/v1/results/{id}", null, bearer: f.Token("party2"), ct: ct);
        var computed = await host2.SendAsync(HttpMethod.Post, "/control/v1/compute", new ComputeCommand(f.KeyId, id, "subscribers"), bearer: f.Token("party2"), ct: ct);

        Assert.Equal(TwoPartyFixture.SharedRows, ProtocolJson.Parse<ComputeResult>(computed, "compute").DistinctMatchedKeys);
        // The policy does not release party 1's row count: the member is there, empty.
        Assert.All(new[] { streamed, computed }, answer => Assert.Null(ProtocolJson.Parse<ComputeResult>(answer, "result").PeerRows));
        foreach (var answer in new[] { sent, streamed, computed })
        {
            Assert.Equal(-1, answer.AsSpan().IndexOf(digest));
            foreach (var member in new[] { "manifest", "sha256", "csvBytes", "rowCount" })
                Assert.DoesNotContain($"\"{member}\"", System.Text.Encoding.UTF8.GetString(answer), StringComparison.OrdinalIgnoreCase);
        }
        foreach (var file in Directory.EnumerateFiles(Path.Combine(f.Work, "party1"), "*", SearchOption.AllDirectories)
                     .Concat(Directory.EnumerateFiles(Path.Combine(f.Work, "party2"), "*", SearchOption.AllDirectories)))
            Assert.True((await File.ReadAllBytesAsync(file, ct)).AsSpan().IndexOf(digest) < 0, $"{file} holds the SHA-256 of party 1's table");
    }

    [Fact]
    public async Task UnsignedUpload_ToPeerApi_IsRefused()
    {
        using var http = TwoPartyFixture.PinnedClient(f.Party2.Endpoint);
        using var content = new ByteArrayContent([1, 2, 3]);
        var resp = await http.PutAsync($"{f.Party2.Endpoint.Url}/peer/v1/datasets/{Guid.NewGuid()}", content, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, resp.StatusCode);
        Assert.Equal("application/problem+json", resp.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task ControlApi_WithoutToken_IsRefused()
    {
        using var http = TwoPartyFixture.PinnedClient(f.Party1.Endpoint);
        var resp = await http.GetAsync($"{f.Party1.Endpoint.Url}/control/v1/enclave", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, resp.StatusCode);
        Assert.Contains("control-token-required", await resp.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    [Theory]
    [InlineData("/send")]
    [InlineData("/compute")]
    [InlineData("/proposals")]
    [InlineData("/approvals")]
    [InlineData("/keys")]
    public async Task ControlApi_MalformedJson_GetsProblem_AndHostKeepsServing(string path)
    {
        using var http = TwoPartyFixture.PinnedClient(f.Party1.Endpoint);
        using var req = new HttpRequestMessage(HttpMethod.Post, $"{f.Party1.Endpoint.Url}/control/v1{path}") { Content = new StringContent("{\"keyId\": [") };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", f.Token("party1"));
        var resp = await http.SendAsync(req, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
        var body = await resp.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("\"code\":\"malformed-request\"", body);
        Assert.DoesNotContain("   at ", body);
        Assert.Equal("sim", (await f.Control1.GetAsync<EnclaveDescription>("/enclave")).Platform);
    }

    [Fact]
    public async Task LoadingMalformedCsv_GivesLineNumber_AndKeepsEarlierTable()
    {
        var e = await Assert.ThrowsAsync<RemoteProblemException>(() => f.Control1.PutAsync<LoadTableResult>("/tables/broken", "a,b\n1,2\n3\n"u8.ToArray()));
        Assert.Equal("bad-csv", e.Code);
        Assert.Contains("line 3", e.Message);
        var (id, _) = await f.SendAsync();
        Assert.Equal(TwoPartyFixture.SharedRows, (await f.ComputeAsync(id)).DistinctMatchedKeys);
    }

}

/// <summary>Key rotation seen from the two parties: data sent before a rotation still decrypts, new data uses the new version.</summary>
public sealed class RotationTests(TwoPartyFixture f) : IClassFixture<TwoPartyFixture>
{
    [Fact]
    public async Task DatasetSentBeforeRotation_StillDecrypts_AndNewSendsUseNewVersion()
    {
        var (before, beforePath) = await f.SendAsync();
        var rotated = await f.Control1.PostAsync<KeyInfo>($"/keys/{f.KeyId}/rotate", null);
        Assert.Equal(2, rotated.KeyVersion);
        Assert.Equal(TwoPartyFixture.SharedRows, (await f.ComputeAsync(before)).DistinctMatchedKeys);
        var (after, afterPath) = await f.SendAsync();
        Assert.Equal(1, TwinSeal.Crypto.DatasetStream.ReadHeader(await File.ReadAllBytesAsync(beforePath, TestContext.Current.CancellationToken)).KeyVersion);
        Assert.Equal(2, TwinSeal.Crypto.DatasetStream.ReadHeader(await File.ReadAllBytesAsync(afterPath, TestContext.Current.CancellationToken)).KeyVersion);
        Assert.Equal(TwoPartyFixture.SharedRows, (await f.ComputeAsync(after)).DistinctMatchedKeys);
    }
}

/// <summary>The other computations through real hosts and enclave processes: aggregates with k-suppression.</summary>
public sealed class AggregateFlowTests(TwoPartyFixture f) : IClassFixture<TwoPartyFixture>
{
    [Fact]
    public async Task AggregatePolicy_ReleasesOnlyGroupsOfAtLeastK_ToTheRecipientsFile()
    {
        var output = new OutputPolicy("aggregate", "email", ResultKind.Aggregates, "party2",
            GroupBy: ["segment"], Measures: [new AggregateMeasure(AggregateFunction.Count), new AggregateMeasure(AggregateFunction.Sum, "spend_eur")], MinimumGroupSize: 5,
            Bounds: new Dictionary<string, IReadOnlyList<decimal>> { ["spend_eur"] = [0, 5000] });
        var key = await f.AgreeKeyAsync("aggregates", output);
        var sent = await f.Control1.PostAsync<SendTableResult>("/send", new SendTableCommand(key, "customers", f.Party2.Endpoint.Url, f.Party2.Endpoint.Fingerprint));
        var outFile = Path.Combine(f.Work, "party2", "results", "aggregates.csv");

        var result = await f.Control2.PostAsync<ComputeResult>("/compute", new ComputeCommand(key, sent.DatasetId, "subscribers", "aggregates.csv"));

        Assert.Equal(("aggregate", ResultKind.Aggregates), (result.Computation, result.Result));
        var lines = await File.ReadAllLinesAsync(outFile, TestContext.Current.CancellationToken);
        Assert.Equal("segment,count,sum(spend_eur),suppressed_groups", lines[0]);
        // Every released group holds at least k rows, at most every shared row is counted once, no count leaves beside the
        // table, and the last row only says how many groups were withheld.
        var groups = lines[1..^1].Select(l => l.Split(',')).ToList();
        var count = (string[] g) => int.Parse(g[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.All(groups, g => Assert.True(count(g) >= 5));
        Assert.InRange(groups.Sum(count), 0, TwoPartyFixture.SharedRows);
        Assert.Equal((null, null), (result.DistinctMatchedKeys, result.PeerRows));
        Assert.Matches("^,,,[0-9]+$", lines[^1]);
    }
}

/// <summary>The table schemas agreed in the policy, enforced by both isolated areas.</summary>
public sealed class AgreedSchemaTests(TwoPartyFixture f) : IClassFixture<TwoPartyFixture>
{
    private async Task<string> KeyWithSchemasAsync(IReadOnlyList<ColumnSpec> party1Schema, IReadOnlyList<ColumnSpec> party2Schema)
    {
        var key = (await f.Control1.PostAsync<KeyInfo>("/keys", new CreateKeyCommand("agreed schemas"))).KeyId;
        var e1 = await f.Control1.GetAsync<EnclaveDescription>("/enclave");
        var e2 = await f.Control2.GetAsync<EnclaveDescription>("/enclave");
        var policy = new AuthorityPolicy(
            [new UsageGrant("party1", new ReferenceValues(e1.Platform, [e1.Measurement], e1.PlatformTests), party1Schema),
             new UsageGrant("party2", new ReferenceValues(e2.Platform, [e2.Measurement], e2.PlatformTests), party2Schema)],
            ["party1", "party2"], ChangeMethod.AllParties, new OutputPolicy("secure-match", "email", ResultKind.MatchCount, "party2"));
        var p = await f.Control1.PostAsync<ProposalStatus>("/proposals", new ProposeCommand(key, 0, policy));
        await f.Control2.PostAsync<ProposalStatus>("/approvals", new ApproveCommand(key, p.ProposalId, p.ProposalHash));
        return key;
    }

    private static readonly ColumnSpec[] Party1Schema = [new("customer_id", ColumnTypes.String, Required: true), new("email"), new("spend_eur", ColumnTypes.Decimal)];
    private static readonly ColumnSpec[] Party2Schema = [new("email"), new("segment"), new("visits", ColumnTypes.Int)];

    [Fact]
    public async Task TablesMatchingTheAgreedSchemas_AreMatched()
    {
        var key = await KeyWithSchemasAsync(Party1Schema, Party2Schema);
        var sent = await f.Control1.PostAsync<SendTableResult>("/send", new SendTableCommand(key, "customers", f.Party2.Endpoint.Url, f.Party2.Endpoint.Fingerprint));

        var result = await f.Control2.PostAsync<ComputeResult>("/compute", new ComputeCommand(key, sent.DatasetId, "subscribers"));

        Assert.Equal(TwoPartyFixture.SharedRows, result.DistinctMatchedKeys);
    }

    [Fact]
    public async Task SendersArea_RefusesToEncryptATableThatDiffersFromItsAgreedSchema()
    {
        var key = await KeyWithSchemasAsync([new("customer_id"), new("email"), new("spend_eur", ColumnTypes.Int)], Party2Schema);

        var e = await Assert.ThrowsAsync<TwinSeal.Party.RemoteProblemException>(() =>
            f.Control1.PostAsync<SendTableResult>("/send", new SendTableCommand(key, "customers", f.Party2.Endpoint.Url, f.Party2.Endpoint.Fingerprint)));

        Assert.Equal("schema-mismatch", e.Code);
        Assert.Contains("spend_eur", e.Message);
    }

    [Fact]
    public async Task ReceiversArea_RefusesToComputeWhenItsOwnTableDiffersFromTheAgreedSchema()
    {
        var key = await KeyWithSchemasAsync(Party1Schema, [new("email"), new("tier"), new("visits")]);
        var sent = await f.Control1.PostAsync<SendTableResult>("/send", new SendTableCommand(key, "customers", f.Party2.Endpoint.Url, f.Party2.Endpoint.Fingerprint));

        var e = await Assert.ThrowsAsync<TwinSeal.Party.RemoteProblemException>(() => f.Control2.PostAsync<ComputeResult>("/compute", new ComputeCommand(key, sent.DatasetId, "subscribers")));

        Assert.Equal("schema-mismatch", e.Code);
        Assert.Contains("'segment'", e.Message);
    }
}

/// <summary>Computing while the dataset arrives: the receiver's isolated area decrypts segment by segment as the upload streams in.</summary>
public sealed class ArrivalTests(TwoPartyFixture f) : IClassFixture<TwoPartyFixture>
{
    [Fact]
    public async Task ArrivalOrder_ComputesWhileTheDatasetArrives_AndGivesTheSameResultAsComputingAfterwards()
    {
        await f.Control2.PostAsync<ArrivalCommand>("/arrivals", new ArrivalCommand(f.KeyId, "subscribers", "party1"));

        var (id, inbox) = await f.SendAsync();

        var streamed = await f.Control2.GetAsync<ComputeResult>($"/results/{id}");
        Assert.Equal(TwoPartyFixture.SharedRows, streamed.DistinctMatchedKeys);
        Assert.True(File.Exists(inbox));
        Assert.Equal(streamed.DistinctMatchedKeys, (await f.ComputeAsync(id)).DistinctMatchedKeys);
    }

    [Fact]
    public async Task ArrivalOrder_IsNotConsumedByAnotherGranteesDataset_AndStillComputesOnTheNamedSendersDataset()
    {
        // Unlike the fixture's key, this one lets party 3 use it too: its upload passes the sender rule, but the order
        // names party 1.
        var key = (await f.Control1.PostAsync<KeyInfo>("/keys", new CreateKeyCommand("two senders"))).KeyId;
        var e1 = await f.Control1.GetAsync<EnclaveDescription>("/enclave");
        var e2 = await f.Control2.GetAsync<EnclaveDescription>("/enclave");
        var policy = new AuthorityPolicy(
            [new UsageGrant("party1", new ReferenceValues(e1.Platform, [e1.Measurement], e1.PlatformTests)),
             new UsageGrant("party2", new ReferenceValues(e2.Platform, [e2.Measurement], e2.PlatformTests)),
             new UsageGrant(TwoPartyFixture.Outsider, new ReferenceValues(e1.Platform, [e1.Measurement], e1.PlatformTests))],
            ["party1", "party2"], ChangeMethod.AllParties, new OutputPolicy("secure-match", "email", ResultKind.MatchCount, "party2"));
        var p = await f.Control1.PostAsync<ProposalStatus>("/proposals", new ProposeCommand(key, 0, policy));
        await f.Control2.PostAsync<ProposalStatus>("/approvals", new ApproveCommand(key, p.ProposalId, p.ProposalHash));
        using (var party3 = TwinSeal.Party.PartyIdentity.Load(Path.Combine(f.Work, TwoPartyFixture.Outsider)))
        using (var kms = new TwinSeal.Party.KmsClient(f.Kms.Endpoint, party3.PartyId, party3.Key))
            Assert.Equal("applied", (await kms.ApproveAsync(key, p.ProposalId, p.ProposalHash)).Status);
        await f.Control2.PostAsync<ArrivalCommand>("/arrivals", new ArrivalCommand(key, "subscribers", "party1"));

        var fromParty3 = Guid.NewGuid();
        await f.UploadAsAsync(TwoPartyFixture.Outsider, f.Party2, key, fromParty3);
        var fromParty1 = await f.Control1.PostAsync<SendTableResult>("/send", new SendTableCommand(key, "customers", f.Party2.Endpoint.Url, f.Party2.Endpoint.Fingerprint));

        var e = await Assert.ThrowsAsync<TwinSeal.Party.RemoteProblemException>(() => f.Control2.GetAsync<ComputeResult>($"/results/{fromParty3}"));
        Assert.Equal("result-not-found", e.Code);
        Assert.True(File.Exists(Path.Combine(f.Work, "party2", "inbox", $"{fromParty3}.tsds")));
        Assert.Equal(TwoPartyFixture.SharedRows, (await f.Control2.GetAsync<ComputeResult>($"/results/{fromParty1.DatasetId}")).DistinctMatchedKeys);
    }

    [Fact]
    public async Task ArrivalOrder_WithoutTheSenderItWaitsFor_IsRefused()
    {
        var e = await Assert.ThrowsAsync<TwinSeal.Party.RemoteProblemException>(() => f.Control2.PostAsync<ArrivalCommand>("/arrivals", new { keyId = f.KeyId, ownTable = "subscribers" }));

        Assert.Equal(("malformed-request", 400), (e.Code, e.Status));
    }

    [Fact]
    public async Task Result_IsNotFound_ForADatasetNoOrderMatched()
    {
        var (id, _) = await f.SendAsync();

        var e = await Assert.ThrowsAsync<TwinSeal.Party.RemoteProblemException>(() => f.Control2.GetAsync<ComputeResult>($"/results/{id}"));
        Assert.Equal("result-not-found", e.Code);
    }

    [Fact]
    public async Task Upload_WhoseDatasetHeaderDiffersFromTheSignedOne_IsRefused_AndNothingIsStored()
    {
        using var identity = TwinSeal.Party.PartyIdentity.Load(Path.Combine(f.Work, "party1"));
        var id = Guid.NewGuid();
        using var key = TwinSeal.Crypto.DataKey.Generate();
        var dataset = TwinSeal.Crypto.DatasetStream.Encrypt(key, new TwinSeal.Crypto.DatasetStreamHeader(id, f.KeyId, 1), [1, 2, 3]);
        using var peer = new TwinSeal.Party.RemoteClient(f.Party2.Endpoint);

        var e = await Assert.ThrowsAsync<TwinSeal.Party.RemoteProblemException>(() => peer.SendStreamAsync(HttpMethod.Put, $"/peer/v1/datasets/{id}",
            new MemoryStream(dataset), dataset.Length, new string('0', 64), (identity.PartyId, identity.Key), TestContext.Current.CancellationToken));

        Assert.Equal(("dataset-header-mismatch", 400), (e.Code, e.Status));
        Assert.False(File.Exists(Path.Combine(f.Work, "party2", "inbox", $"{id}.tsds")));
        Assert.False(File.Exists(Path.Combine(f.Work, "party2", "inbox", $"{id}.tsds.partial")));
    }
}
