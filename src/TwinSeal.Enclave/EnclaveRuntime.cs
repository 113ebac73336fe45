using System.Buffers;
using System.Diagnostics;
using TwinSeal.Attestation.Sim;
using TwinSeal.Crypto;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Enclave;

/// <summary>Where the isolated area finds its platform.</summary>
/// <param name="DeviceDirectory">The simulated device's attestation key and certificate (with <c>sim</c>).</param>
/// <param name="Tee">Evidence backend: <c>sim</c> (default), <c>amd-sev-snp</c> or <c>intel-tdx</c> (Linux configfs-tsm in the guest), <c>aws-nitro</c> (/dev/nsm).</param>
public sealed record EnclaveOptions(string DeviceDirectory, string Tee = "sim");

/// <summary>
/// The isolated-area process (SIMULATED TEE): measures its image and loads the app from the measured bytes, runs the
/// platform self-tests, makes an ephemeral key pair, then serves its host's commands over the local channel
/// (stdin/stdout frames). The host sees evidence, ciphertext and released results; never the data key or the other
/// party's plaintext.
/// </summary>
public sealed class EnclaveRuntime : IDisposable
{
    private readonly EnclaveImage _image;
    private readonly AppBundle _bundle;
    private readonly EphemeralKeyPair _keyPair = new();
    private readonly SortedDictionary<string, string> _tests;
    private readonly IEvidenceSource _source;
    private readonly EvidenceAcquisition _evidence;
    private readonly EncryptionUnit _encryption;
    private readonly TableStorage _storage = new();
    private readonly Task _appChecked;

    /// <summary>Starts the isolated area on a measured <paramref name="image"/>: app, self-tests, key pair.</summary>
    public EnclaveRuntime(EnclaveOptions options, EnclaveImage image, TimeProvider? clock = null)
    {
        _image = image;
        // A first look before the host sends anything: what it undoes before its first command is still recorded.
        _ = CurrentMeasurement;
        _bundle = image.LoadApp();
        _tests = PlatformSelfTests.Run();
        _source = CreateSource(options, clock ?? TimeProvider.System);
        // On TDX the image reaches the quote through RTMR3, recorded before any evidence can be made.
        if (options.Tee == "intel-tdx") Hardware.TdxImageRegister.Extend(image.Measurement);
        _evidence = new EvidenceAcquisition(_source, _bundle.App.Name, () => CurrentMeasurement, _tests, _keyPair.PublicKey);
        _encryption = new EncryptionUnit(_keyPair);
        // In the background: the host's first commands (describe, attest, load) need no app.
        _appChecked = Task.Run(() => AppKnownAnswer.Check(_bundle.App));
        ProtocolJson.WarmInBackground();
    }

    // Read afresh for every report: code loaded after start must show in the next evidence, not only in the first.
    private string CurrentMeasurement => _image.CurrentMeasurement(line => Console.Error.WriteLine($"enclave: {line}"));

    /// <summary>Serves frames until the host closes the channel.</summary>
    public async Task ServeAsync(Stream input, Stream output, CancellationToken ct = default)
    {
        while (await EnclaveFrame.ReadHeaderAsync(input, ct).ConfigureAwait(false) is { } frame)
        {
            EnclaveReply reply;
            ReadOnlyMemory<byte> body = default;
            var incoming = new BoundedReadStream(input, frame.BodyLength);
            try
            {
                var command = ProtocolJson.Parse<EnclaveCommand>(frame.Header, "enclave command");
                if (command is EncryptTable enc)
                {
                    await incoming.DrainAsync(ct).ConfigureAwait(false);
                    using var pending = PrepareEncryption(enc, out var manifest);
                    // Everything that can fail has been checked: from here the reply streams, segment by segment. The
                    // manifest (the plaintext's digest and size) stays inside the stream; the host gets the id and row count.
                    var sealedDataset = new SealedDataset(manifest.DatasetId, manifest.RowCount);
                    await EnclaveFrame.WriteHeaderAsync(output, enc.Answer(sealedDataset).ToHeader(), pending.Length, ct).ConfigureAwait(false);
                    try
                    {
                        await pending.WriteToAsync(output, ct).ConfigureAwait(false);
                        await output.FlushAsync(ct).ConfigureAwait(false);
                    }
                    catch (Exception e)
                    {
                        // Half a body is on the channel: no reply can follow it, so the isolated area stops and the host reports that.
                        throw new InvalidOperationException("The isolated area failed while streaming a dataset.", e);
                    }
                    continue;
                }
                (reply, body) = command switch
                {
                    ComputeOnDataset compute => await ComputeAsync(compute, incoming).ConfigureAwait(false),
                    LoadTable { Format: TableFormat.Csv } load => (load.Answer(await LoadCsvAsync(load, incoming, ct).ConfigureAwait(false)), default),
                    _ => await HandleAsync(command, await ReadAllAsync(incoming, ct).ConfigureAwait(false)).ConfigureAwait(false),
                };
            }
            catch (ProtocolException e)
            {
                reply = Fail(e.Code, e.Message);
            }
            catch (Exception e) when (e is not OperationCanceledException && e.Message != "The isolated area failed while streaming a dataset.")
            {
                // Neither the reply nor the log (which the host reads) gets the exception message: it could carry data.
                Console.Error.WriteLine($"enclave: {e.GetType().FullName}{Environment.NewLine}{e.StackTrace}");
                reply = Fail("enclave-error", $"The isolated area failed ({e.GetType().Name}); see its log.");
            }
            // Whatever a failed command left unread of its body is skipped, so the channel stays in step.
            await incoming.DrainAsync(ct).ConfigureAwait(false);
            await EnclaveFrame.WriteHeaderAsync(output, reply.ToHeader(), body.Length, ct).ConfigureAwait(false);
            await output.WriteAsync(body, ct).ConfigureAwait(false);
            await output.FlushAsync(ct).ConfigureAwait(false);
        }
    }

