using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using TwinSeal.Attestation.Sim;
using TwinSeal.Crypto;
using TwinSeal.Kms;
using TwinSeal.Kms.Http;
using TwinSeal.Protocol;

namespace TwinSeal.Party;

/// <summary>Configuration of a party host.</summary>
public sealed class PartyHostOptions
{
    /// <summary>The party folder (identity, inbox, transcript).</summary>
    public required string PartyDirectory { get; init; }
    /// <summary>The simulated device (attestation key) of this party's isolated area.</summary>
    public required string DeviceDirectory { get; init; }
    /// <summary>The enclave image folder (executable and app bundle) the isolated area runs from and measures.</summary>
    public required string EnclaveImageDirectory { get; init; }
    /// <summary>Evidence backend of the isolated area: <c>sim</c> (default), <c>amd-sev-snp</c>, <c>intel-tdx</c>, <c>aws-nitro</c>.</summary>
    public string Tee { get; init; } = "sim";
    /// <summary>The KMS to use; null when this host runs the KMS itself (<see cref="HostedKms"/>).</summary>
    public ServiceEndpoint? Kms { get; init; }
    /// <summary>Set to run the KMS inside this party's device.</summary>
    public KmsOptions? HostedKms { get; init; }
    /// <summary>Loopback port (0 = any free).</summary>
    public int Port { get; init; }
}

/// <summary>
/// The party's transmission/reception controller: the only part of the device that talks to the participant
/// (control API, bearer token), the KMS and the other party (peer API, signed requests). It drives its isolated
/// area over a local channel and never holds the data key or the other party's plaintext.
/// </summary>
public sealed class PartyHost : IAsyncDisposable
{
    private const long MaxDatasetBytes = 4L << 30;
    private readonly WebApplication _app;
    private readonly PartyIdentity _identity;
    private readonly EnclaveProcess _enclave;
    private readonly KmsService? _hostedKms;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _peerRequestIds = new();
    private readonly ConcurrentDictionary<string, ArrivalOrder> _arrivalOrders = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Guid, ArrivalOutcome> _results = new();
    private KmsClient? _kmsClient;
    private EnclaveDescription? _description;

    private PartyHost(WebApplication app, PartyIdentity identity, EnclaveProcess enclave, KmsService? hostedKms, ServiceEndpoint endpoint, ServiceEndpoint kms)
    {
        _app = app;
        _identity = identity;
        _enclave = enclave;
        _hostedKms = hostedKms;
        Endpoint = endpoint;
        KmsEndpoint = kms;
    }

    /// <summary>Where this host is reached.</summary>
    public ServiceEndpoint Endpoint { get; }
    /// <summary>The KMS this host uses (itself when it hosts the KMS).</summary>
    public ServiceEndpoint KmsEndpoint { get; }
    private string InboxDirectory => Path.Combine(_identity.Directory, "inbox");
    private string TranscriptDirectory => Path.Combine(_identity.Directory, "transcript");

    /// <summary>Starts the isolated area and the host's HTTPS endpoints; writes <c>endpoint.json</c> into the party folder.</summary>
    public static async Task<PartyHost> StartAsync(PartyHostOptions options)
    {
        if (options.Kms is null == options.HostedKms is null)
            throw new InvalidOperationException("A party host either uses a KMS endpoint or hosts the KMS, not both or neither.");
        var identity = PartyIdentity.Load(options.PartyDirectory);
        var enclave = await EnclaveProcess.StartAsync(options.EnclaveImageDirectory, options.DeviceDirectory, options.Tee).ConfigureAwait(false);
        var cert = TlsIdentity.LoadOrCreate(options.PartyDirectory, $"TwinSeal party host {identity.PartyId}");
        var builder = HttpsLoopbackHost.CreateBuilder(cert, options.Port, MaxDatasetBytes);
        KmsService? hostedKms = null;
        if (options.HostedKms is not null)
        {
            hostedKms = new KmsService(options.HostedKms);
            builder.Services.AddOpenApi();
        }
        var app = builder.Build();
        app.UseProblemResponses();
        if (hostedKms is not null)
        {
            app.MapOpenApi();
            app.MapKms(hostedKms);
        }
        PartyHost? host = null;
        MapControl(app, identity, () => host!);
        MapPeer(app, () => host!);
        await app.StartAsync().ConfigureAwait(false);
        var endpoint = HttpsLoopbackHost.Endpoint(app, cert);
        host = new PartyHost(app, identity, enclave, hostedKms, endpoint, options.Kms ?? endpoint);
        Directory.CreateDirectory(host.InboxDirectory);
        Directory.CreateDirectory(host.TranscriptDirectory);
        ServiceEndpointFile.Write(options.PartyDirectory, endpoint);
        return host;
    }

