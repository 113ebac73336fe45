using System.Reflection;
using System.Reflection.Emit;

namespace TwinSeal.Cli.Demo;

/// <summary>
/// The startup hook an attacker would inject (for the demo's attack and the tests): an assembly whose
/// <c>StartupHook.Initialize</c> — which the .NET host runs before <c>Main</c> when <c>DOTNET_STARTUP_HOOKS</c> names
/// it — appends the path of the process it runs in to a marker file. Emitted at run time, so no compiler is needed.
/// </summary>
public static class InjectedStartupHook
{
    /// <summary>Writes the hook assembly into <paramref name="directory"/> and returns its path.</summary>
    public static string Write(string directory, string markerFile)
    {
        var name = new AssemblyName("TwinSealInjectedHook");
        var assembly = new PersistedAssemblyBuilder(name, typeof(object).Assembly);
        var type = assembly.DefineDynamicModule(name.Name!).DefineType("StartupHook", TypeAttributes.NotPublic | TypeAttributes.Abstract | TypeAttributes.Sealed);
        var il = type.DefineMethod("Initialize", MethodAttributes.Public | MethodAttributes.Static, typeof(void), Type.EmptyTypes).GetILGenerator();
        il.Emit(OpCodes.Ldstr, markerFile);
        il.Emit(OpCodes.Call, typeof(Environment).GetProperty(nameof(Environment.ProcessPath))!.GetMethod!);
        il.Emit(OpCodes.Ldstr, "\n");
        il.Emit(OpCodes.Call, typeof(string).GetMethod(nameof(string.Concat), [typeof(string), typeof(string)])!);
        il.Emit(OpCodes.Call, typeof(File).GetMethod(nameof(File.AppendAllText), [typeof(string), typeof(string)])!);
        il.Emit(OpCodes.Ret);
        type.CreateType();
        var path = Path.Combine(directory, name.Name + ".dll");
        assembly.Save(path);
        return path;
    }

    /// <summary>The executables of the processes the hook ran in, from its marker file.</summary>
    public static IReadOnlyList<string> ProcessesItRanIn(string markerFile)
        => File.Exists(markerFile) ? File.ReadAllLines(markerFile).Where(l => l.Length > 0).ToList() : [];
}
