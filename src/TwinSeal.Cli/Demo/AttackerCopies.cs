namespace TwinSeal.Cli.Demo;

/// <summary>
/// What an attacking party makes from its own files for the demo's attacks (and the tests that run the same attacks):
/// a copy of the enclave image to tamper with, one byte of a constant string flipped so the code still loads and runs,
/// and a second folder with the same party identity for a second host.
/// </summary>
public static class AttackerCopies
{
    /// <summary>Copies every file of <paramref name="from"/> (recursively, modes kept) into <paramref name="to"/>.</summary>
    public static void CopyImage(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }
    }

    /// <summary>Copies a party folder's identity (id, signing key, control token) into <paramref name="to"/>.</summary>
    public static void CopyIdentity(string fromPartyDirectory, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in new[] { "party.id", "party.key.pem", "control.token" }) File.Copy(Path.Combine(fromPartyDirectory, f), Path.Combine(to, f), overwrite: true);
    }

    /// <summary>Flips the last UTF-16 code unit's low bit of <paramref name="literal"/>, which must occur exactly once in <paramref name="file"/>.</summary>
    public static void FlipStringLiteral(string file, string literal)
    {
        var bytes = File.ReadAllBytes(file);
        var needle = System.Text.Encoding.Unicode.GetBytes(literal);
        var at = bytes.AsSpan().IndexOf(needle);
        if (at < 0 || bytes.AsSpan(at + 1).IndexOf(needle) >= 0)
            throw new InvalidOperationException($"'{literal}' is not in {file} exactly once; cannot make the tampered copy.");
        bytes[at + needle.Length - 2] ^= 0x01; // e.g. '1' → '0': one byte, the code still loads and runs
        File.WriteAllBytes(file, bytes);
    }
}
