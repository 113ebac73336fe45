using System.Security.Cryptography.X509Certificates;
using TwinSeal.Attestation;
using TwinSeal.Attestation.Sim;
using TwinSeal.Crypto;
using TwinSeal.Kms.Authority;
using TwinSeal.Kms.Http;
using TwinSeal.Kms.Release;
using TwinSeal.Kms.Store;

namespace TwinSeal.Kms;

/// <summary>One KMS instance: its store, master key, verifiers and the services built on them.</summary>
public sealed class KmsService : IDisposable
{
    private readonly MasterKey _master;
    private readonly Timer _deletionSweep;

    /// <summary>Opens the KMS state in <see cref="KmsOptions.DataDirectory"/>, creating it on first start.</summary>
    public KmsService(KmsOptions options, TimeProvider? clock = null)
    {
        clock ??= TimeProvider.System;
        Options = options;
        Directory.CreateDirectory(options.DataDirectory);
        Database = new KmsDatabase(Path.Combine(options.DataDirectory, "kms.sqlite"));
        _master = MasterKeyFile.LoadOrCreate(options.DataDirectory);
        // Hardware verifiers pass debug evidence through as a claim; whether it is acceptable is the policy's decision (ReferenceValues.AllowDebug).
        var verifiers = VerifierSet.Create(options.Verifiers with { PassDebugThrough = true }, clock);
        Keys = new KeyStore(Database, _master, clock);
        Parties = new PartyRegistry(Database, clock);
        Authority = new AuthorityService(Database, clock, options);
        Nonces = new NonceIssuer(Database, clock, options);
        Deletion = new KeyDeletion(Database, clock);
        Release = new KeyRelease(Database, Keys, Deletion, Nonces, verifiers, options, clock);
        Authenticator = new RequestAuthenticator(Database, clock);
        // Deletions fall due while nobody asks for the key too; destroy their material promptly anyway.
        _deletionSweep = new Timer(_ => _ = SweepAsync(), null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10));
    }

    /// <summary>Configuration.</summary>
    public KmsOptions Options { get; }
    /// <summary>The store.</summary>
    public KmsDatabase Database { get; }
    /// <summary>Key creation and the wrapped key material.</summary>
    public KeyStore Keys { get; }
    /// <summary>Registered parties.</summary>
    public PartyRegistry Parties { get; }
    /// <summary>Authority documents, proposals and approvals.</summary>
    public AuthorityService Authority { get; }
    /// <summary>Evidence nonces.</summary>
    public NonceIssuer Nonces { get; }
    /// <summary>Key release to attested enclaves.</summary>
    public KeyRelease Release { get; }
    /// <summary>Key deletion.</summary>
    public KeyDeletion Deletion { get; }
    /// <summary>Signed-request checks.</summary>
    public RequestAuthenticator Authenticator { get; }

    private async Task SweepAsync()
    {
        try
        {
            await Deletion.CompleteDueAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or ObjectDisposedException or InvalidOperationException)
        {
            // The next sweep, or the next key-use request, completes it.
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _deletionSweep.Dispose();
        _master.Dispose();
    }
}
