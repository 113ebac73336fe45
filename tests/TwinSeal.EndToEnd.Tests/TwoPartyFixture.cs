using TwinSeal.Attestation.Sim;
using TwinSeal.Cli.Demo;
using TwinSeal.Kms;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.EndToEnd.Tests;

/// <summary>
/// A KMS and two party hosts started in this process (each host still starts its isolated area as a separate
/// process), with a key whose authority both parties set, and a table loaded on each side.
/// </summary>
public class TwoPartyFixture : IAsyncLifetime
{
    public string Work { get; } = Path.Combine(Path.GetTempPath(), "twinseal-2p-" + Guid.NewGuid().ToString("N")[..8]);
    public KmsServer Kms { get; private set; } = null!;
    public PartyHost Party1 { get; private set; } = null!;
    public PartyHost Party2 { get; private set; } = null!;
    public ControlClient Control1 { get; private set; } = null!;
    public ControlClient Control2 { get; private set; } = null!;
    public string KeyId { get; private set; } = "";
    public const int SharedRows = 40;
    public string KmsDirectory => Path.Combine(Work, "kms");
    /// <summary>Party 1's import folder (party serve --import-dir); party 2's host has none.</summary>
    public string Party1Imports => Path.Combine(Work, "party1-imports");
    /// <summary>The tables loaded as party 1's "customers" and party 2's "subscribers".</summary>
    public GeneratedData Data { get; private set; } = null!;
    /// <summary>A registered party outside this fixture's key that shares another key with party 2, so party 2's host knows it.</summary>
    public const string Outsider = "party3";
    /// <summary>A registered party that shares no key with anyone here: no host can even look it up.</summary>
    public const string Stranger = "party4";

    public async ValueTask InitializeAsync()
    {
        var root = SimPlatform.EnsureRoot(Path.Combine(Work, "sim"));
        foreach (var p in new[] { "party1", "party2" })
        {
            SimPlatform.ProvisionDevice(Path.Combine(Work, "sim"), Path.Combine(Work, p + "-device"), p);
            PartyIdentity.Init(Path.Combine(Work, p), p).Dispose();
        }
        Kms = await KmsServer.StartAsync(new KmsOptions { DataDirectory = KmsDirectory, TrustedSimulatedRoots = [root], AcceptSimulatedEvidence = true });
        // What 'twinseal kms serve' writes, so that 'twinseal kms invite --kms-data-dir' finds this KMS.
        ServiceEndpointFile.Write(KmsDirectory, Kms.Endpoint);
        // Two more registered parties that this fixture's key does not name: they can sign, but are outside it.
        foreach (var other in new[] { Outsider, Stranger })
        {
            using var identity = PartyIdentity.Init(Path.Combine(Work, other), other);
            using var kms = new KmsClient(Kms.Endpoint, identity.PartyId, identity.Key);
            using var admin = KmsAdminClient.ForDataDirectory(KmsDirectory);
            await kms.RegisterAsync((await admin.InviteAsync(other)).Token);
        }
        Directory.CreateDirectory(Party1Imports);
        Party1 = await StartHostAsync("party1");
        Party2 = await StartHostAsync("party2");
        Control1 = new ControlClient(Party1.Endpoint, Token("party1"));
        Control2 = new ControlClient(Party2.Endpoint, Token("party2"));
        using (var admin = KmsAdminClient.ForDataDirectory(KmsDirectory))
        {
            await Control1.PostAsync<PartyInfo>("/register", new RegisterCommand((await admin.InviteAsync("party1")).Token));
            await Control2.PostAsync<PartyInfo>("/register", new RegisterCommand((await admin.InviteAsync("party2")).Token));
        }
        KeyId = (await Control1.PostAsync<KeyInfo>("/keys", new CreateKeyCommand("e2e"))).KeyId;
        var e1 = await Control1.GetAsync<EnclaveDescription>("/enclave");
        var e2 = await Control2.GetAsync<EnclaveDescription>("/enclave");
        var policy = new AuthorityPolicy(
            [new UsageGrant("party1", new ReferenceValues(e1.Platform, [e1.Measurement], e1.PlatformTests)),
             new UsageGrant("party2", new ReferenceValues(e2.Platform, [e2.Measurement], e2.PlatformTests))],
            ["party1", "party2"], ChangeMethod.AllParties, new OutputPolicy("secure-match", "email", ResultKind.MatchCount, "party2"));
        var proposal = await Control1.PostAsync<ProposalStatus>("/proposals", new ProposeCommand(KeyId, 0, policy));
        await Control2.PostAsync<ProposalStatus>("/approvals", new ApproveCommand(KeyId, proposal.ProposalId, proposal.ProposalHash));
        await ShareAnotherKeyAsync(Outsider, "party2", new ReferenceValues(e2.Platform, [e2.Measurement], e2.PlatformTests));
        Data = DataGenerator.Generate(Path.Combine(Work, "data"), 100, SharedRows / 100.0, 3);
        await Control1.PutAsync<LoadTableResult>("/tables/customers", await File.ReadAllBytesAsync(Data.Party1Csv));
        await Control2.PutAsync<LoadTableResult>("/tables/subscribers", await File.ReadAllBytesAsync(Data.Party2Csv));
    }

