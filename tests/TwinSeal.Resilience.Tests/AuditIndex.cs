using System.Globalization;
using System.Text.RegularExpressions;
using TwinSeal.Party;

namespace TwinSeal.Resilience.Tests;

/// <summary>
/// The KMS audit log as read so far in a run, incrementally (the log only grows): the authority-set records (key,
/// version → policy hash) and the keys whose creation was recorded. Reading resumes after the last record read, and
/// first re-reads that record to prove nothing read before a crash has changed or gone since.
/// </summary>
internal sealed partial class AuditIndex
{
    private readonly Dictionary<(string KeyId, int Version), List<string>> _authoritySet = [];
    private readonly HashSet<string> _keysCreated = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _highestVersion = new(StringComparer.Ordinal);

    [GeneratedRegex("^version (?<v>[0-9]+) policy (?<h>[0-9a-f]{64}) ")]
    private static partial Regex AuthoritySetDetail();

    /// <summary>Sequence number of the last record read.</summary>
    public long Cursor { get; private set; }

    private string _cursorHash = "";

    /// <summary>Records the last <c>audit/verify</c> counted.</summary>
    public long VerifiedRecords { get; set; }

    /// <summary>Reads the records appended since the last call; returns the problems found (empty when none).</summary>
    public async Task<List<string>> CatchUpAsync(KmsClient client, CancellationToken ct)
    {
        var problems = new List<string>();
        if (Cursor > 0)
        {
            var again = await client.AuditAsync(Cursor - 1).WaitAsync(ct);
            if (again.Length == 0 || again[0].Sequence != Cursor)
                problems.Add($"audit record {Cursor}, read after an earlier restart, is gone (the log now continues at {(again.Length == 0 ? "nothing" : again[0].Sequence.ToString(CultureInfo.InvariantCulture))})");
            else if (again[0].Hash != _cursorHash)
                problems.Add($"audit record {Cursor}, read after an earlier restart with hash {_cursorHash[..16]}, now has hash {again[0].Hash[..16]}");
            if (problems.Count > 0) return problems;
        }
        while (true)
        {
            var page = await client.AuditAsync(Cursor).WaitAsync(ct);
            if (page.Length == 0) return problems;
            foreach (var r in page)
            {
                if (r.Sequence != Cursor + 1)
                {
                    problems.Add($"the audit log jumps from record {Cursor} to record {r.Sequence}");
                    return problems;
                }
                if (Cursor > 0 && r.PreviousHash != _cursorHash)
                    problems.Add($"audit record {r.Sequence} does not link to record {Cursor}");
                Index(r, problems);
                Cursor = r.Sequence;
                _cursorHash = r.Hash;
            }
        }
    }

    private void Index(Protocol.AuditRecord r, List<string> problems)
    {
        if (r.Event == "key-created" && r.KeyId is { } created) _keysCreated.Add(created);
        if (r.Event != "authority-set" || r.KeyId is not { } keyId) return;
        var m = AuthoritySetDetail().Match(r.Detail);
        if (!m.Success)
        {
            problems.Add($"audit record {r.Sequence} (authority-set on {keyId}) has a detail this harness cannot read: '{r.Detail}'");
            return;
        }
        var version = int.Parse(m.Groups["v"].Value, CultureInfo.InvariantCulture);
        if (!_authoritySet.TryGetValue((keyId, version), out var hashes)) _authoritySet[(keyId, version)] = hashes = [];
        hashes.Add(m.Groups["h"].Value);
        // Versions of one key are applied one after the other, each replacing the one before: 1, 2, 3, … with no gap and no repeat.
        var highest = _highestVersion.GetValueOrDefault(keyId);
        if (version != highest + 1)
            problems.Add($"audit record {r.Sequence} sets authority version {version} of {keyId} after version {highest} (a fork or a gap in its history)");
        _highestVersion[keyId] = Math.Max(highest, version);
    }

    /// <summary>Whether a key-created record for the key has been read.</summary>
    public bool KeyCreated(string keyId) => _keysCreated.Contains(keyId);

    /// <summary>The policy hashes of every authority-set record read for this key and version (one, unless history forked).</summary>
    public IReadOnlyList<string> AuthoritySet(string keyId, int version) => _authoritySet.TryGetValue((keyId, version), out var h) ? h : [];
}
