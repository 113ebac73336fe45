using System.Reflection;
using System.Runtime.Loader;
using System.Security.Cryptography;
using System.Text;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Enclave;

/// <summary>
/// The app the isolated area runs, measured from the exact bytes it loads: the bundle's files are read once,
/// hashed (SHA-384 over each file's relative path and content, in ordinal path order) and the app assembly is
/// loaded from those same in-memory bytes, so the file cannot change between measuring and loading.
/// </summary>
public sealed class AppBundle
{
    private AppBundle(string measurement, IEnclaveApp app)
    {
        Measurement = measurement;
        App = app;
    }

    /// <summary>Lower-case hex SHA-384 of the bundle.</summary>
    public string Measurement { get; }

    /// <summary>The loaded app.</summary>
    public IEnclaveApp App { get; }

    /// <summary>Measures every file in <paramref name="directory"/> and loads the single app it contains.</summary>
    public static AppBundle Load(string directory)
    {
        if (!Directory.Exists(directory)) throw new InvalidOperationException($"App bundle '{directory}' does not exist.");
        var files = Directory.GetFiles(directory, "*", SearchOption.AllDirectories)
            .Select(f => (Relative: Path.GetRelativePath(directory, f).Replace('\\', '/'), Path: f))
            .OrderBy(f => f.Relative, StringComparer.Ordinal)
            .Select(f => (f.Relative, Bytes: File.ReadAllBytes(f.Path)))
            .ToList();
        if (files.Count == 0) throw new InvalidOperationException($"App bundle '{directory}' is empty.");
        var measurement = Measure(files);
        var assemblies = files.Where(f => f.Relative.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)).ToList();
        var context = new BundleLoadContext();
        var apps = new List<IEnclaveApp>();
        foreach (var (relative, bytes) in assemblies)
        {
            Assembly asm;
            try
            {
                asm = context.LoadFromStream(new MemoryStream(bytes, writable: false));
            }
            catch (BadImageFormatException e)
            {
                throw new InvalidOperationException($"App bundle file '{relative}' is not a loadable assembly: {e.Message}");
            }
            apps.AddRange(asm.GetExportedTypes()
                .Where(t => typeof(IEnclaveApp).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
                .Select(t => (IEnclaveApp)Activator.CreateInstance(t)!));
        }
        if (apps.Count != 1) throw new InvalidOperationException($"App bundle '{directory}' must contain exactly one app; found {apps.Count}.");
        return new AppBundle(measurement, apps[0]);
    }

    /// <summary>SHA-384 over (u32 path length ‖ path ‖ u64 content length ‖ content) for each file in order.</summary>
    public static string Measure(IEnumerable<(string Relative, byte[] Bytes)> files)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA384);
        Span<byte> len = stackalloc byte[8];
        foreach (var (relative, bytes) in files)
        {
            var path = Encoding.UTF8.GetBytes(relative);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(len, (uint)path.Length);
            h.AppendData(len[..4]);
            h.AppendData(path);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(len, (ulong)bytes.Length);
            h.AppendData(len);
            h.AppendData(bytes);
        }
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    /// <summary>Loads the bundle's assemblies in isolation; the contract assembly (TwinSeal.Protocol) resolves to the enclave's own copy.</summary>
    private sealed class BundleLoadContext() : AssemblyLoadContext("twinseal-app-bundle", isCollectible: false)
    {
        protected override Assembly? Load(AssemblyName assemblyName) => null;
    }
}
