using TwinSeal.Kms.Audit;
using TwinSeal.Kms.Authority;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Store;

/// <summary>Deletes keys for good: after deletion every key-use request is refused with <see cref="KeyUseRefusal.KeyDeleted"/>.</summary>
public sealed class KeyDeletion(KmsDatabase db, TimeProvider clock)
{
    /// <summary>Deletes <paramref name="keyId"/> on behalf of <paramref name="party"/>, who must be an operator (or the creator while no authority is set).</summary>
    public Task<KeyInfo> DeleteAsync(string keyId, string party)
    {
        var now = clock.GetUtcNow();
        return db.WriteAsync((c, tx) =>
        {
            var key = KeyStore.Find(c, tx, keyId) ?? throw KmsException.NotFound("key-not-found", $"No key '{keyId}'.");
            if (key.State == "deleted") return key;
            var authority = AuthorityService.Current(c, tx, keyId);
            var allowed = authority is null ? party == key.CreatedBy : authority.Policy.Operators.Contains(party);
            if (!allowed)
            {
                AuditLog.Append(c, tx, now, "delete-refused", keyId, party, "deletion by a party outside the operation authority");
                throw KmsException.Forbidden("not-an-operator", $"Party '{party}' may not delete key '{keyId}'.").Recorded();
            }
            KeyStore.Destroy(c, tx, keyId, now);
            AuditLog.Append(c, tx, now, "key-deleted", keyId, party, "sealed KEK and every wrapped data key version destroyed");
            return KeyStore.Find(c, tx, keyId)!;
        });
    }
}