    // Reads are scoped: a host finds another party's public key only when the two share a key.
    private async Task ShareAnotherKeyAsync(string creator, string partner, ReferenceValues reference)
    {
        using var identity = PartyIdentity.Load(Path.Combine(Work, creator));
        using var kms = new KmsClient(Kms.Endpoint, creator, identity.Key);
        var key = (await kms.CreateKeyAsync($"{creator} and {partner}")).KeyId;
        var policy = new AuthorityPolicy([new UsageGrant(partner, reference), new UsageGrant(creator, reference)],
            [partner, creator], ChangeMethod.AllParties, new OutputPolicy("secure-match", "email", ResultKind.MatchCount, partner));
        var proposal = await kms.ProposeAsync(key, new ChangeProposal(0, policy));
        await Control2.PostAsync<ProposalStatus>("/approvals", new ApproveCommand(key, proposal.ProposalId, proposal.ProposalHash));
    }

    private Task<PartyHost> StartHostAsync(string party) => PartyHost.StartAsync(new PartyHostOptions
    {
        PartyDirectory = Path.Combine(Work, party),
        DeviceDirectory = Path.Combine(Work, party + "-device"),
        EnclaveImageDirectory = CliUnderTest.EnclaveImage,
        Kms = Kms.Endpoint,
        PeerLimits = PeerLimits(party),
        InboxWriteStream = InboxWriteStream(party),
        ImportDirectory = party == "party1" ? Party1Imports : null,
    });

    /// <summary>What <paramref name="party"/>'s host writes uploads through into its inbox file: the file itself, as by default, unless a derived fixture injects a fault.</summary>
    protected virtual Func<Stream, Stream> InboxWriteStream(string party) => file => file;

    /// <summary>The per-sender limits of <paramref name="party"/>'s peer API: the defaults, unless a derived fixture tightens them.</summary>
    protected virtual PeerUploadLimits PeerLimits(string party) => new();

    public string Token(string party) => File.ReadAllText(Path.Combine(Work, party, "control.token")).Trim();

