using System.Diagnostics;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using TwinSeal.Attestation.Sim;
using TwinSeal.Cli.Demo;
using TwinSeal.Enclave;
using TwinSeal.Kms;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.EndToEnd.Tests;

/// <summary>
/// A KMS (in this process) and a key whose policy registers the genuine enclave image for party 1, as an attacker finds
/// it. Each test then starts isolated areas as real processes — through a real party host, or directly, as a party that
/// controls its machine would — and asks the KMS for the key with what they report.
/// </summary>
public sealed class MeasuredImageFixture : IAsyncLifetime
{
    public string Work { get; } = Path.Combine(Path.GetTempPath(), "twinseal-image-" + Guid.NewGuid().ToString("N")[..8]);
    public KmsServer Kms { get; private set; } = null!;
    public string KeyId { get; private set; } = "";
    public string RegisteredMeasurement { get; private set; } = "";
    public string Device => Path.Combine(Work, "party1-device");
    private PartyIdentity _party1 = null!;

    public async ValueTask InitializeAsync()
    {
        var root = SimPlatform.EnsureRoot(Path.Combine(Work, "sim"));
        foreach (var p in new[] { "party1", "party2" })
        {
            SimPlatform.ProvisionDevice(Path.Combine(Work, "sim"), Path.Combine(Work, p + "-device"), p);
            PartyIdentity.Init(Path.Combine(Work, p), p).Dispose();
        }
        var kmsDirectory = Path.Combine(Work, "kms");
        Kms = await KmsServer.StartAsync(new KmsOptions { DataDirectory = kmsDirectory, TrustedSimulatedRoots = [root], AcceptSimulatedEvidence = true });
        ServiceEndpointFile.Write(kmsDirectory, Kms.Endpoint);
        _party1 = PartyIdentity.Load(Path.Combine(Work, "party1"));
        using var party2 = PartyIdentity.Load(Path.Combine(Work, "party2"));
        using var k1 = new KmsClient(Kms.Endpoint, "party1", _party1.Key);
        using var k2 = new KmsClient(Kms.Endpoint, "party2", party2.Key);
        using (var admin = KmsAdminClient.ForDataDirectory(kmsDirectory))
        {
            await k1.RegisterAsync((await admin.InviteAsync("party1")).Token);
            await k2.RegisterAsync((await admin.InviteAsync("party2")).Token);
        }
        KeyId = (await k1.CreateKeyAsync("measured image")).KeyId;

        await using var genuine = await EnclaveProcess.StartAsync(CliUnderTest.EnclaveImage, Device);
        var d = await DescribeAsync(genuine);
        RegisteredMeasurement = d.Measurement;
        var reference = new ReferenceValues(d.Platform, [d.Measurement], d.PlatformTests);
        var policy = new AuthorityPolicy([new UsageGrant("party1", reference), new UsageGrant("party2", reference)],
            ["party1", "party2"], ChangeMethod.AllParties, new OutputPolicy("secure-match", "email", ResultKind.MatchCount, "party2"));
        var proposal = await k1.ProposeAsync(KeyId, new ChangeProposal(0, policy));
        await k2.ApproveAsync(KeyId, proposal.ProposalId, proposal.ProposalHash);
    }

    public static async Task<EnclaveDescription> DescribeAsync(EnclaveProcess enclave)
        => (await enclave.CallAsync(new DescribeEnclave())).Reply;

    /// <summary>What the host does at S13–S21 for party 1: nonce, evidence, key-use request. Returns the refusal code, or null when released.</summary>
    public async Task<string?> AskForTheKeyAsync(EnclaveProcess enclave)
    {
        using var kms = new KmsClient(Kms.Endpoint, "party1", _party1.Key);
        var nonce = await kms.NonceAsync();
        var evidence = (await enclave.CallAsync(new Attest(nonce.Nonce))).Reply;
        var publicKey = (await DescribeAsync(enclave)).EnclavePublicKey;
        try
        {
            await kms.UseKeyAsync(kms.PrepareKeyUse(new KeyUseRequest(KeyId, nonce.Nonce, evidence, publicKey)));
            return null;
        }
        catch (RemoteProblemException e)
        {
            return e.Code;
        }
    }

    /// <summary>A fresh folder under the fixture's work folder.</summary>
    public string NewDirectory(string name) => Directory.CreateDirectory(Path.Combine(Work, name + "-" + Guid.NewGuid().ToString("N")[..6])).FullName;

    /// <summary>A byte-for-byte copy of the genuine image, to tamper with.</summary>
    public string CopyOfTheImage()
    {
        var to = NewDirectory("image");
        AttackerCopies.CopyImage(CliUnderTest.EnclaveImage, to);
        return to;
    }

