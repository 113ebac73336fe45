using TwinSeal.Crypto;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.Resilience.Tests;

/// <summary>
/// One iteration's stream of writes from several concurrent workers until the KMS is killed: key creation with a
/// first authority, authority changes (two parties, AllParties, compare-and-swap on the version; the workers aim at the
/// few newest keys so their changes collide), and nonce issue + key-use releases with simulated evidence. Every write
/// whose success answer arrived is recorded in the iteration's ledger; a key-use or an approval that got no answer is
/// recorded as in flight, to be resolved after the restart.
/// </summary>
internal sealed class WriteStream(CrashRig rig, CrashLedger ledger, IterationLedger it, Dictionary<string, KmsClient> clients, int seed)
{
    private volatile bool _killed;
    private int _outstanding;

    /// <summary>Requests sent whose answer has not arrived.</summary>
    public int Outstanding => Volatile.Read(ref _outstanding);

    /// <summary>Called just before the kill: from now on a failed request is the kill's doing, not the KMS's.</summary>
    public void MarkKilled() => _killed = true;

    public Task[] Start(int workers, CancellationToken ct)
        => [.. Enumerable.Range(0, workers).Select(w => Task.Run(() => RunWorkerAsync(w, ct), CancellationToken.None))];

    private async Task RunWorkerAsync(int worker, CancellationToken ct)
    {
        var rng = new Random(unchecked((seed * 7919) + (it.Iteration * 104_729) + worker));
        while (!_killed && !ct.IsCancellationRequested)
        {
            try
            {
                var pick = rng.NextDouble();
                if (ledger.ReadyKeys.IsEmpty || pick < 0.12) await CreateKeyAsync(rng);
                else if (pick < 0.40) await ChangeAuthorityAsync(rng);
                else await ReleaseAsync(rng, ct);
            }
            catch (RemoteProblemException e) when (e.Status != 0)
            {
                // A real answer from the KMS that none of the operations expects: report it, whether or not the kill came since.
                it.Unexpected.Enqueue($"worker {worker}: {CrashRig.Describe(e)}");
                return;
            }
            catch (Exception e) when (e is not UnexpectedAnswerException)
            {
                // No answer (connection refused or reset, truncated reply): the kill, unless it has not happened yet.
                if (!_killed) it.Unexpected.Enqueue($"worker {worker}: request failed before the kill: {CrashRig.Describe(e)}");
                return;
            }
            catch (UnexpectedAnswerException e)
            {
                it.Unexpected.Enqueue($"worker {worker}: {e.Message}");
                return;
            }
        }
    }

    private async Task<T> CallAsync<T>(Func<Task<T>> call)
    {
        Interlocked.Increment(ref _outstanding);
        try
        {
            return await call();
        }
        finally
        {
            Interlocked.Decrement(ref _outstanding);
        }
    }

    private async Task CreateKeyAsync(Random rng)
    {
        var creator = CrashRig.Parties[rng.Next(2)];
        var other = CrashRig.Other(creator);
        var info = await CallAsync(() => clients[creator].CreateKeyAsync($"crash iteration {it.Iteration}"));
        var key = new AckKey(info.KeyId, creator, it.Iteration);
        it.Keys.Enqueue(key);
        if (info.CreatedBy != creator) throw new UnexpectedAnswerException($"key {info.KeyId} created by {creator} is described as created by {info.CreatedBy}");

        var policy = CrashRig.Policy(rng);
        var proposal = await CallAsync(() => clients[creator].ProposeAsync(info.KeyId, new ChangeProposal(0, policy)));
        it.Proposals.Enqueue(new AckProposal(info.KeyId, proposal.ProposalId, it.Iteration));
        var applied = await ApproveAsync(other, info.KeyId, proposal, 0, policy, key);
        RecordApplied(info.KeyId, proposal.ProposalId, 0, policy, applied);
        ledger.MarkReady(key);
    }

    private async Task ChangeAuthorityAsync(Random rng)
    {
        var key = ledger.PickReady(rng, mostRecent: 3)!;
        var proposer = CrashRig.Parties[rng.Next(2)];
        var approver = CrashRig.Other(proposer);
        var current = await CallAsync(() => clients[proposer].GetAuthorityAsync(key.KeyId));
        var policy = CrashRig.Policy(rng);
        ProposalStatus proposal;
        try
        {
            proposal = await CallAsync(() => clients[proposer].ProposeAsync(key.KeyId, new ChangeProposal(current.Version, policy)));
        }
        catch (RemoteProblemException e) when (e is { Status: 409, Code: "stale-base-version" })
        {
            // Another worker's change applied after the read: the compare-and-swap refused this one, as it must.
            Interlocked.Increment(ref it.CasConflicts);
            return;
        }
        it.Proposals.Enqueue(new AckProposal(key.KeyId, proposal.ProposalId, it.Iteration));
        ProposalStatus applied;
        try
        {
            applied = await ApproveAsync(approver, key.KeyId, proposal, current.Version, policy, null);
        }
        catch (RemoteProblemException e) when (e is { Status: 409, Code: "stale-base-version" })
        {
            // Refused at apply time; the KMS records that refusal (the proposal is closed as stale) before answering.
            Interlocked.Increment(ref it.CasConflicts);
            it.Stale.Enqueue(new AckStale(key.KeyId, proposal.ProposalId, it.Iteration));
            return;
        }
        RecordApplied(key.KeyId, proposal.ProposalId, current.Version, policy, applied);
    }

