using System.Security.Cryptography;
using System.Text;

namespace TwinSeal.Enclave;

/// <summary>
/// SIMULATED TEE's runtime measurement: everything found in the running isolated area that its launch image does not
/// account for — an inherited environment variable, a file mapped into the process that is neither the image's executable
/// nor an operating-system library, an assembly loaded from a file, a system-wide preload, startup hooks switched on. A
/// real TEE extends a runtime measurement register with what is loaded after launch; here each finding extends the
/// reported measurement (<see cref="Extend"/>), so the KMS sees a value no party registered and answers
/// <c>measurement-mismatch</c>.
/// </summary>
/// <remarks>
/// The party host starts the isolated area with an empty environment, and the image's runtime configuration (inside
/// the executable) switches startup hooks off, so an honest host's process shows no finding. Against a party that
/// controls its own machine this is detection, not isolation: a preloaded library runs before any of this code and
/// could hide itself; only a hardware TEE, where the launch image and its environment are measured by the platform,
/// stops that (docs/threat-model.md).
/// </remarks>
public static class ProcessIntegrity
{
    // Libraries of the operating system (libc, the loader, libstdc++, OpenSSL): root-owned folders, outside any image.
    private static readonly string[] OperatingSystemLibraryFolders = ["/usr/lib/", "/lib/", "/lib64/", "/usr/lib64/"];

    // The runtime's own anonymous mappings (W^X double mapping) and anonymous shared memory.
    private static readonly string[] RuntimeMappings = ["/memfd:doublemapper", "/dev/zero"];

    /// <summary>
    /// The isolated area's whole environment, set by its host and nothing else. Diagnostics off: the runtime's
    /// diagnostic port would let any local process of the same user attach a profiler (native code) after attestation,
    /// and only this variable — no runtime configuration property — turns it off.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Environment { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["DOTNET_EnableDiagnostics"] = "0",
    };

    /// <summary>What this process holds beyond the image whose executable is <paramref name="executablePath"/>; empty when nothing.</summary>
    public static IReadOnlyList<string> Inspect(string executablePath)
    {
        var findings = new List<string>();
        var actual = System.Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "", StringComparer.Ordinal);
        foreach (var (name, value) in actual.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (!Environment.TryGetValue(name, out var expected) || expected != value)
                findings.Add($"environment variable {name} (value SHA-256 {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)))[..16]})");
        }
        foreach (var name in Environment.Keys.Where(n => !actual.ContainsKey(n)))
            findings.Add($"environment variable {name} missing");
        if (File.Exists("/etc/ld.so.preload") && File.ReadAllText("/etc/ld.so.preload").Trim().Length > 0)
            findings.Add($"system-wide preload /etc/ld.so.preload: {File.ReadAllText("/etc/ld.so.preload").Trim()}");
        if (AppContext.TryGetSwitch("System.StartupHookProvider.IsSupported", out var hooks) && hooks || AppContext.GetData("STARTUP_HOOKS") is not null)
            findings.Add("startup hooks are switched on");
        findings.AddRange(MappedFiles(File.ReadAllLines("/proc/self/maps"), executablePath));
        foreach (var asm in AppDomain.CurrentDomain.GetAssemblies())
        {
            // Bundled assemblies and the app (loaded from measured bytes) have no file of their own.
#pragma warning disable IL3000 // An empty Location is exactly what is expected inside the single-file image.
            if (!asm.IsDynamic && asm.Location.Length > 0) findings.Add($"assembly loaded from a file: {asm.Location}");
#pragma warning restore IL3000
        }
        return findings;
    }

    /// <summary>The files in a <c>/proc/PID/maps</c> listing that are neither the executable nor allowed runtime or OS mappings.</summary>
    public static IEnumerable<string> MappedFiles(IEnumerable<string> maps, string executablePath)
    {
        var executableIds = new HashSet<string>(StringComparer.Ordinal);
        var reported = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in maps)
        {
            // address perms offset dev inode path — the path may hold spaces, so split only the first five fields.
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6) continue;
            var path = fields[5].Trim();
            if (!path.StartsWith('/')) continue; // [heap], [stack], [vdso], anonymous
            if (string.Equals(path, executablePath, StringComparison.Ordinal))
            {
                executableIds.Add(fields[3] + ":" + fields[4]);
                continue;
            }
            if (RuntimeMappings.Any(m => path.StartsWith(m, StringComparison.Ordinal))) continue;
            if (OperatingSystemLibraryFolders.Any(f => path.StartsWith(f, StringComparison.Ordinal))) continue;
            if (reported.Add(path)) yield return $"mapped file {path}";
        }
        // The single-file host maps its bundle by path after the kernel executed the file: two different files there means
        // the path was swapped in between, and the bundle that runs is not the executable that was measured.
        if (executableIds.Count > 1) yield return $"two different files mapped as {executablePath}";
    }

    /// <summary>The measurement reported for an image with these findings: the image's own when there are none.</summary>
    public static string Extend(string imageMeasurement, IReadOnlyList<string> findings)
    {
        if (findings.Count == 0) return imageMeasurement;
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA384);
        h.AppendData(Convert.FromHexString(imageMeasurement));
        foreach (var f in findings)
        {
            h.AppendData(SHA384.HashData(Encoding.UTF8.GetBytes(f)));
        }
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }
}
