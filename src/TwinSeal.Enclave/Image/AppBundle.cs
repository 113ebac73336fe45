using System.Reflection;
using System.Runtime.Loader;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Enclave;

/// <summary>
/// The app the isolated area runs, loaded from the bytes the image measurement read (<see cref="EnclaveImage"/>), so
/// the file cannot change between measuring and loading. The bundle's assemblies get their own load context; the
/// contract assembly (TwinSeal.Protocol) resolves to the isolated area's own copy.
/// </summary>
public sealed class AppBundle
{
    private AppBundle(IEnclaveApp app) => App = app;

    /// <summary>The loaded app.</summary>
    public IEnclaveApp App { get; }

    /// <summary>Loads the single app among <paramref name="files"/> (relative path and bytes); <paramref name="source"/> names them in errors.</summary>
    public static AppBundle Load(IReadOnlyList<(string Relative, byte[] Bytes)> files, string source)
    {
        if (files.Count == 0) throw new InvalidOperationException($"App bundle '{source}' is empty.");
        var context = new BundleLoadContext();
        var apps = new List<IEnclaveApp>();
        foreach (var (relative, bytes) in files.Where(f => f.Relative.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)))
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
        if (apps.Count != 1) throw new InvalidOperationException($"App bundle '{source}' must contain exactly one app; found {apps.Count}.");
        return new AppBundle(apps[0]);
    }

    private sealed class BundleLoadContext() : AssemblyLoadContext("twinseal-app-bundle", isCollectible: false)
    {
        protected override Assembly? Load(AssemblyName assemblyName) => null;
    }
}