    /// <summary>Sends an approval, remembering it as in flight until an answer (any answer) arrives.</summary>
    private async Task<ProposalStatus> ApproveAsync(string approver, string keyId, ProposalStatus proposal, int baseVersion, AuthorityPolicy policy, AckKey? newKey)
    {
        it.InFlightApprovals[proposal.ProposalId] = new InFlightApproval(keyId, proposal.ProposalId, proposal.ProposalHash, baseVersion, PolicyDocument.Hash(policy), approver, newKey, it.Iteration);
        try
        {
            var answer = await CallAsync(() => clients[approver].ApproveAsync(keyId, proposal.ProposalId, proposal.ProposalHash));
            it.InFlightApprovals.TryRemove(proposal.ProposalId, out _);
            return answer;
        }
        catch (RemoteProblemException e) when (e.Status != 0)
        {
            it.InFlightApprovals.TryRemove(proposal.ProposalId, out _);
            throw;
        }
    }

    private void RecordApplied(string keyId, string proposalId, int baseVersion, AuthorityPolicy policy, ProposalStatus applied)
    {
        if (applied.Status != "applied" || applied.AppliedVersion != baseVersion + 1)
            throw new UnexpectedAnswerException($"the approval of {proposalId} on {keyId} (base version {baseVersion}) answered status {applied.Status}, applied version {applied.AppliedVersion?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}");
        var hash = PolicyDocument.Hash(policy);
        if (applied.Policy is null || PolicyDocument.Hash(applied.Policy) != hash)
            throw new UnexpectedAnswerException($"the approval of {proposalId} on {keyId} answered a different policy than was proposed");
        it.Authorities.Enqueue(new AckAuthority(keyId, baseVersion + 1, hash, proposalId, it.Iteration));
    }

    private async Task ReleaseAsync(Random rng, CancellationToken ct)
    {
        var key = ledger.PickReady(rng)!;
        var party = CrashRig.Parties[rng.Next(2)];
        var client = clients[party];
        var issued = await CallAsync(client.NonceAsync);
        var nonce = new AckNonce(party, issued.Nonce, issued.ExpiresAt, it.Iteration);
        if (rng.NextDouble() < 0.12)
        {
            // Issued but never presented: after the restart it must still be usable exactly once.
            it.UnusedNonces.Enqueue(nonce);
            return;
        }
        using var enclave = new EphemeralKeyPair();
        var request = new KeyUseRequest(key.KeyId, issued.Nonce, rig.Attest(issued.Nonce, enclave.PublicKey), enclave.PublicKey);
        var prepared = client.PrepareKeyUse(request);
        it.InFlight[nonce] = new InFlightUse(key.KeyId, nonce);
        KeyUseResponse response;
        try
        {
            response = await CallAsync(() => client.UseKeyAsync(prepared));
        }
        catch (RemoteProblemException e) when (e.Status != 0)
        {
            // Answered (here: refused), so not in flight; a refusal of genuine evidence is reported by the caller.
            it.InFlight.TryRemove(nonce, out _);
            throw;
        }
        it.InFlight.TryRemove(nonce, out _);
        DataKey dataKey;
        try
        {
            dataKey = CrashRig.Open(enclave, response, key.KeyId, party);
        }
        catch (System.Security.Cryptography.CryptographicException e)
        {
            throw new UnexpectedAnswerException($"the data key released for {key.KeyId} does not open with the enclave key and binding it was asked for: {e.Message}");
        }
        (Guid DatasetId, byte[] Ciphertext, byte[] Plaintext) sample;
        using (dataKey) sample = await CrashRig.SealSampleAsync(dataKey, key.KeyId, response.KeyVersion, ct);
        it.Releases.Enqueue(new AckRelease(key.KeyId, party, issued.Nonce, response.KeyVersion, response.AuthorityVersion, response.PolicyHash, sample.DatasetId, sample.Ciphertext, sample.Plaintext, it.Iteration));
    }
}

/// <summary>A success answer that contradicts what was asked (wrong creator, wrong applied version, other policy).</summary>
internal sealed class UnexpectedAnswerException(string message) : Exception(message);
