namespace TwinSeal.Enclave;

/// <summary>
/// The simulated runtime measurement register: starts at the image measurement and is extended by each new
/// <see cref="ProcessIntegrity"/> finding, never reset — a finding stays after its cause is gone (a preload file emptied,
/// a configuration file deleted after the runtime read it), as on a TEE whose runtime registers only grow.
/// </summary>
public sealed class RuntimeMeasurementRegister(string imageMeasurement)
{
    private readonly List<string> _findings = [];

    /// <summary>Adds the findings not seen before (returned, in order) and gives the register's value after them.</summary>
    public (string Value, IReadOnlyList<string> New) Extend(IEnumerable<string> findings)
    {
        lock (_findings)
        {
            var fresh = findings.Where(f => !_findings.Contains(f)).Distinct().ToList();
            _findings.AddRange(fresh);
            return (ProcessIntegrity.Extend(imageMeasurement, _findings), fresh);
        }
    }
}
