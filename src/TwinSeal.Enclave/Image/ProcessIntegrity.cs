using System.Security.Cryptography;
using System.Text;

namespace TwinSeal.Enclave;

/// <summary>
/// SIMULATED TEE's runtime measurement: everything found in the running isolated area that its launch image does not
/// account for — an environment other than the agreed one, a file mapped into the process that is neither the image's
/// executable nor an operating-system library (nor the runtime's own memory file), a mount over system code, loader
/// configuration or the image, an assembly loaded from a file, a system-wide preload, startup hooks switched on, a
/// standalone garbage collector, a tracer. A real TEE extends a runtime measurement register with what is loaded after
/// launch; here each finding extends the reported measurement (<see cref="RuntimeMeasurementRegister"/>), so the KMS
/// sees a value no party registered and answers <c>measurement-mismatch</c>.
/// </summary>
/// <remarks>
/// The party host starts the isolated area with exactly <see cref="EnvironmentFor"/>, and the image's runtime
/// configuration (inside the executable) switches startup hooks off, so an honest host's process shows no finding.
/// Against a party that controls its own machine this is detection, not isolation: a preloaded library runs before any
/// of this code and could hide itself, and root can change the system libraries themselves; only a hardware TEE, where
/// the launch image and its environment are measured by the platform, stops that (docs/threat-model.md).
/// </remarks>
public static class ProcessIntegrity
{
    // Libraries of the operating system (libc, the loader, libstdc++, OpenSSL): root-owned folders, outside any image.
    private static readonly string[] OperatingSystemLibraryFolders = ["/usr/lib/", "/lib/", "/lib64/", "/usr/lib64/"];

    // The runtime's W^X double mapping: one memory file it creates itself. A second one under that name is someone else's.
    private static readonly string[] DoubleMapper = ["/memfd:doublemapper", "/memfd:doublemapper (deleted)"];

    // Shared memory the process maps as data: anonymous (/dev/zero) and the plaintext buffers' memory-only files. Shmem
    // (device 00:01), never executable; a file bind-mounted over /dev/zero is neither, and an executable mapping under
    // the buffers' name is code, which is reported like any other.
    private static readonly string[] AnonymousShared =
    [
        "/dev/zero", "/dev/zero (deleted)",
        "/memfd:" + Crypto.PlaintextBuffer.MemoryFileName, "/memfd:" + Crypto.PlaintextBuffer.MemoryFileName + " (deleted)",
    ];
    private const string SharedMemoryDevice = "00:01";

    // Where a bind mount would put other code, or other loader configuration, under a trusted name. (OpenSSL's
    // configuration is the image's own, so /etc/ssl is not among them.) This process's /proc folder, whose files this
    // inspection reads, is added per process.
    private static readonly string[] ProtectedMountPoints = ["/usr", "/lib", "/lib64", "/etc/ld.so.preload", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d"];

    /// <summary>
    /// The isolated area's whole environment, set by its host and nothing else: the runtime's diagnostic port off (it
    /// would let any local process of the same user attach a profiler, native code, after attestation, and only this
    /// variable turns it off), and OpenSSL's configuration read from the image (the system's <c>openssl.cnf</c> can load
    /// provider modules: code the image does not hold).
    /// </summary>
    public static IReadOnlyDictionary<string, string> EnvironmentFor(string imageRoot) => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["DOTNET_EnableDiagnostics"] = "0",
        ["OPENSSL_CONF"] = Path.Combine(imageRoot, EnclaveImage.OpenSslConfigName),
    };

