using System.Globalization;
using System.Security.Cryptography;

namespace TwinSeal.Resilience.Tests;

/// <summary>The environment knobs of the crash harness.</summary>
internal static class CrashSettings
{
    /// <summary>Iterations (kills) for a store: <paramref name="variable"/> if set, else the CI default.</summary>
    public static int Iterations(string variable, int fallback)
    {
        var value = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrWhiteSpace(value)) return fallback;
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1)
            throw new InvalidOperationException($"{variable} must be a positive whole number of iterations, not '{value}'.");
        return n;
    }

    /// <summary>
    /// The run's seed: <c>TWINSEAL_CRASH_SEED</c> to repeat a run, else a fresh one. It fixes the kill delays and every
    /// worker's choice of operations, keys and parties; thread timing (which request a kill lands in) still varies.
    /// </summary>
    public static int Seed()
    {
        var value = Environment.GetEnvironmentVariable("TWINSEAL_CRASH_SEED");
        if (string.IsNullOrWhiteSpace(value)) return RandomNumberGenerator.GetInt32(1, int.MaxValue);
        if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var seed))
            throw new InvalidOperationException($"TWINSEAL_CRASH_SEED must be a 32-bit integer, not '{value}'.");
        return seed;
    }

    /// <summary>Folder the run directories go into (<c>TWINSEAL_CRASH_WORK_ROOT</c>, set by scripts/crash-test), else the temp folder.</summary>
    public static string WorkRoot => Environment.GetEnvironmentVariable("TWINSEAL_CRASH_WORK_ROOT") is { Length: > 0 } root ? root : Path.GetTempPath();

    /// <summary>File that each run appends its one-line summary to (<c>TWINSEAL_CRASH_SUMMARY</c>, set by scripts/crash-test), if any.</summary>
    public static string? SummaryFile => Environment.GetEnvironmentVariable("TWINSEAL_CRASH_SUMMARY") is { Length: > 0 } f ? f : null;
}