    /// <summary>A raw HTTPS client for requests <see cref="ControlClient"/> would not send, pinned to <paramref name="ep"/>'s certificate.</summary>
    public static HttpClient PinnedClient(ServiceEndpoint ep)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, _) =>
            cert is not null && Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(cert.GetRawCertData())) == ep.Fingerprint;
        return new HttpClient(handler);
    }

    /// <summary>Party 1 encrypts its table and sends it to party 2; returns the dataset id and the path of party 2's received copy.</summary>
    public async Task<(Guid DatasetId, string InboxPath)> SendAsync()
    {
        var sent = await Control1.PostAsync<SendTableResult>("/send", new SendTableCommand(KeyId, "customers", Party2.Endpoint.Url, Party2.Endpoint.Fingerprint));
        return (sent.DatasetId, Path.Combine(Work, "party2", "inbox", $"{sent.DatasetId}.tsds"));
    }

    /// <summary>
    /// Uploads a dataset to <paramref name="to"/>'s peer API exactly as a host does (signed by <paramref name="party"/>
    /// over the dataset header), sealed under a throwaway data key: hosts never decrypt, so it passes as any dataset would.
    /// </summary>
    public async Task<DatasetReceipt> UploadAsAsync(string party, PartyHost to, string keyId, Guid datasetId, int plaintextBytes = 64)
    {
        using var identity = PartyIdentity.Load(Path.Combine(Work, party));
        var dataset = Dataset(keyId, datasetId, plaintextBytes);
        using var peer = new RemoteClient(to.Endpoint);
        return ProtocolJson.Parse<DatasetReceipt>(await peer.SendStreamAsync(HttpMethod.Put, $"/peer/v1/datasets/{datasetId}",
            new MemoryStream(dataset), dataset.Length, HeaderSha256(dataset), (identity.PartyId, identity.Key), TestContext.Current.CancellationToken), "receipt");
    }

    /// <summary>A dataset stream under <paramref name="keyId"/> version 1, sealed with a throwaway data key.</summary>
    public static byte[] Dataset(string keyId, Guid datasetId, int plaintextBytes)
    {
        using var key = TwinSeal.Crypto.DataKey.Generate();
        return TwinSeal.Crypto.DatasetStream.Encrypt(key, new TwinSeal.Crypto.DatasetStreamHeader(datasetId, keyId, 1), new byte[plaintextBytes]);
    }

    /// <summary>What a sender signs for a dataset upload: the SHA-256 of its stream header.</summary>
    public static string HeaderSha256(byte[] dataset)
        => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(dataset.AsSpan(0, TwinSeal.Crypto.DatasetStream.EncodedHeaderLength(TwinSeal.Crypto.DatasetStream.ReadHeader(dataset)))));

    /// <summary>Every file in <paramref name="party"/>'s inbox that belongs to <paramref name="datasetId"/> (dataset, partial upload, sender record).</summary>
    public IReadOnlyList<string> InboxFiles(string party, Guid datasetId)
        => Directory.EnumerateFiles(Path.Combine(Work, party, "inbox"), $"{datasetId}*").ToList();

    /// <summary>Party 1 creates a key and both parties agree on a policy for it: their isolated areas as reference values, <paramref name="output"/>, and <paramref name="budget"/>.</summary>
    public async Task<string> AgreeKeyAsync(string label, OutputPolicy output, PrivacyBudget? budget = null)
    {
        var key = (await Control1.PostAsync<KeyInfo>("/keys", new CreateKeyCommand(label))).KeyId;
        var e1 = await Control1.GetAsync<EnclaveDescription>("/enclave");
        var e2 = await Control2.GetAsync<EnclaveDescription>("/enclave");
        var policy = new AuthorityPolicy(
            [new UsageGrant("party1", new ReferenceValues(e1.Platform, [e1.Measurement], e1.PlatformTests)),
             new UsageGrant("party2", new ReferenceValues(e2.Platform, [e2.Measurement], e2.PlatformTests))],
            ["party1", "party2"], ChangeMethod.AllParties, output, Budget: budget);
        var p = await Control1.PostAsync<ProposalStatus>("/proposals", new ProposeCommand(key, 0, policy));
        await Control2.PostAsync<ProposalStatus>("/approvals", new ApproveCommand(key, p.ProposalId, p.ProposalHash));
        return key;
    }

    /// <summary>Party 1 encrypts its table <paramref name="table"/> under <paramref name="keyId"/> and sends it to party 2.</summary>
    public async Task<Guid> SendAsync(string keyId, string table)
        => (await Control1.PostAsync<SendTableResult>("/send", new SendTableCommand(keyId, table, Party2.Endpoint.Url, Party2.Endpoint.Fingerprint))).DatasetId;

    /// <summary>The rows of a generated table, header excluded (the generator writes no quoted fields).</summary>
    public static IReadOnlyList<string[]> Rows(string csv) => File.ReadAllLines(csv).Skip(1).Select(l => l.Split(',')).ToList();

    public Task<ComputeResult> ComputeAsync(Guid datasetId) => Control2.PostAsync<ComputeResult>("/compute", new ComputeCommand(KeyId, datasetId, "subscribers"));

    public async ValueTask DisposeAsync()
    {
        Control1?.Dispose();
        Control2?.Dispose();
        if (Party1 is not null) await Party1.DisposeAsync();
        if (Party2 is not null) await Party2.DisposeAsync();
        if (Kms is not null) await Kms.DisposeAsync();
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { }
    }
}
