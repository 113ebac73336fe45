namespace TwinSeal.Protocol;

/// <summary>
/// A path with every symbolic link on it replaced by its target, resolved like realpath(3), component by component as
/// the kernel does: a relative target continues from the link's own folder, an absolute one from the root, and
/// components that do not exist yet (a file about to be written) are kept as they are.
/// </summary>
public static class RealPath
{
    // Linux gives up after 40 links (MAXSYMLINKS); a loop of links must end in an error, not a hang.
    private const int MaxLinks = 40;

    /// <summary>The link-free form of <paramref name="path"/> (made absolute first); <see cref="IOException"/> for a loop of links.</summary>
    public static string Of(string path)
    {
        var fullPath = Path.GetFullPath(path);
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
            if (++links > MaxLinks) throw new IOException($"'{path}' has too many levels of symbolic links.");
            if (Path.IsPathRooted(target)) current = Path.GetPathRoot(target)!;
            foreach (var c in Components(target).Reverse()) pending.Push(c);
        }
        return current;
    }

    private static string[] Components(string path) => path.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
}
