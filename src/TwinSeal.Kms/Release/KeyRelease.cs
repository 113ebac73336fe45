using TwinSeal.Attestation;
using TwinSeal.Crypto;
using TwinSeal.Kms.Audit;
using TwinSeal.Kms.Authority;
using TwinSeal.Kms.Store;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Release;

/// <summary>A key-use request that the KMS refused, with the check that failed.</summary>
public sealed class KeyUseRefusedException(KeyUseRefusal refusal, string reason) : Exception(reason)
{
    /// <summary>The failed check.</summary>
    public KeyUseRefusal Refusal { get; } = refusal;
}

/// <summary>
/// Where a data key leaves the KMS (S17–S21, S27–S31), and only here. Checks, in order: evidence signature chain →
/// nonce known, unexpired, unused (then burnt) → report data binds nonce and public key → measurement and platform
/// tests equal the party's reference values → party in the usage authority and key not deleted. Then the data key is
/// unwrapped, HPKE-wrapped to the enclave's ephemeral key and zeroed. Every outcome is audited.
/// </summary>
public sealed class KeyRelease(KmsDatabase db, KeyStore keys, KeyDeletion deletion, NonceIssuer nonces, IReadOnlyDictionary<string, IEvidenceVerifier> verifiers, KmsOptions options, TimeProvider clock)
{
    /// <summary>Runs the checks for <paramref name="party"/> (already authenticated by its request signature) and releases the key.</summary>
    public async Task<KeyUseResponse> ReleaseAsync(Http.Signer party, KeyUseRequest request)
    {
        try
        {
            // A deletion that fell due a moment ago must not let one more release through.
            await deletion.CompleteDueAsync().ConfigureAwait(false);
            var response = await CheckAndWrapAsync(party.PartyId, request).ConfigureAwait(false);
            await AuditAsync("key-released", request.KeyId, party, $"data key version {response.KeyVersion} wrapped to enclave key {Fingerprint(request.EnclavePublicKey)} under authority version {response.AuthorityVersion}").ConfigureAwait(false);
            return response;
        }
        catch (KeyUseRefusedException e)
        {
            await AuditAsync("key-refused", request.KeyId, party, $"{Code(e.Refusal)}: {e.Message}").ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The kebab-case code of a refusal, as it appears in problems and the audit log.</summary>
    public static string Code(KeyUseRefusal r) => System.Text.Json.JsonNamingPolicy.KebabCaseLower.ConvertName(r.ToString());

    private async Task<KeyUseResponse> CheckAndWrapAsync(string party, KeyUseRequest request)
    {
        KeyInfo key;
        try
        {
            key = keys.Get(request.KeyId);
        }
        catch (KmsException e) when (e.Status == 404)
        {
            throw new KeyUseRefusedException(KeyUseRefusal.KeyNotReady, $"no key '{request.KeyId}'");
        }

        // 1. Evidence signature chains to a trusted platform key.
        if (!verifiers.TryGetValue(request.Evidence.Platform, out var verifier))
            throw new KeyUseRefusedException(KeyUseRefusal.EvidenceInvalid, $"evidence platform '{request.Evidence.Platform}' is not accepted by this KMS");
        NormalisedClaims claims;
        try
        {
            claims = verifier.Verify(request.Evidence);
        }
        catch (EvidenceException e)
        {
            throw new KeyUseRefusedException(e.Refusal, e.Message);
        }
        if (claims.Simulated && !options.AcceptSimulatedEvidence)
            throw new KeyUseRefusedException(KeyUseRefusal.EvidenceUntrusted, "this KMS is configured to refuse simulated TEE evidence");

        // 2. Freshness: the nonce is burnt here even if a later check fails, so a refused request cannot be retried with it.
        if (await nonces.TryBurnAsync(request.Nonce).ConfigureAwait(false) is { } nonceRefusal)
            throw new KeyUseRefusedException(nonceRefusal, nonceRefusal switch
            {
                KeyUseRefusal.NonceUnknown => "the nonce was never issued by this KMS",
                KeyUseRefusal.NonceExpired => "the nonce has expired; ask for a fresh one",
                _ => "the nonce was already used (replayed request)",
            });

        // 3. The public key the KMS will wrap to is the one the enclave bound into its evidence, and a usable P-256 point.
        if (!Hpke.IsValidPublicKey(request.EnclavePublicKey))
            throw new KeyUseRefusedException(KeyUseRefusal.PublicKeyNotBound, "the enclave public key is not a SEC1 uncompressed P-256 point");
        if (!ReportDataBinding.Matches(claims.ReportData, request.Nonce, request.EnclavePublicKey))
            throw new KeyUseRefusedException(KeyUseRefusal.PublicKeyNotBound, "the evidence does not bind this nonce and enclave public key (report data mismatch)");

        // 4. Reference values registered for this party. Read afresh on every request: no cached decision outlives a change.
        var authority = db.Read(c => AuthorityService.Current(c, null, request.KeyId))
            ?? throw new KeyUseRefusedException(KeyUseRefusal.KeyNotReady, $"key '{request.KeyId}' has no authority set yet");
        var grant = authority.Policy.Usage.FirstOrDefault(g => g.PartyId == party);
        if (grant is not null && ReferenceValueMatcher.Check(claims, grant.ReferenceValues) is { } mismatch)
            throw new KeyUseRefusedException(mismatch.Refusal, mismatch.Reason);

        // 5. Usage authority and key state.
        if (grant is null)
            throw new KeyUseRefusedException(KeyUseRefusal.PartyNotAuthorised, $"party '{party}' is not in the usage authority of key '{request.KeyId}'");
        if (key.State == "pending-deletion")
            throw new KeyUseRefusedException(KeyUseRefusal.KeyPendingDeletion, $"key '{request.KeyId}' is scheduled for deletion at {key.DeletionDueAt:O}; an operator can cancel that");
        if (key.State != "active")
            throw new KeyUseRefusedException(KeyUseRefusal.KeyDeleted, $"key '{request.KeyId}' has been deleted");
        if (authority.Policy.ExpiresAt is { } expires && clock.GetUtcNow() >= expires)
            throw new KeyUseRefusedException(KeyUseRefusal.PolicyExpired, $"the policy of key '{request.KeyId}' expired at {expires:O}");

        try
        {
            return keys.WithDataKey(request.KeyId, request.KeyVersion, (dataKey, version) =>
            {
                var aad = KeyReleaseBinding.Aad(request.KeyId, party, version, authority.Version, authority.PolicyHash);
                var sealedKey = DataKeyRelease.WrapToEnclave(dataKey, request.EnclavePublicKey, KeyReleaseBinding.Info, aad);
                return new KeyUseResponse(request.KeyId, party, version, authority.Version, authority.PolicyHash, authority.Policy, sealedKey.Enc, sealedKey.Ciphertext);
            });
        }
        catch (KmsException e) when (e.Code is "key-deleted" or "key-pending-deletion")
        {
            throw new KeyUseRefusedException(KeyUseRefusal.KeyDeleted, $"key '{request.KeyId}' has been deleted");
        }
        catch (KmsException e) when (e.Code == "key-version-unavailable")
        {
            throw new KeyUseRefusedException(KeyUseRefusal.KeyVersionUnavailable, e.Message.TrimEnd('.'));
        }

    }

    private Task AuditAsync(string evt, string keyId, Http.Signer party, string detail)
        => db.WriteAsync((c, tx) =>
        {
            AuditLog.Append(c, tx, clock.GetUtcNow(), evt, keyId, party, detail);
            return 0;
        });

    private static string Fingerprint(byte[] publicKey) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(publicKey))[..16];
}