    /// <summary>Runs until the process is asked to stop.</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    private KmsClient Kms => _kmsClient ??= new KmsClient(KmsEndpoint, _identity.PartyId, _identity.Key);

    private static void MapControl(WebApplication app, PartyIdentity identity, Func<PartyHost> host)
    {
        var g = app.MapGroup("/control/v1").WithTags("Control");
        g.AddEndpointFilter(async (ctx, next) =>
        {
            var auth = ctx.HttpContext.Request.Headers.Authorization.ToString();
            var expected = "Bearer " + identity.ControlToken;
            if (!CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(auth), System.Text.Encoding.UTF8.GetBytes(expected)))
                throw KmsException.Unauthenticated("control-token-required", "The control API needs the party's control token (control.token in the party folder).");
            try
            {
                return await next(ctx);
            }
            catch (RemoteProblemException e)
            {
                throw new KmsException(e.Status is >= 400 and < 500 ? e.Status : 502, e.Code, e.Message);
            }
            catch (ProtocolException e) when (e is not KmsException)
            {
                throw new KmsException(e.Code == "malformed-request" ? 400 : 422, e.Code, e.Message);
            }
        });

        g.MapGet("/enclave", async () => Results.Json(await host().DescribeAsync(), ProtocolJson.Options));
        g.MapPost("/register", async () => Results.Json(await host().Kms.RegisterAsync(), ProtocolJson.Options));
        g.MapPost("/keys", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<CreateKeyCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "create key");
            return Results.Json(await host().Kms.CreateKeyAsync(cmd.Label), ProtocolJson.Options);
        });
        g.MapPost("/proposals", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<ProposeCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 256 * 1024), "proposal");
            return Results.Json(await host().Kms.ProposeAsync(cmd.KeyId, new ChangeProposal(cmd.BaseVersion, cmd.Policy)), ProtocolJson.Options);
        });
        g.MapPost("/approvals", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<ApproveCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "approval");
            return Results.Json(await host().Kms.ApproveAsync(cmd.KeyId, cmd.ProposalId, cmd.ProposalHash), ProtocolJson.Options);
        });
        g.MapGet("/keys/{keyId}", async (string keyId) => Results.Json(await host().Kms.GetKeyAsync(keyId), ProtocolJson.Options));
        g.MapPost("/keys/{keyId}/rotate", async (string keyId) => Results.Json(await host().Kms.RotateKeyAsync(keyId), ProtocolJson.Options));
        g.MapDelete("/keys/{keyId}", async (string keyId) => Results.Json(await host().Kms.DeleteKeyAsync(keyId), ProtocolJson.Options));
        g.MapPost("/keys/{keyId}/deletion/cancel", async (string keyId) => Results.Json(await host().Kms.CancelDeletionAsync(keyId), ProtocolJson.Options));
        g.MapPost("/keys/{keyId}/lifecycle", async (HttpRequest req, string keyId) =>
        {
            var proposal = HttpsLoopbackHost.ParseJson<LifecycleProposal>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "lifecycle proposal");
            return Results.Json(await host().Kms.ProposeLifecycleAsync(keyId, proposal), ProtocolJson.Options);
        });
        g.MapGet("/keys/{keyId}/authority", async (string keyId) => Results.Json(await host().Kms.GetAuthorityAsync(keyId), ProtocolJson.Options));
        g.MapGet("/keys/{keyId}/proposals/{proposalId}", async (string keyId, string proposalId) => Results.Json(await host().Kms.GetProposalAsync(keyId, proposalId), ProtocolJson.Options));
        g.MapGet("/audit", async (long? after) => Results.Json(await host().Kms.AuditAsync(after ?? 0), ProtocolJson.Options));
        g.MapGet("/audit/verify", async () => Results.Json(await host().Kms.VerifyAuditAsync(), ProtocolJson.Options));
        g.MapPut("/tables/{name}", async (HttpRequest req, string name) =>
        {
            // CSV or Parquet, with an optional expected schema and skipBadRows: see TableLoadRequest for the query.
            var load = TableLoadRequest.From(name, req);
            var file = await HttpsLoopbackHost.ReadBodyAsync(req, MaxDatasetBytes);
            var (reply, _) = await host()._enclave.CallAsync(load, file);
            return Results.Json(reply.Loaded, ProtocolJson.Options);
        });
        g.MapPost("/send", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<SendTableCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "send");
            return Results.Json(await host().SendAsync(cmd), ProtocolJson.Options);
        });
        g.MapPost("/arrivals", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<ArrivalCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "arrival order");
            host()._arrivalOrders[cmd.KeyId] = new ArrivalOrder(cmd.KeyId, cmd.OwnTable, cmd.OutputPath, null);
            return Results.Json(cmd, ProtocolJson.Options, statusCode: 202);
        });
        g.MapGet("/results/{id:guid}", (Guid id) =>
        {
            if (!host()._results.TryGetValue(id, out var outcome)) throw KmsException.NotFound("result-not-found", $"No result for dataset {id} (no arrival order matched it, or it has not arrived).");
            if (outcome.Error is { } e) throw new KmsException(422, e.Code, e.Message);
            return Results.Json(outcome.Result, ProtocolJson.Options);
        });
        g.MapPost("/compute", async (HttpRequest req) =>
        {
            var cmd = HttpsLoopbackHost.ParseJson<ComputeCommand>(req, await HttpsLoopbackHost.ReadBodyAsync(req, 64 * 1024), "compute");
            return Results.Json(await host().ComputeAsync(cmd), ProtocolJson.Options);
        });
    }

    private static void MapPeer(WebApplication app, Func<PartyHost> host)
    {
        var g = app.MapGroup("/peer/v1").WithTags("Peer");
        g.MapPut("/datasets/{id:guid}", async (HttpRequest req, Guid id) =>
        {
            var (sender, bodyHash) = await host().AuthenticatePeerAsync(req);
            return Results.Json(await host().ReceiveAsync(req, id, sender, bodyHash), ProtocolJson.Options);
        });
    }

    private async Task<EnclaveDescription> DescribeAsync()
    {
        if (_description is null)
        {
            var (reply, _) = await _enclave.CallAsync(new DescribeEnclave()).ConfigureAwait(false);
            _description = reply.Description!;
        }
        return _description;
    }

    /// <summary>S13–S21 / S26–S31: nonce, evidence, key-use request (kept in the transcript), released key envelope.</summary>
    private async Task<KeyUseResponse> ObtainKeyAsync(string keyId, int? keyVersion, IDictionary<string, double> timings)
    {
        var sw = Stopwatch.StartNew();
        var description = await DescribeAsync().ConfigureAwait(false);
        var nonce = await Kms.NonceAsync().ConfigureAwait(false);
        var (attested, _) = await _enclave.CallAsync(new Attest(nonce.Nonce)).ConfigureAwait(false);
        timings["attest"] = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        var prepared = Kms.PrepareKeyUse(new KeyUseRequest(keyId, nonce.Nonce, attested.Evidence!, description.EnclavePublicKey, keyVersion));
        // The transcript is the party's record of what it asked the KMS; it holds no secret (the key comes back wrapped to the enclave).
        await File.WriteAllBytesAsync(Path.Combine(TranscriptDirectory, $"key-use-{DateTime.UtcNow:yyyyMMddTHHmmssfff}-{Guid.NewGuid():N}.json"), ProtocolJson.Canonical(prepared)).ConfigureAwait(false);
        var released = await Kms.UseKeyAsync(prepared).ConfigureAwait(false);
        timings["key-release"] = sw.Elapsed.TotalMilliseconds;
        return released;
    }

    private async Task<SendTableResult> SendAsync(SendTableCommand cmd)
    {
        var timings = new Dictionary<string, double>(StringComparer.Ordinal);
        var released = await ObtainKeyAsync(cmd.KeyId, null, timings).ConfigureAwait(false);
        var sw = Stopwatch.StartNew();
        var datasetId = Guid.NewGuid();
        using var peer = new RemoteClient(new ServiceEndpoint(cmd.PeerUrl, cmd.PeerFingerprint));
        // The ciphertext goes from the isolated area's channel straight into the upload: this host never holds the dataset.
        return await _enclave.CallWithStreamedReplyAsync(new EncryptTable(cmd.Table, released, datasetId), async (reply, ciphertext, length) =>
        {
            var prefix = new byte[(int)Math.Min(length, 4096)];
            await ciphertext.ReadExactlyAsync(prefix).ConfigureAwait(false);
            var header = DatasetStream.ReadHeader(prefix);
            var headerHash = Convert.ToHexStringLower(SHA256.HashData(prefix.AsSpan(0, DatasetStream.EncodedHeaderLength(header))));
            timings["encrypt"] = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var upload = new TeeReadStream(new ConcatReadStream(prefix, ciphertext), Stream.Null, hash);
            var receipt = ProtocolJson.Parse<DatasetReceipt>(
                await peer.SendStreamAsync(HttpMethod.Put, $"/peer/v1/datasets/{datasetId}", upload, length, headerHash, (_identity.PartyId, _identity.Key)).ConfigureAwait(false),
                "peer receipt");
            if (receipt.Sha256 != Convert.ToHexStringLower(hash.GetHashAndReset()) || receipt.Bytes != length)
                throw new ProtocolException("peer-receipt-mismatch", "The peer acknowledged different bytes than were sent.");
            timings["send"] = sw.Elapsed.TotalMilliseconds;
            return new SendTableResult(datasetId, reply.Manifest!.RowCount, length, new StageTimings(timings));
        }).ConfigureAwait(false);
    }

    private async Task<ComputeResult> ComputeAsync(ComputeCommand cmd)
    {
        var path = Path.Combine(InboxDirectory, $"{cmd.DatasetId}.tsds");
        if (!File.Exists(path)) throw KmsException.NotFound("dataset-not-found", $"No dataset {cmd.DatasetId} has been received.");
        await using var ciphertext = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        var prefix = new byte[(int)Math.Min(ciphertext.Length, 4096)];
        await ciphertext.ReadExactlyAsync(prefix).ConfigureAwait(false);
        ciphertext.Position = 0;
        int keyVersion;
        try
        {
            // The sender may have used an older data key version (before a rotation): ask for that one.
            keyVersion = DatasetStream.ReadHeader(prefix).KeyVersion;
        }
        catch (DatasetIntegrityException e)
        {
            throw new ProtocolException("dataset-rejected", $"The received dataset was rejected: {e.Reason}");
        }
        var timings = new Dictionary<string, double>(StringComparer.Ordinal);
        var released = await ObtainKeyAsync(cmd.KeyId, keyVersion, timings).ConfigureAwait(false);
        // Streamed from the inbox file: the isolated area decrypts segment by segment as it reads.
        var (reply, rows) = await _enclave.CallAsync(new ComputeOnDataset(cmd.OwnTable, released, cmd.DatasetId), ciphertext, ciphertext.Length).ConfigureAwait(false);
        return await FinishComputeAsync(cmd.DatasetId, reply.Outcome!, rows, cmd.OutputPath, timings).ConfigureAwait(false);
    }

    /// <summary>Writes what the policy released (if anything, and if the participant named a file) and assembles the result.</summary>
    private static async Task<ComputeResult> FinishComputeAsync(Guid datasetId, ComputationOutcome outcome, byte[] rows, string? outputPath, Dictionary<string, double> timings)
    {
        foreach (var (k, v) in outcome.Milliseconds) timings[k] = v;
        string? written = null;
        // Whatever table the policy released (joined rows, aggregates) goes to the participant's file.
        if (rows.Length > 0 && outputPath is not null)
        {
            var sw = Stopwatch.StartNew();
            var full = Path.GetFullPath(outputPath);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            // The enclave releases CSV; a .parquet output file gets the same rows as Parquet (TableOutput).
            await WriteDurablyAsync(full, await Enclave.TableOutput.EncodeAsync(full, rows).ConfigureAwait(false)).ConfigureAwait(false);
            written = full;
            timings["write"] = sw.Elapsed.TotalMilliseconds;
        }
        return new ComputeResult(datasetId, outcome.Computation, outcome.Result, outcome.DistinctMatchedKeys, outcome.SkippedEmptyKeys, outcome.OwnRows, outcome.PeerRows,
            written, new StageTimings(timings));
    }

    /// <summary>
    /// Checks the sender's signature before the (possibly large) body is read: the signature covers the SHA-256 of the
    /// dataset's stream header, which the caller compares with the first bytes of the body; the rest is authenticated by
    /// the dataset's AEAD in the isolated area.
    /// </summary>
    private async Task<(string PartyId, string BodyHash)> AuthenticatePeerAsync(HttpRequest req)
    {
        var partyId = req.Headers[SignedRequest.PartyHeader].ToString();
        if (partyId.Length == 0 || new[] { SignedRequest.TimestampHeader, SignedRequest.RequestIdHeader, SignedRequest.SignatureHeader, SignedRequest.DatasetHeaderHashHeader }.Any(h => req.Headers[h].Count != 1))
            throw KmsException.Unauthenticated("unsigned-request", "Peer requests must be signed by the sending party (the TwinSeal signature and dataset-header hash headers).");
        var bodyHash = req.Headers[SignedRequest.DatasetHeaderHashHeader].ToString().ToLowerInvariant();
        if (bodyHash.Length != 64 || !bodyHash.All(Uri.IsHexDigit))
            throw KmsException.Unauthenticated("bad-signature", "The dataset header hash is not a hex SHA-256.");
        PartyInfo peer;
        try
        {
            peer = await Kms.GetPartyAsync(partyId).ConfigureAwait(false);
        }
        catch (RemoteProblemException e) when (e.Status == 404)
        {
            throw KmsException.Unauthenticated("unknown-party", $"Party '{partyId}' is not registered with the KMS.");
        }
        var ts = long.TryParse(req.Headers[SignedRequest.TimestampHeader], out var t) ? t : -1;
        var requestId = req.Headers[SignedRequest.RequestIdHeader].ToString();
        byte[] sig;
        try
        {
            sig = System.Buffers.Text.Base64Url.DecodeFromChars(req.Headers[SignedRequest.SignatureHeader].ToString());
        }
        catch (FormatException)
        {
            throw KmsException.Unauthenticated("bad-signature", "The signature is not base64url.");
        }
        var input = SignedRequest.SigningInput(req.Method, req.Path + req.QueryString, partyId, ts, requestId, bodyHash);
        if (!PartyPublicKey.FromSubjectPublicKeyInfo(peer.PublicKey).Verify(input, sig))
            throw KmsException.Unauthenticated("bad-signature", $"The signature does not verify with party '{partyId}''s registered key.");
        var now = DateTimeOffset.UtcNow;
        if ((now - DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(ts, 0, 253402300799))).Duration() > SignedRequest.MaxClockSkew)
            throw KmsException.Unauthenticated("stale-request", "The peer request's timestamp is too far from this host's clock.");
        foreach (var old in _peerRequestIds.Where(kv => now - kv.Value > 2 * SignedRequest.MaxClockSkew).Select(kv => kv.Key).ToList()) _peerRequestIds.TryRemove(old, out _);
        if (requestId.Length is < 16 or > 64 || !_peerRequestIds.TryAdd(partyId + "/" + requestId, now))
            throw KmsException.Unauthenticated("replayed-request", "This peer request id was already used.");
        if (partyId == _identity.PartyId) throw KmsException.Forbidden("self-send", "A party cannot send a dataset to itself.");
        return (partyId, bodyHash);
    }

    /// <summary>
    /// Receives a dataset as it streams in: written to the inbox (durably, renamed into place only once complete and
    /// matching the signed hash) and, when the participant left an arrival order for its key, fed at the same time into
    /// the isolated area, which decrypts and verifies segment by segment while the sender is still sending.
    /// </summary>
    private async Task<DatasetReceipt> ReceiveAsync(HttpRequest req, Guid id, string sender, string declaredHash)
    {
        var length = req.ContentLength ?? throw new KmsException(411, "length-required", "A dataset upload must state its Content-Length.");
        if (length > MaxDatasetBytes) throw new KmsException(413, "body-too-large", $"The dataset is larger than {MaxDatasetBytes} bytes.");
        var path = Path.Combine(InboxDirectory, $"{id}.tsds");
        if (File.Exists(path)) throw KmsException.Conflict("dataset-exists", $"Dataset {id} was already received.");
        var partial = path + ".partial";
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        try
        {
            await using (var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                var incoming = new TeeReadStream(new BoundedReadStream(req.Body, length), file, hash);
                var prefix = new byte[(int)Math.Min(length, 4096)];
                await incoming.ReadExactlyAsync(prefix).ConfigureAwait(false);
                CheckSignedHeader(prefix, declaredHash);
                var rest = new ConcatReadStream(prefix, incoming);
                var order = TryTakeArrivalOrder(prefix);
                if (order is null)
                    await rest.CopyToAsync(Stream.Null).ConfigureAwait(false);
                else
                    _results[id] = await ComputeOnArrivalAsync(order, id, rest, length).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }
        }
        catch
        {
            // Nothing half-received stays behind: the next attempt starts clean.
            File.Delete(partial);
            throw;
        }
        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        File.Move(partial, path);
        await File.WriteAllTextAsync(path + ".from", sender).ConfigureAwait(false);
        return new DatasetReceipt(id, length, actual);
    }

    /// <summary>The upload must start with the dataset header the sender signed; otherwise nothing is stored.</summary>
    private static void CheckSignedHeader(byte[] prefix, string declaredHash)
    {
        int headerLength;
        try
        {
            headerLength = DatasetStream.EncodedHeaderLength(DatasetStream.ReadHeader(prefix));
        }
        catch (DatasetIntegrityException e)
        {
            throw KmsException.BadRequest("dataset-rejected", $"The upload does not start with a dataset header: {e.Reason}");
        }
        if (Convert.ToHexStringLower(SHA256.HashData(prefix.AsSpan(0, headerLength))) != declaredHash)
            throw KmsException.BadRequest("dataset-header-mismatch", "The dataset header received differs from the one the sender signed.");
    }

    private ArrivalOrder? TryTakeArrivalOrder(byte[] prefix)
    {
        try
        {
            var header = DatasetStream.ReadHeader(prefix);
            return _arrivalOrders.TryRemove(header.KeyId, out var order) ? order with { KeyVersion = header.KeyVersion } : null;
        }
        catch (DatasetIntegrityException)
        {
            // Not a readable dataset header: stored as received; the isolated area will say what is wrong with it.
            return null;
        }
    }

    private async Task<ArrivalOutcome> ComputeOnArrivalAsync(ArrivalOrder order, Guid id, Stream ciphertext, long length)
    {
        var timings = new Dictionary<string, double>(StringComparer.Ordinal);
        try
        {
            var released = await ObtainKeyAsync(order.KeyId, order.KeyVersion, timings).ConfigureAwait(false);
            var sw = Stopwatch.StartNew();
            var (reply, rows) = await _enclave.CallAsync(new ComputeOnDataset(order.OwnTable, released, id), ciphertext, length).ConfigureAwait(false);
            timings["receive+decrypt+compute"] = sw.Elapsed.TotalMilliseconds;
            return new ArrivalOutcome(await FinishComputeAsync(id, reply.Outcome!, rows, order.OutputPath, timings).ConfigureAwait(false), null);
        }
        catch (ProtocolException e)
        {
            // The rest of the upload still has to be stored (and hash-checked) even though the computation failed.
            await ciphertext.CopyToAsync(Stream.Null).ConfigureAwait(false);
            return new ArrivalOutcome(null, new EnclaveError(e.Code, e.Message));
        }
    }

    /// <summary>Write-then-rename with fsync, so a crash leaves either the whole file or none.</summary>
    private static async Task WriteDurablyAsync(string path, byte[] bytes)
    {
        var tmp = path + ".partial";
        await using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
        {
            await fs.WriteAsync(bytes).ConfigureAwait(false);
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        await _enclave.DisposeAsync().ConfigureAwait(false);
        _kmsClient?.Dispose();
        _hostedKms?.Dispose();
        _identity.Dispose();
    }
}

