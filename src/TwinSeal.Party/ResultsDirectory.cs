using TwinSeal.Kms;

namespace TwinSeal.Party;

/// <summary>
/// The party folder's <c>results/</c> directory, and the one rule for every path a control call names: it must lead,
/// with every symbolic link on the way followed, to a file strictly inside this directory. Relative paths are taken
/// from the directory; <c>..</c>, absolute paths elsewhere and links that lead out are refused with 400
/// <c>path-outside-results</c>.
/// </summary>
/// <remarks>
/// The host writes released plaintext rows where the control call says. Without this rule the control token would be
/// a way to make the host overwrite any file it can write (its own key, the inbox, other people's files) or to leave
/// plaintext in a world-readable place. The check resolves links itself, component by component as the kernel does,
/// so a link that points back inside is fine and one that points out is caught wherever it sits on the path; the
/// caller then writes to the resolved path, which has no link left to follow. Someone who can change links in this
/// directory between the check and the write can still win that race.
/// </remarks>
public sealed class ResultsDirectory
{
    // Linux gives up after 40 links (MAXSYMLINKS); a loop of links must end in a refusal, not a hang.
    private const int MaxLinks = 40;

    /// <summary>The <c>results</c> directory of <paramref name="partyDirectory"/>.</summary>
    public ResultsDirectory(string partyDirectory) => Root = Path.GetFullPath(Path.Combine(partyDirectory, "results"));

    /// <summary>The directory, as configured (not link-resolved).</summary>
    public string Root { get; }

    /// <summary>
    /// Resolves <paramref name="requested"/> (relative to <see cref="Root"/>, or absolute) to the link-free path of a file
    /// inside the results directory; throws 400 <c>path-outside-results</c> otherwise.
    /// </summary>
    public string Resolve(string requested)
    {
        ArgumentNullException.ThrowIfNull(requested);
        if (requested.Length == 0 || requested.Contains('\0')) throw Outside(requested, "names no file");
        var lexical = Path.GetFullPath(requested, Root);
        if (!IsStrictlyInside(lexical, Root)) throw Outside(requested, $"resolves to {lexical}");
        var real = RealPath(lexical, requested);
        if (!IsStrictlyInside(real, RealPath(Root, requested))) throw Outside(requested, $"leads through a symbolic link to {real}");
        return real;
    }

    private static bool IsStrictlyInside(string path, string directory)
        => path.StartsWith(Path.TrimEndingDirectorySeparator(directory) + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>
    /// <paramref name="fullPath"/> with every symbolic link on it replaced by its target, resolved like realpath(3);
    /// components that do not exist yet (the file about to be written) are kept as they are.
    /// </summary>
    private static string RealPath(string fullPath, string requested)
    {
        var root = Path.GetPathRoot(fullPath)!;
        var pending = new Stack<string>(Components(fullPath[root.Length..]).Reverse());
        var current = root;
        var links = 0;
        while (pending.TryPop(out var part))
        {
            if (part == ".") continue;
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? root;
                continue;
            }
            var next = Path.Join(current, part);
            if (new FileInfo(next).LinkTarget is not { } target)
            {
                current = next;
                continue;
            }
            if (++links > MaxLinks) throw Outside(requested, "has too many levels of symbolic links");
            // A relative target continues from the link's own directory (current); an absolute one from its root.
            if (Path.IsPathRooted(target)) current = Path.GetPathRoot(target)!;
            foreach (var c in Components(target).Reverse()) pending.Push(c);
        }
        return current;
    }

    private static string[] Components(string path) => path.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);

    private static KmsException Outside(string requested, string why)
        => KmsException.BadRequest("path-outside-results", $"The path '{requested}' {why}: a control call may only name files inside the party's results directory.");
}