    private PendingEncryption PrepareEncryption(EncryptTable enc, out DatasetManifest manifest)
    {
        var (table, sha) = _storage.Get(enc.Table);
        AgreedSchema.Check(enc.Key.Policy, enc.Key.PartyId, table, $"table '{enc.Table}'");
        manifest = new DatasetManifest(enc.DatasetId, enc.Key.PartyId, CurrentMeasurement, table.Columns, table.RowCount, sha, table.Csv.Length);
        return _encryption.PrepareEncryption(enc.Key, manifest, table.Csv);
    }

    // A CSV file is read into a memory-only file and, when kept byte for byte, stored there: the engine reads it where it
    // lies (MemoryFile), instead of a copy of it for every computation.
    private async Task<LoadTableResult> LoadCsvAsync(LoadTable load, BoundedReadStream body, CancellationToken ct)
    {
        var length = FileLength(body);
        var file = PlaintextBuffer.Allocate(length);
        try
        {
            if (length > 0)
            {
                IBufferWriter<byte> writer = file;
                await body.ReadExactlyAsync(writer.GetMemory(length)[..length], ct).ConfigureAwait(false);
                writer.Advance(length);
            }
        }
        catch
        {
            file.Wipe();
            throw;
        }
        return await TableLoader.LoadAsync(_storage, load, file.Written, file, ct).ConfigureAwait(false);
    }

    private static int FileLength(BoundedReadStream body) => body.Length <= Array.MaxLength
        ? (int)body.Length
        : throw new ProtocolException("table-too-large", $"The file is {body.Length} bytes; the isolated area holds a table of at most {Array.MaxLength} bytes.");

    private static async Task<byte[]> ReadAllAsync(BoundedReadStream body, CancellationToken ct)
    {
        var bytes = body.Length == 0 ? [] : GC.AllocateUninitializedArray<byte>(FileLength(body));
        await body.ReadExactlyAsync(bytes, ct).ConfigureAwait(false);
        return bytes;
    }

    private static IEvidenceSource CreateSource(EnclaveOptions options, TimeProvider clock) => options.Tee switch
    {
        "sim" => new SimEvidenceSource(SimAttester.Load(options.DeviceDirectory), clock),
        "amd-sev-snp" or "intel-tdx" => Directory.Exists(Hardware.ConfigfsTsmEvidenceSource.DefaultReportRoot)
            ? new Hardware.ConfigfsTsmEvidenceSource(options.Tee)
            : throw new InvalidOperationException($"{options.Tee} evidence needs Linux configfs-tsm ({Hardware.ConfigfsTsmEvidenceSource.DefaultReportRoot}); this machine is not such a confidential guest."),
        "aws-nitro" => new Hardware.NitroNsmEvidenceSource(),
        _ => throw new InvalidOperationException($"Unknown TEE backend '{options.Tee}' (sim, amd-sev-snp, intel-tdx, aws-nitro)."),
    };

    private static EnclaveReply Fail(string code, string message) => new EnclaveRefusal(new EnclaveError(code, message));

