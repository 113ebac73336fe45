using System.Data.Common;
using System.Security.Cryptography;
using TwinSeal.Kms.Store;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Release;

/// <summary>Issues single-use nonces for evidence (S15) and burns them when a key-use request presents them.</summary>
public sealed class NonceIssuer(KmsDatabase db, TimeProvider clock, KmsOptions options)
{
    /// <summary>Nonce length in bytes.</summary>
    public const int Length = 32;

    /// <summary>
    /// Issues a fresh nonce, stored durably before it is returned. With <paramref name="requester"/> (authenticated with
    /// <see cref="Http.RequestAuthenticator.AuthenticateDeferred"/>) its request id is recorded in the same transaction.
    /// </summary>
    public async Task<NonceResponse> IssueAsync(Http.Signer? requester = null)
    {
        var nonce = RandomNumberGenerator.GetBytes(Length);
        var now = clock.GetUtcNow();
        var expires = now + options.NonceLifetime;
        await db.WriteAsync((c, tx) =>
        {
            if (requester is not null) Http.RequestAuthenticator.RecordRequestId(c, tx, requester, now);
            KmsDatabase.Execute(c, tx, "INSERT INTO nonces(nonce, issued_at, expires_at) VALUES(@n,@i,@e)",
                ("@n", nonce), ("@i", now.ToUnixTimeMilliseconds()), ("@e", expires.ToUnixTimeMilliseconds()));
            return 0;
        }).ConfigureAwait(false);
        return new NonceResponse(nonce, expires);
    }

    /// <summary>Forgets burnt and expired nonces older than a day: no longer needed to refuse anything distinctly.</summary>
    public static int Prune(DbConnection c, DbTransaction tx, DateTimeOffset now)
        => KmsDatabase.Execute(c, tx, "DELETE FROM nonces WHERE expires_at < @old", ("@old", (now - TimeSpan.FromDays(1)).ToUnixTimeMilliseconds()));

    /// <summary>
    /// Burns the nonce if it is known, unexpired and unused, inside the caller's write transaction (which holds the
    /// store's write lock, so two requests cannot both use one nonce); returns the refusal, or null when burnt.
    /// </summary>
    public static KeyUseRefusal? TryBurn(DbConnection c, DbTransaction tx, byte[] nonce, DateTimeOffset at)
    {
        var now = at.ToUnixTimeMilliseconds();
        using (var cmd = KmsDatabase.Command(c, tx, "SELECT expires_at, used_at FROM nonces WHERE nonce = @n", ("@n", nonce)))
        using (var r = cmd.ExecuteReader())
        {
            if (!r.Read()) return KeyUseRefusal.NonceUnknown;
            if (!r.IsDBNull(1)) return KeyUseRefusal.NonceReused;
            if (r.GetInt64(0) < now) return KeyUseRefusal.NonceExpired;
        }
        KmsDatabase.Execute(c, tx, "UPDATE nonces SET used_at = @t WHERE nonce = @n AND used_at IS NULL", ("@t", now), ("@n", nonce));
        return null;
    }
}
