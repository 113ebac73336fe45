using TwinSeal.Crypto;
using TwinSeal.Kms.Http;
using TwinSeal.Protocol;

namespace TwinSeal.Party;

/// <summary>The party host's typed client of the KMS API; every call is signed with the party key, reads (over an empty body) included.</summary>
/// <param name="clock">Stamps signed requests; the system clock unless a test moves time.</param>
public sealed class KmsClient(ServiceEndpoint endpoint, string partyId, PartySigningKey key, TimeProvider? clock = null) : IDisposable
{
    private const string P = KmsEndpoints.Prefix;
    private readonly RemoteClient _remote = new(endpoint, clock: clock);

    private (string, PartySigningKey) Signer => (partyId, key);

    /// <summary>
    /// Registers this party's public key (idempotent), admitted by <paramref name="invitation"/> or
    /// <paramref name="adminToken"/>; with neither, only a KMS that allows self-registration accepts it.
    /// </summary>
    public Task<PartyInfo> RegisterAsync(string? invitation = null, string? adminToken = null)
        => _remote.SendJsonAsync<PartyInfo>(HttpMethod.Post, $"{P}/parties", new PartyRegistration(partyId, key.PublicKey.SubjectPublicKeyInfo, invitation), Signer, bearer: adminToken);

    /// <summary>Looks up a registered party (this one, or one it shares a key with).</summary>
    public Task<PartyInfo> GetPartyAsync(string id) => _remote.SendJsonAsync<PartyInfo>(HttpMethod.Get, $"{P}/parties/{Uri.EscapeDataString(id)}", null, Signer);

    /// <summary>S1–S4.</summary>
    public Task<KeyInfo> CreateKeyAsync(string? label) => _remote.SendJsonAsync<KeyInfo>(HttpMethod.Post, $"{P}/keys", new KeyCreateRequest(label), Signer);

    /// <summary>Reads a key.</summary>
    public Task<KeyInfo> GetKeyAsync(string keyId) => _remote.SendJsonAsync<KeyInfo>(HttpMethod.Get, $"{P}/keys/{Uri.EscapeDataString(keyId)}", null, Signer);

    /// <summary>Rotates a key: a new data key version becomes current.</summary>
    public Task<KeyInfo> RotateKeyAsync(string keyId) => _remote.SendJsonAsync<KeyInfo>(HttpMethod.Post, $"{P}/keys/{Uri.EscapeDataString(keyId)}/rotate", null, Signer);

    /// <summary>Proposes deleting a key (applied, then scheduled, once the change method's approvals are in).</summary>
    public Task<ProposalStatus> DeleteKeyAsync(string keyId) => _remote.SendJsonAsync<ProposalStatus>(HttpMethod.Delete, $"{P}/keys/{Uri.EscapeDataString(keyId)}", null, Signer);

    /// <summary>Proposes a lifecycle change (delete the key, retire an old data key version).</summary>
    public Task<ProposalStatus> ProposeLifecycleAsync(string keyId, LifecycleProposal proposal)
        => _remote.SendJsonAsync<ProposalStatus>(HttpMethod.Post, $"{P}/keys/{Uri.EscapeDataString(keyId)}/lifecycle", proposal, Signer);

    /// <summary>Cancels a scheduled deletion.</summary>
    public Task<KeyInfo> CancelDeletionAsync(string keyId) => _remote.SendJsonAsync<KeyInfo>(HttpMethod.Post, $"{P}/keys/{Uri.EscapeDataString(keyId)}/deletion/cancel", null, Signer);

    /// <summary>Reads the current authority.</summary>
    public Task<AuthorityInfo> GetAuthorityAsync(string keyId) => _remote.SendJsonAsync<AuthorityInfo>(HttpMethod.Get, $"{P}/keys/{Uri.EscapeDataString(keyId)}/authority", null, Signer);

    /// <summary>S5–S9: proposes a policy.</summary>
    public Task<ProposalStatus> ProposeAsync(string keyId, ChangeProposal proposal) => _remote.SendJsonAsync<ProposalStatus>(HttpMethod.Post, $"{P}/keys/{Uri.EscapeDataString(keyId)}/proposals", proposal, Signer);

    /// <summary>Approves a proposal.</summary>
    public Task<ProposalStatus> ApproveAsync(string keyId, string proposalId, string proposalHash)
        => _remote.SendJsonAsync<ProposalStatus>(HttpMethod.Post, $"{P}/keys/{Uri.EscapeDataString(keyId)}/proposals/{Uri.EscapeDataString(proposalId)}/approvals", new Approval(proposalHash), Signer);

    /// <summary>Reads a proposal.</summary>
    public Task<ProposalStatus> GetProposalAsync(string keyId, string proposalId)
        => _remote.SendJsonAsync<ProposalStatus>(HttpMethod.Get, $"{P}/keys/{Uri.EscapeDataString(keyId)}/proposals/{Uri.EscapeDataString(proposalId)}", null, Signer);

    /// <summary>S15: a fresh nonce.</summary>
    public Task<NonceResponse> NonceAsync() => _remote.SendJsonAsync<NonceResponse>(HttpMethod.Post, $"{P}/nonces", null, Signer);

    /// <summary>Signs a key-use request without sending it.</summary>
    public CapturedRequest PrepareKeyUse(KeyUseRequest request) => RemoteClient.Capture(HttpMethod.Post, $"{P}/key-use", request, partyId, key, clock);

    /// <summary>S17/S27: sends a prepared key-use request.</summary>
    public async Task<KeyUseResponse> UseKeyAsync(CapturedRequest prepared)
        => ProtocolJson.Parse<KeyUseResponse>(await _remote.SendCapturedAsync(prepared).ConfigureAwait(false), "key-use reply");

    /// <summary>Reads the audit records this party may see (all of them if it is an auditor).</summary>
    public Task<AuditRecord[]> AuditAsync(long after = 0) => _remote.SendJsonAsync<AuditRecord[]>(HttpMethod.Get, $"{P}/audit?after={after}", null, Signer);

    /// <summary>Checks the whole audit chain; details of a bad record only if this party may read it.</summary>
    public Task<AuditVerification> VerifyAuditAsync() => _remote.SendJsonAsync<AuditVerification>(HttpMethod.Get, $"{P}/audit/verify", null, Signer);

    /// <inheritdoc />
    public void Dispose() => _remote.Dispose();
}