    private async Task<(EnclaveReply, ReadOnlyMemory<byte>)> HandleAsync(EnclaveCommand command, byte[] body)
    {
        switch (command)
        {
            case DescribeEnclave describe:
                return (describe.Answer(new EnclaveDescription(_source.Platform, _source.Simulated, CurrentMeasurement, _tests, _bundle.App.Name, _keyPair.PublicKey)), default);
            case LoadTable load:
                return (load.Answer(await TableLoader.LoadAsync(_storage, load, body).ConfigureAwait(false)), default);
            case Attest attest:
                return (attest.Answer(_evidence.Attest(attest.Nonce)), default);
            case ComputeOnDataset compute:
                return await ComputeAsync(compute, new MemoryStream(body, writable: false)).ConfigureAwait(false);
            default:
                throw new ProtocolException("unknown-command", "The isolated area does not know this command.");
        }
    }

    private async Task<(EnclaveReply, ReadOnlyMemory<byte>)> ComputeAsync(ComputeOnDataset compute, Stream ciphertext)
    {
        await AppCheckedAsync().ConfigureAwait(false);
        var timings = new Dictionary<string, double>(StringComparer.Ordinal);
        var sw = Stopwatch.StartNew();
        var own = _storage.Get(compute.OwnTable).Table;
        // The app reads its own table into its engine while the other party's dataset is still arriving.
        using var begun = _bundle.App.Begin(new AppStart(own, compute.Key.Policy.Output, compute.Key.PartyId));
        // Segments are decrypted as they arrive: the host may still be receiving the rest of the dataset.
        // The other party's table is read where it was decrypted; the buffer is wiped once the computation is done (or
        // refused), or earlier, when the app says its engine has its own copy.
        using var plaintext = await _encryption.DecryptStreamAsync(compute.Key, compute.DatasetId, ciphertext).ConfigureAwait(false);
        timings["decrypt"] = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        var (manifest, peer) = VerificationUnit.Verify(plaintext.Written, compute.DatasetId, compute.Key.Policy);
        timings["verify"] = sw.Elapsed.TotalMilliseconds;
        if (manifest.SenderParty == compute.Key.PartyId)
            throw new ProtocolException("dataset-rejected", "The received dataset was encrypted by this same party; a match needs the other party's data.");
        AgreedSchema.Check(compute.Key.Policy, compute.Key.PartyId, own, $"table '{compute.OwnTable}'");
        AgreedSchema.Check(compute.Key.Policy, manifest.SenderParty, peer, "the received dataset");
        sw.Restart();
        var output = _bundle.App.Run(new AppInput(own, peer, compute.Key.Policy.Output, compute.Key.PartyId, manifest.SenderParty, compute.Analysis) { ReleasePeer = plaintext.Wipe, Begun = begun });
        timings["compute"] = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        // The released table's CSV form as the app made it (the engine writes it as CSV): sent without another copy.
        var released = output.Rows is null ? default : output.Rows.Csv;
        timings["encode"] = sw.Elapsed.TotalMilliseconds;
        // Only what the app released, and what the recipient knows already: no count, size or digest of the other party's table.
        var outcome = new ComputationOutcome(compute.Key.Policy.Output.Computation, compute.Key.Policy.Output.Result, output.DistinctMatchedKeys, output.SkippedEmptyKeys,
            own.RowCount, output.PeerRows, manifest.DatasetId, manifest.SenderParty, timings, output.Noise);
        return (compute.Answer(outcome), released);
    }

    private async Task AppCheckedAsync()
    {
        try
        {
            await _appChecked.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The known-answer tables are fixed, so the message carries no party's data.
            Console.Error.WriteLine($"enclave: the app's known-answer test failed: {e.GetType().Name}: {e.Message}");
            throw new ProtocolException("app-self-test-failed", "The measured app gave a wrong answer on its fixed known-answer tables in this isolated area; it computes nothing here. See the isolated area's log.");
        }
    }

    /// <inheritdoc />
    public void Dispose() => _keyPair.Dispose();

    /// <summary>Process entry: serve stdin/stdout; diagnostics go to stderr so they never corrupt the channel.</summary>
    public static async Task<int> RunProcessAsync(EnclaveOptions options)
    {
        EnclaveRuntime runtime;
        try
        {
            runtime = new EnclaveRuntime(options, EnclaveImage.OfRunningProcess());
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            Console.Error.WriteLine($"twinseal enclave ({(options.Tee == "sim" ? "SIMULATED TEE" : options.Tee)}): cannot start: {e.Message}");
            return 2;
        }
        using (runtime)
        {
            using var stdin = Console.OpenStandardInput();
            using var stdout = Console.OpenStandardOutput();
            await runtime.ServeAsync(stdin, stdout).ConfigureAwait(false);
        }
        return 0;
    }
}
