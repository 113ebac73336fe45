using System.Buffers.Text;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using TwinSeal.Kms.Audit;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Store;

/// <summary>
/// Single-use invitations to register one party id, issued by the KMS operator with the admin token
/// (<see cref="AdminTokenFile"/>). An invitation is 32 random bytes; the store keeps only their SHA-256, with the party
/// id, the expiry and, once used, when and for which key. It is checked and used up inside the registration's own
/// transaction, so replicas sharing the store admit it exactly once.
/// </summary>
public sealed class Invitations(KmsDatabase db, TimeProvider clock)
{
    /// <summary>Prefix of every invitation token, so that a token is told apart from a file name.</summary>
    public const string TokenPrefix = "tsinv_";

    /// <summary>Longest validity an invitation may be given, in hours (30 days): long enough to reach a partner organisation, short enough that a forgotten one expires.</summary>
    public const int MaxValidHours = 720;

    /// <summary>Issues an invitation for a party id not yet registered; the token is returned once and never stored.</summary>
    public async Task<Invitation> IssueAsync(InvitationRequest request)
    {
        PartyRegistry.ValidateId(request.PartyId);
        if (request.ValidHours is < 1 or > MaxValidHours)
            throw KmsException.BadRequest("invalid-invitation-request", $"An invitation is valid for 1 to {MaxValidHours} hours, not {request.ValidHours}.");
        var token = TokenPrefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        var hash = Hash(token);
        var now = clock.GetUtcNow();
        var expires = now + TimeSpan.FromHours(request.ValidHours);
        await db.WriteAsync((c, tx) =>
        {
            if (PartyRegistry.Find(c, tx, request.PartyId) is not null)
                throw KmsException.Conflict("party-exists", $"Party '{request.PartyId}' is already registered.");
            KmsDatabase.Execute(c, tx, "INSERT INTO invitations(token_hash, party_id, issued_at, expires_at) VALUES(@h,@p,@t,@e)",
                ("@h", hash), ("@p", request.PartyId), ("@t", now.ToUnixTimeMilliseconds()), ("@e", expires.ToUnixTimeMilliseconds()));
            AuditLog.Append(c, tx, now, "invitation-issued", keyId: null, actor: (string?)null, $"invitation {Name(hash)} for party '{request.PartyId}', usable once until {expires:O}");
            return 0;
        }).ConfigureAwait(false);
        return new Invitation(token, request.PartyId, expires);
    }

    /// <summary>
    /// Inside the registration's transaction: throws 403 unless <paramref name="token"/> is an unused, unexpired invitation
    /// for <paramref name="partyId"/>; returns the name the audit log gives it. Changes nothing (<see cref="Use"/> does).
    /// </summary>
    internal static string Check(DbConnection c, DbTransaction tx, string token, string partyId, DateTimeOffset now)
    {
        var hash = Hash(token);
        using var cmd = KmsDatabase.Command(c, tx, "SELECT party_id, expires_at, used_at FROM invitations WHERE token_hash = @h", ("@h", hash));
        using var r = cmd.ExecuteReader();
        if (!r.Read()) throw KmsException.Forbidden("invitation-invalid", "The invitation is not one this KMS issued.");
        if (r.GetString(0) != partyId) throw KmsException.Forbidden("invitation-wrong-party", $"The invitation was issued for another party id than '{partyId}'.");
        if (!r.IsDBNull(2)) throw KmsException.Forbidden("invitation-used", "The invitation was already used; ask the KMS operator for a new one.");
        var expires = DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(1));
        if (now >= expires) throw KmsException.Forbidden("invitation-expired", $"The invitation expired at {expires:O}; ask the KMS operator for a new one.");
        return Name(hash);
    }

    /// <summary>Uses up an invitation that <see cref="Check"/> accepted in the same transaction, recording the key it admitted.</summary>
    internal static void Use(DbConnection c, DbTransaction tx, string token, string fingerprint, DateTimeOffset now)
        => KmsDatabase.Execute(c, tx, "UPDATE invitations SET used_at = @t, used_by = @f WHERE token_hash = @h AND used_at IS NULL",
            ("@t", now.ToUnixTimeMilliseconds()), ("@f", fingerprint), ("@h", Hash(token)));

    private static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    // Names an invitation in the audit log without giving away anything that would let a reader use it.
    private static string Name(string hash) => hash[..16];
}