    /// <summary>A party host started as its own process by the real CLI, with party 1's identity and extra environment variables.</summary>
    public async Task<ServiceProcess> StartHostAsync(IReadOnlyDictionary<string, string> environment)
    {
        var dir = NewDirectory("party1-host");
        AttackerCopies.CopyIdentity(Path.Combine(Work, "party1"), dir);
        return await ServiceProcess.StartAsync("party1-host", CliUnderTest.Launch,
            ["party", "serve", "--dir", dir, "--device", Device, "--enclave-image", CliUnderTest.EnclaveImage, "--port", "0", "--kms-url", Kms.Endpoint.Url, "--kms-fingerprint", Kms.Endpoint.Fingerprint],
            dir, Path.Combine(dir, "logs"), environment: environment);
    }

    public static string Token(ServiceProcess host) => File.ReadAllText(Path.Combine(Path.GetDirectoryName(host.LogPath)!, "..", "control.token")).Trim();

    /// <summary>
    /// A native library whose constructor — run by the dynamic loader before the program's own code — appends the
    /// executable of the process it was loaded into to <paramref name="marker"/>: what an <c>LD_PRELOAD</c> attacker injects.
    /// </summary>
    public string BuildPreloadLibrary(string marker)
    {
        var dir = NewDirectory("preload");
        var source = Path.Combine(dir, "injected.c");
        File.WriteAllText(source, $$"""
            #include <stdio.h>
            #include <unistd.h>
            __attribute__((constructor)) static void injected(void) {
                char exe[4096];
                ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
                if (n < 0) return;
                exe[n] = 0;
                FILE *f = fopen("{{marker}}", "a");
                if (f) { fprintf(f, "%s\n", exe); fclose(f); }
            }
            """);
        var library = Path.Combine(dir, "libinjected.so");
        var psi = new ProcessStartInfo("cc") { ArgumentList = { "-shared", "-fPIC", "-o", library, source }, RedirectStandardError = true };
        Process gcc;
        try
        {
            gcc = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new InvalidOperationException("These tests need a C compiler (cc) to build the injected library; scripts/test installs gcc.");
        }
        using (gcc)
        {
            var errors = gcc.StandardError.ReadToEnd();
            gcc.WaitForExit();
            if (gcc.ExitCode != 0) throw new InvalidOperationException($"cc failed: {errors}");
        }
        return library;
    }

    /// <summary>
    /// Flips one byte of the first string literal of the assembly <paramref name="assembly"/> where it lies inside
    /// <paramref name="file"/> (a dependency bundled into the single-file executable): the dependency still loads.
    /// </summary>
    /// <remarks>
    /// The bundled copy is precompiled for the image (ReadyToRun), so its bytes differ from any other build of the
    /// assembly; its metadata does not, and the literals (the #US heap) are found by their bytes.
    /// </remarks>
    public static void FlipStringLiteralOfBundledAssembly(string file, string assembly)
    {
        var dll = File.ReadAllBytes(assembly);
        using var pe = new PEReader(new MemoryStream(dll));
        var metadata = pe.GetMetadataReader();
        var size = metadata.GetHeapSize(HeapIndex.UserString);
        Assert.True(size > 8, $"{Path.GetFileName(assembly)} has string literals");
        // #US heap: a zero byte, then each literal as (compressed length, UTF-16 code units, flag byte).
        var heap = dll.AsSpan(pe.PEHeaders.MetadataStartOffset + metadata.GetHeapMetadataOffset(HeapIndex.UserString), size);
        var bytes = File.ReadAllBytes(file);
        var at = bytes.AsSpan().IndexOf(heap);
        Assert.True(at >= 0, $"the string literals of {Path.GetFileName(assembly)} are bundled in {file}");
        Assert.True(bytes.AsSpan(at + 1).IndexOf(heap) < 0, $"the string literals of {Path.GetFileName(assembly)} are bundled once in {file}");
        bytes[at + 2] ^= 0x01;
        File.WriteAllBytes(file, bytes);
    }

    /// <summary>The file-backed mappings of a running process.</summary>
    public static IReadOnlyList<string> MappedPaths(int pid)
        => File.ReadAllLines($"/proc/{pid}/maps").Select(l => l.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length == 6).Select(f => f[5].Trim()).Distinct().ToList();

    public async ValueTask DisposeAsync()
    {
        _party1?.Dispose();
        if (Kms is not null) await Kms.DisposeAsync();
        try { Directory.Delete(Work, recursive: true); } catch (IOException) { }
    }
}
