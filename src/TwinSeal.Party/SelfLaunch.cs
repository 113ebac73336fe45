using System.Diagnostics;
using System.Reflection;

namespace TwinSeal.Party;

/// <summary>How to start another <c>twinseal</c> process (a party host, a KMS) from the running one; the isolated area starts from its own image (<see cref="EnclaveProcess"/>).</summary>
/// <param name="FileName">Executable: the apphost, or <c>dotnet</c>.</param>
/// <param name="PrefixArguments">Arguments before the verb (the assembly path when run through <c>dotnet</c>).</param>
public sealed record SelfLaunch(string FileName, IReadOnlyList<string> PrefixArguments)
{
    /// <summary>The command that started this process.</summary>
    public static SelfLaunch Current()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("Cannot tell how this process was started.");
        var name = Path.GetFileNameWithoutExtension(process);
        if (string.Equals(name, "dotnet", StringComparison.OrdinalIgnoreCase))
        {
            var entry = Assembly.GetEntryAssembly()?.Location ?? throw new InvalidOperationException("No entry assembly.");
            return new SelfLaunch(process, [entry]);
        }
        return new SelfLaunch(process, []);
    }

    /// <summary>The twinseal CLI next to a given assembly path, run through <c>dotnet</c> (tests use this).</summary>
    public static SelfLaunch ForAssembly(string cliDllPath)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(dotnet) || !File.Exists(dotnet)) dotnet = "dotnet";
        return new SelfLaunch(dotnet, [cliDllPath]);
    }

    /// <summary>A start-info for <paramref name="arguments"/> with redirected standard streams.</summary>
    public ProcessStartInfo StartInfo(IEnumerable<string> arguments)
    {
        var psi = new ProcessStartInfo(FileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in PrefixArguments.Concat(arguments)) psi.ArgumentList.Add(a);
        return psi;
    }
}
