using System.Runtime.InteropServices;

namespace TwinSeal.BenchShared;

/// <summary>What the numbers were measured on.</summary>
internal sealed record Machine(int Cores, string Cpu, double MemoryGiB, string Runtime, string Os, string LoadAverage, string? LoadAverageAtEnd = null)
{
    public static Machine Describe()
    {
        var cpu = "unknown CPU";
        if (File.Exists("/proc/cpuinfo"))
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) cpu = line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (double)(1L << 30);
        return new Machine(Environment.ProcessorCount, cpu, memory, RuntimeInformation.FrameworkDescription, RuntimeInformation.OSDescription, LoadAverageNow());
    }

    public static string LoadAverageNow() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