    /// <summary>
    /// What this process holds beyond the image whose executable is <paramref name="executablePath"/> and whose other
    /// measured files are <paramref name="imageFiles"/>; empty when nothing.
    /// </summary>
    public static IReadOnlyList<string> Inspect(string executablePath, IReadOnlyList<FileIdentity> imageFiles)
    {
        var findings = new List<string>();
        var imageRoot = Path.GetDirectoryName(executablePath)!;
        var agreed = EnvironmentFor(imageRoot);
        var actual = System.Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "", StringComparer.Ordinal);
        foreach (var (name, value) in actual.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (!agreed.TryGetValue(name, out var expected) || expected != value)
                findings.Add($"environment variable {name} (value SHA-256 {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)))[..16]})");
        }
        foreach (var name in agreed.Keys.Where(n => !actual.ContainsKey(n)))
            findings.Add($"environment variable {name} missing");
        var preload = File.Exists("/etc/ld.so.preload") ? File.ReadAllText("/etc/ld.so.preload").Trim() : "";
        if (preload.Length > 0) findings.Add($"system-wide preload /etc/ld.so.preload: {preload}");
        if (AppContext.TryGetSwitch("System.StartupHookProvider.IsSupported", out var hooks) && hooks || AppContext.GetData("STARTUP_HOOKS") is not null)
            findings.Add("startup hooks are switched on");
        // A runtime configuration beside the executable (e.g. a .runtimeconfig.dev.json, deleted once read) can name a
        // standalone garbage collector to load: native code with every object in reach.
        foreach (var knob in new[] { "System.GC.Name", "System.GC.Path" })
            if (AppContext.GetData(knob) is { } gc) findings.Add($"standalone garbage collector configured: {knob}={gc}");
        if (TracerOf(File.ReadAllLines("/proc/self/status")) is { } tracer) findings.Add($"traced by process {tracer}");
        var maps = File.ReadAllLines("/proc/self/maps");
        findings.AddRange(MappedFiles(maps, executablePath, imageFiles));
        findings.AddRange(ChangedSinceMeasured(maps, imageFiles));
        findings.AddRange(Mounts(File.ReadAllLines("/proc/self/mountinfo"), imageRoot, System.Environment.ProcessId));
        foreach (var asm in AppDomain.CurrentDomain.GetAssemblies())
        {
            // Bundled assemblies and the app (loaded from measured bytes) have no file of their own.
#pragma warning disable IL3000 // An empty Location is exactly what is expected inside the single-file image.
            if (!asm.IsDynamic && asm.Location.Length > 0) findings.Add($"assembly loaded from a file: {asm.Location}");
#pragma warning restore IL3000
        }
        return findings;
    }

    /// <summary>
    /// The files in a <c>/proc/PID/maps</c> listing that are neither the executable, nor a measured file of the image
    /// (same path, device and inode as when measured), nor allowed runtime or OS mappings.
    /// </summary>
    public static IEnumerable<string> MappedFiles(IEnumerable<string> maps, string executablePath, IReadOnlyList<FileIdentity>? imageFiles = null)
    {
        var executableIds = new HashSet<string>(StringComparer.Ordinal);
        var doubleMapperIds = new HashSet<string>(StringComparer.Ordinal);
        var reported = new HashSet<string>(StringComparer.Ordinal);
        var stack = false;
        foreach (var line in maps)
        {
            // address perms offset dev inode path — the path may hold spaces, so split only the first five fields.
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6) continue;
            var path = fields[5].Trim();
            stack |= path == "[stack]";
            if (!path.StartsWith('/')) continue; // [heap], [stack], [vdso], anonymous
            if (string.Equals(path, executablePath, StringComparison.Ordinal))
            {
                executableIds.Add(fields[3] + ":" + fields[4]);
                continue;
            }
            if (DoubleMapper.Contains(path, StringComparer.Ordinal))
            {
                doubleMapperIds.Add(fields[3] + ":" + fields[4]);
                continue;
            }
            if (AnonymousShared.Contains(path, StringComparer.Ordinal) && fields[3] == SharedMemoryDevice && !fields[1].Contains('x', StringComparison.Ordinal)) continue;
            if (OperatingSystemLibraryFolders.Any(f => path.StartsWith(f, StringComparison.Ordinal))) continue;
            if (imageFiles?.FirstOrDefault(f => string.Equals(f.Path, path, StringComparison.Ordinal)) is { } measured)
            {
                if (measured.IsMappedAs(fields[3], fields[4])) continue;
                if (reported.Add(path)) yield return $"mapped file {path} is not the file measured under that name";
                continue;
            }
            if (reported.Add(path)) yield return $"mapped file {path}";
        }
        // The single-file host maps its bundle by path after the kernel executed the file: two different files there means
        // the path was swapped in between, and the bundle that runs is not the executable that was measured.
        if (executableIds.Count > 1) yield return $"two different files mapped as {executablePath}";
        // A running process always shows its executable and its stack: a listing without them is not the kernel's.
        if (executableIds.Count == 0 || !stack) yield return "the memory map does not show the executable and the stack";
        if (doubleMapperIds.Count > 1) yield return $"{doubleMapperIds.Count} different memory files mapped as the runtime's double mapping";
    }

    /// <summary>
    /// Measured image files mapped into the process whose inode was written (or had its status changed) since it was
    /// measured: same device and inode, but the mapping may now show other bytes than the measurement read.
    /// </summary>
    public static IEnumerable<string> ChangedSinceMeasured(IEnumerable<string> maps, IReadOnlyList<FileIdentity> imageFiles)
    {
        var mapped = maps.Select(l => l.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length == 6).Select(f => f[5].Trim()).ToHashSet(StringComparer.Ordinal);
        foreach (var measured in imageFiles.Where(f => mapped.Contains(f.Path)))
        {
            FileIdentity? now;
            try
            {
                now = FileIdentity.Of(measured.Path);
            }
            catch (IOException)
            {
                now = null;
            }
            if (now != measured) yield return $"image file {measured.Path} changed since it was measured";
        }
    }

    /// <summary>
    /// Mount points in a <c>/proc/PID/mountinfo</c> listing at, under or just above the OS library and loader folders or
    /// the process's own /proc folder, or at or under the image; and a listing without a root mount (not the kernel's).
    /// </summary>
    public static IEnumerable<string> Mounts(IEnumerable<string> mountinfo, string imageRoot, int processId)
    {
        var protectedPoints = ProtectedMountPoints.Append($"/proc/{processId}").ToList();
        var lines = mountinfo.Select(l => l.Split(' ')).Where(f => f.Length >= 5).ToList();
        var rootDevice = lines.FirstOrDefault(f => Unescape(f[4]) == "/")?[2];
        if (rootDevice is null)
        {
            yield return "the mount table does not show the root mount";
            yield break;
        }
        foreach (var fields in lines)
        {
            // id parent major:minor root mount-point options…
            var (device, source, point) = (fields[2], Unescape(fields[3]), Unescape(fields[4]));
            if (point is "/" or "/proc") continue;
            // A folder bound onto itself (systemd's ProtectSystem= makes /usr read-only that way) shows the same files.
            if (device == rootDevice && source == point) continue;
            // A mount at, under or just above a system folder puts other files there; over the image, other files than measured.
            // Mounts above the image (a separate /home, a tmpfs /tmp) are ordinary and change nothing in it.
            var overSystem = protectedPoints.Any(p => Covers(point, p) || Covers(p, point));
            if (overSystem || Covers(point, imageRoot)) yield return $"mount at {point}";
        }
    }

    private static string Unescape(string field)
        => field.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal).Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);

    private static bool Covers(string path, string folder) => path == folder || path.StartsWith(folder + "/", StringComparison.Ordinal);

    /// <summary>The process tracing this one (a debugger, strace), from a <c>/proc/PID/status</c> listing; null when none.</summary>
    public static string? TracerOf(IEnumerable<string> status)
    {
        var line = status.FirstOrDefault(l => l.StartsWith("TracerPid:", StringComparison.Ordinal));
        var pid = line?["TracerPid:".Length..].Trim();
        return pid is null or "0" ? null : pid;
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