/// <summary>A participant's standing order: compute on the next dataset that arrives under this key, while it arrives.</summary>
internal sealed record ArrivalOrder(string KeyId, string OwnTable, string? OutputPath, int? KeyVersion);

/// <summary>What a computation on arrival produced: a result, or the isolated area's refusal.</summary>
internal sealed record ArrivalOutcome(ComputeResult? Result, EnclaveError? Error);

/// <summary>The <c>endpoint.json</c> a running service writes into its folder, so others can find and pin it.</summary>
public static class ServiceEndpointFile
{
    /// <summary>File name.</summary>
    public const string FileName = "endpoint.json";

    /// <summary>Writes the endpoint atomically.</summary>
    public static void Write(string directory, ServiceEndpoint endpoint)
    {
        var path = Path.Combine(directory, FileName);
        File.WriteAllBytes(path + ".tmp", ProtocolJson.Canonical(endpoint));
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Reads an endpoint file, or null if it is not there yet.</summary>
    public static ServiceEndpoint? TryRead(string directory)
    {
        var path = Path.Combine(directory, FileName);
        return File.Exists(path) ? ProtocolJson.Parse<ServiceEndpoint>(File.ReadAllBytes(path), path) : null;
    }

    /// <summary>Deletes a stale endpoint file before a service starts.</summary>
    public static void Clear(string directory) => File.Delete(Path.Combine(directory, FileName));
}
