using System.Text.RegularExpressions;
using System.Data.Common;
using TwinSeal.Crypto;
using TwinSeal.Kms.Audit;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Store;

/// <summary>The parties the KMS knows, each by its long-term P-256 public key.</summary>
public sealed partial class PartyRegistry(KmsDatabase db, TimeProvider clock)
{
    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex PartyIdPattern();

    /// <summary>Whether <paramref name="partyId"/> is a valid party id: 1–64 letters, digits, '-' or '_'.</summary>
    public static bool IsValidId(string partyId) => PartyIdPattern().IsMatch(partyId);

    /// <summary>Throws 400 unless <paramref name="partyId"/> is a valid party id.</summary>
    public static void ValidateId(string partyId)
    {
        if (!IsValidId(partyId))
            throw KmsException.BadRequest("invalid-party-id", "A party id is 1–64 letters, digits, '-' or '_'.");
    }

    /// <summary>Registers a party; the same id with the same key is accepted again, with another key refused.</summary>
    public async Task<PartyInfo> RegisterAsync(PartyRegistration registration)
    {
        ValidateId(registration.PartyId);
        PartyPublicKey key;
        try
        {
            key = PartyPublicKey.FromSubjectPublicKeyInfo(registration.PublicKey);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            throw KmsException.BadRequest("invalid-public-key", "The public key is not a P-256 SubjectPublicKeyInfo.");
        }
        var now = clock.GetUtcNow();
        return await db.WriteAsync((c, tx) =>
        {
            var existing = Find(c, tx, registration.PartyId);
            if (existing is not null)
            {
                if (existing.Fingerprint == key.Fingerprint) return existing;
                throw KmsException.Conflict("party-exists", $"Party '{registration.PartyId}' is already registered with another key.");
            }
            KmsDatabase.Execute(c, tx, "INSERT INTO parties(party_id, public_key, fingerprint, registered_at) VALUES(@p,@k,@f,@t)",
                ("@p", registration.PartyId), ("@k", key.SubjectPublicKeyInfo), ("@f", key.Fingerprint), ("@t", now.ToUnixTimeMilliseconds()));
            AuditLog.Append(c, tx, now, "party-registered", null, registration.PartyId, $"public key fingerprint {key.Fingerprint}");
            return new PartyInfo(registration.PartyId, key.SubjectPublicKeyInfo, key.Fingerprint);
        }).ConfigureAwait(false);
    }

    /// <summary>The party, or null. A registered party's key never changes, so a party once found is kept in memory.</summary>
    public PartyInfo? Find(string partyId)
    {
        if (_known.TryGetValue(partyId, out var known)) return known;
        var found = db.Read(c => Find(c, null, partyId));
        if (found is not null) _known.TryAdd(partyId, found);
        return found;
    }

    /// <summary>The parsed public key of a registered party, kept for reuse (parsing costs more than verifying).</summary>
    public static PartyPublicKey KeyOf(PartyInfo party)
        => Keys.GetOrAdd(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(party.PublicKey)),
            static (_, spki) => PartyPublicKey.FromSubjectPublicKeyInfo(spki), party.PublicKey);

    // Only parties that exist are kept: one registered later, at this replica or another, is found in the store then.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, PartyInfo> _known = new(StringComparer.Ordinal);
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, PartyPublicKey> Keys = new(StringComparer.Ordinal);

    /// <summary>The party inside a transaction, or null.</summary>
    public static PartyInfo? Find(DbConnection c, DbTransaction? tx, string partyId)
    {
        using var cmd = KmsDatabase.Command(c, tx, "SELECT public_key, fingerprint FROM parties WHERE party_id = @p", ("@p", partyId));
        using var r = cmd.ExecuteReader();
        return r.Read() ? new PartyInfo(partyId, (byte[])r[0], r.GetString(1)) : null;
    }
}
