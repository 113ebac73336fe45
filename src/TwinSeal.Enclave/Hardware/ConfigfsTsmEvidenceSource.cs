using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using TwinSeal.Attestation;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Protocol;

namespace TwinSeal.Enclave.Hardware;

/// <summary>Hardware evidence could not be obtained; the enclave answers with the code <c>evidence-unavailable</c>.</summary>
public sealed class HardwareEvidenceException(string message) : ProtocolException("evidence-unavailable", message);

/// <summary>
/// The file operations <see cref="ConfigfsTsmEvidenceSource"/> performs under the configfs-tsm report root. The real one
/// (<see cref="ConfigfsTsmFileSystem.Real"/>) talks to the kernel; tests substitute one that plays the kernel on an
/// ordinary directory tree laid out like configfs.
/// </summary>
public interface IConfigfsTsmFileSystem
{
    /// <summary>True when the report root exists.</summary>
    bool DirectoryExists(string path);

    /// <summary><c>mkdir</c>: creates a report entry; fails when it exists. The kernel populates its attributes.</summary>
    void CreateDirectory(string path);

    /// <summary><c>rmdir</c>: removes a report entry with its attributes.</summary>
    void RemoveDirectory(string path);

    /// <summary>True when an attribute exists (e.g. <c>auxblob</c> is not offered by every provider).</summary>
    bool FileExists(string path);

    /// <summary>Reads an attribute to its end; fails when it holds more than <paramref name="maxBytes"/>.</summary>
    byte[] Read(string path, int maxBytes);

    /// <summary>Writes an attribute in one <c>write</c> call, without truncating (configfs attributes cannot be truncated).</summary>
    void Write(string path, ReadOnlySpan<byte> data);
}

/// <summary>The real configfs file operations.</summary>
public sealed class ConfigfsTsmFileSystem : IConfigfsTsmFileSystem
{
    private ConfigfsTsmFileSystem()
    {
    }

    /// <summary>The one instance.</summary>
    public static ConfigfsTsmFileSystem Real { get; } = new();

    /// <inheritdoc />
    public bool DirectoryExists(string path) => Directory.Exists(path);

    /// <inheritdoc />
    public void CreateDirectory(string path)
    {
        // Directory.CreateDirectory succeeds on an existing directory; a report entry must be ours alone.
        if (Directory.Exists(path))
            throw new IOException($"'{path}' already exists");
        Directory.CreateDirectory(path);
    }

    /// <inheritdoc />
    public void RemoveDirectory(string path) => Directory.Delete(path, recursive: false); // rmdir; configfs drops the attributes itself

    /// <inheritdoc />
    public bool FileExists(string path) => File.Exists(path);

    /// <inheritdoc />
    public byte[] Read(string path, int maxBytes)
    {
        // configfs reports a fixed st_size (4096), so read to end of file rather than trusting the length.
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int n;
        while ((n = stream.Read(chunk)) > 0)
        {
            if (buffer.Length + n > maxBytes)
                throw new IOException($"'{path}' holds more than {maxBytes} bytes");
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    /// <inheritdoc />
    public void Write(string path, ReadOnlySpan<byte> data)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
        stream.Write(data);
    }
}

/// <summary>Options of <see cref="ConfigfsTsmEvidenceSource"/>.</summary>
public sealed record ConfigfsTsmOptions
{
    /// <summary>File operations; the real configfs by default.</summary>
    public IConfigfsTsmFileSystem FileSystem { get; init; } = ConfigfsTsmFileSystem.Real;

    /// <summary>SEV-SNP only: the VMPL to request the report at (written to <c>privlevel</c>); null leaves the kernel's default (<c>privlevel_floor</c>).</summary>
    public int? PrivilegeLevel { get; init; }

    /// <summary>How many times a request is made again after another writer changed the entry (generation mismatch). At least 1.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>SEV-SNP only: the product line, used when neither the report (version 2 has no CPUID) nor the certificates in <c>auxblob</c> name it.</summary>
    public SevSnpProduct? SevSnpProduct { get; init; }
}

/// <summary>
/// Evidence from a confidential VM through Linux configfs-tsm (<c>/sys/kernel/config/tsm/report</c>, Linux 6.7 and
/// later): an AMD SEV-SNP guest (<c>sev_guest</c> provider) or an Intel TDX guest (<c>tdx_guest</c> provider). Each
/// request creates its own report entry (<c>mkdir</c>), reads <c>provider</c> and <c>generation</c>, writes the 64-byte
/// report data to <c>inblob</c> (after <c>privlevel</c> when set), reads <c>outblob</c> (the SNP report or the TD
/// quote) and, for SNP, <c>auxblob</c> (the host's certificate table: VCEK/VLEK, ASK, ARK), reads <c>generation</c> again
/// and removes the entry (<c>rmdir</c>). A generation that moved by more than this request's own writes means another
/// writer used the entry; the request is made again, up to <see cref="ConfigfsTsmOptions.MaxAttempts"/> times. The
/// report data inside the returned report is compared with what was written, too.
/// </summary>
/// <remarks>
/// The hardware measures the VM, so the app name, measurement and platform tests given to <see cref="Acquire"/> are not
/// part of this evidence: the verified measurement is the launch measurement (SNP MEASUREMENT, TDX MRTD), and the app
/// bundle must be part of the measured image. SNP evidence is a <see cref="SevSnpEvidence"/> envelope with the
/// certificates from <c>auxblob</c> (none when the host supplies none: the KMS then needs them in its certificate
/// cache); TDX evidence is an <see cref="IntelDcapEvidence"/> envelope without collateral (the KMS uses its collateral
/// folder). Needs root (or write access to configfs) inside a confidential guest; it cannot run on ordinary machines.
/// </remarks>
public sealed class ConfigfsTsmEvidenceSource : IEvidenceSource
{
    /// <summary>Where Linux mounts the configfs-tsm report interface.</summary>
    public const string DefaultReportRoot = "/sys/kernel/config/tsm/report";

    /// <summary>Largest <c>outblob</c> or <c>auxblob</c> read (a TD quote is about 5 KB, a certificate table about 5 KB).</summary>
    public const int MaxBlobBytes = 1024 * 1024;

    private const int ReportDataLength = 64;

    private readonly string _root;
    private readonly ConfigfsTsmOptions _options;
    private readonly string _provider;

    /// <summary>Creates a source for one platform.</summary>
    /// <param name="platform"><c>amd-sev-snp</c> (provider <c>sev_guest</c>) or <c>intel-tdx</c> (provider <c>tdx_guest</c>).</param>
    /// <param name="reportRoot">The configfs-tsm report folder; <see cref="DefaultReportRoot"/> on a real guest.</param>
    /// <param name="options">Options; defaults use the real configfs.</param>
    public ConfigfsTsmEvidenceSource(string platform, string reportRoot = DefaultReportRoot, ConfigfsTsmOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentException.ThrowIfNullOrEmpty(reportRoot);
        _options = options ?? new ConfigfsTsmOptions();
        _provider = ProviderOf(platform) ?? throw new ArgumentException($"configfs-tsm serves amd-sev-snp and intel-tdx evidence, not '{platform}'", nameof(platform));
        if (_options.MaxAttempts < 1)
            throw new ArgumentOutOfRangeException(nameof(options), "MaxAttempts must be at least 1");
        if (_options.PrivilegeLevel is < 0 or > 3)
            throw new ArgumentOutOfRangeException(nameof(options), "PrivilegeLevel must be 0 to 3");
        if (_options.PrivilegeLevel is not null && platform != SevSnpEvidence.PlatformTag)
            throw new ArgumentException("a privilege level (VMPL) applies to SEV-SNP only", nameof(options));
        Platform = platform;
        _root = reportRoot;
    }

    /// <inheritdoc />
    public string Platform { get; }

    /// <inheritdoc />
    public bool Simulated => false;

    /// <summary>The TwinSeal platform tag for a configfs-tsm provider name, or null for one TwinSeal does not verify.</summary>
    public static string? PlatformOfProvider(string provider) => provider switch
    {
        "sev_guest" => SevSnpEvidence.PlatformTag,
        "tdx_guest" => IntelDcapEvidence.TdxPlatform,
        _ => null,
    };

    /// <summary>
    /// Which platform the guest's configfs-tsm provider serves (by creating and removing a report entry), or null when
    /// there is no configfs-tsm report folder at <paramref name="reportRoot"/>.
    /// </summary>
    /// <exception cref="HardwareEvidenceException">The folder exists but an entry cannot be created or the provider is unknown.</exception>
    public static string? DetectPlatform(string reportRoot = DefaultReportRoot, IConfigfsTsmFileSystem? fileSystem = null)
    {
        var fs = fileSystem ?? ConfigfsTsmFileSystem.Real;
        if (!fs.DirectoryExists(reportRoot))
            return null;
        var entry = CreateEntry(fs, reportRoot);
        try
        {
            var provider = ReadProvider(fs, entry);
            return PlatformOfProvider(provider) ?? throw new HardwareEvidenceException($"configfs-tsm provider '{provider}' is not one TwinSeal verifies (sev_guest, tdx_guest)");
        }
        finally
        {
            RemoveEntry(fs, entry);
        }
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException"><paramref name="reportData"/> is not 64 bytes.</exception>
    /// <exception cref="HardwareEvidenceException">configfs-tsm is missing, refuses the request, serves another platform, or other writers kept changing the entry.</exception>
    public Evidence Acquire(string appName, string measurement, IReadOnlyDictionary<string, string> platformTests, byte[] reportData)
    {
        ArgumentNullException.ThrowIfNull(reportData);
        if (reportData.Length != ReportDataLength)
            throw new ArgumentException($"report data is {reportData.Length} bytes; configfs-tsm evidence binds exactly {ReportDataLength}", nameof(reportData));
        var fs = _options.FileSystem;
        if (!fs.DirectoryExists(_root))
            throw new HardwareEvidenceException($"configfs-tsm is not available: '{_root}' does not exist (needs Linux 6.7 or later inside an SEV-SNP or TDX guest, configfs mounted at /sys/kernel/config, and the sev-guest or tdx-guest driver loaded)");

        string? lastConflict = null;
        for (var attempt = 1; attempt <= _options.MaxAttempts; attempt++)
        {
            var (outblob, auxblob, conflict) = RequestOnce(fs, reportData);
            if (conflict is not null)
            {
                lastConflict = conflict;
                continue;
            }
            return Platform == SevSnpEvidence.PlatformTag ? SevSnp(outblob, auxblob, reportData) : Tdx(outblob, reportData);
        }
        throw new HardwareEvidenceException($"another writer changed the configfs-tsm report entry during each of {_options.MaxAttempts} attempts ({lastConflict}); the report cannot be trusted to be for this request");
    }

    private (byte[] Outblob, byte[]? Auxblob, string? Conflict) RequestOnce(IConfigfsTsmFileSystem fs, byte[] reportData)
    {
        var entry = CreateEntry(fs, _root);
        try
        {
            var provider = ReadProvider(fs, entry);
            if (provider != _provider)
                throw new HardwareEvidenceException($"configfs-tsm provider is '{provider}', {Platform} evidence needs '{_provider}'");
            var before = ReadGeneration(fs, entry);
            var writes = 0UL;
            try
            {
                if (_options.PrivilegeLevel is { } level)
                {
                    fs.Write(Path.Combine(entry, "privlevel"), Encoding.ASCII.GetBytes(level.ToString(CultureInfo.InvariantCulture) + "\n"));
                    writes++;
                }
                fs.Write(Path.Combine(entry, "inblob"), reportData);
                writes++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new HardwareEvidenceException($"configfs-tsm refused the report request: {e.Message}");
            }
            byte[] outblob;
            byte[]? auxblob = null;
            try
            {
                outblob = fs.Read(Path.Combine(entry, "outblob"), MaxBlobBytes);
                var aux = Path.Combine(entry, "auxblob");
                if (fs.FileExists(aux))
                    auxblob = fs.Read(aux, MaxBlobBytes);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The kernel reports firmware and host failures (e.g. the quote service is down) as read errors.
                throw new HardwareEvidenceException($"the {_provider} provider could not produce a report: {e.Message}");
            }
            var after = ReadGeneration(fs, entry);
            if (after != before + writes)
                return ([], null, $"generation went from {before} to {after}, this request wrote {writes} time(s)");
            if (outblob.Length == 0)
                throw new HardwareEvidenceException($"the {_provider} provider returned an empty report");
            return (outblob, auxblob, null);
        }
        finally
        {
            RemoveEntry(fs, entry);
        }
    }

    private Evidence SevSnp(byte[] report, byte[]? auxblob, byte[] reportData)
    {
        SevSnpReport parsed;
        try
        {
            parsed = SevSnpReport.Parse(report);
        }
        catch (EvidenceException e)
        {
            throw new HardwareEvidenceException($"the sev_guest provider returned a malformed attestation report: {e.Message}");
        }
        if (!parsed.ReportData.Span.SequenceEqual(reportData))
            throw new HardwareEvidenceException("the SEV-SNP report carries other report data than this request wrote to inblob");

        var certificates = new List<byte[]>();
        if (auxblob is { Length: > 0 })
        {
            IReadOnlyList<(Guid Guid, byte[] Certificate)> table;
            try
            {
                table = SevSnpCertificateTable.Parse(auxblob);
            }
            catch (FormatException e)
            {
                throw new HardwareEvidenceException($"the host's SEV-SNP certificate table (auxblob) is malformed: {e.Message}");
            }
            certificates.AddRange(table
                .Where(e => e.Guid == SevSnpCertificateTable.Vcek || e.Guid == SevSnpCertificateTable.Vlek || e.Guid == SevSnpCertificateTable.Ask || e.Guid == SevSnpCertificateTable.Ark)
                .Select(e => e.Certificate));
        }
        try
        {
            var hints = _options.SevSnpProduct is { } p ? new[] { p } : [];
            return NativeEvidence.SevSnpEnvelope(report, certificates, hints).ToEvidence();
        }
        catch (ArgumentException e)
        {
            throw new HardwareEvidenceException($"the SEV-SNP evidence envelope cannot be built: {e.Message}");
        }
    }

    private static Evidence Tdx(byte[] quote, byte[] reportData)
    {
        DcapQuote parsed;
        try
        {
            parsed = DcapQuote.Parse(quote);
        }
        catch (EvidenceException e)
        {
            throw new HardwareEvidenceException($"the tdx_guest provider returned a malformed quote: {e.Message}");
        }
        if (parsed.TeeType != DcapTeeType.Tdx)
            throw new HardwareEvidenceException("the tdx_guest provider returned a quote that is not a TD quote");
        if (!parsed.ReportData.SequenceEqual(reportData))
            throw new HardwareEvidenceException("the TD quote carries other report data than this request wrote to inblob");
        return new Evidence(IntelDcapEvidence.TdxPlatform, IntelDcapEvidence.Encode(quote, collateralJson: null));
    }

    private static string? ProviderOf(string platform) => platform switch
    {
        SevSnpEvidence.PlatformTag => "sev_guest",
        IntelDcapEvidence.TdxPlatform => "tdx_guest",
        _ => null,
    };

    private static string CreateEntry(IConfigfsTsmFileSystem fs, string root)
    {
        var entry = Path.Combine(root, $"twinseal-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}");
        try
        {
            fs.CreateDirectory(entry);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HardwareEvidenceException($"cannot create a configfs-tsm report entry under '{root}' (needs root or write access to configfs): {e.Message}");
        }
        return entry;
    }

    private static void RemoveEntry(IConfigfsTsmFileSystem fs, string entry)
    {
        try
        {
            fs.RemoveDirectory(entry);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: a left-over entry holds no secret (report data is a hash) and does not disturb other entries.
        }
    }

    private static string ReadProvider(IConfigfsTsmFileSystem fs, string entry)
    {
        try
        {
            return Encoding.ASCII.GetString(fs.Read(Path.Combine(entry, "provider"), 256)).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HardwareEvidenceException($"cannot read the configfs-tsm provider: {e.Message}");
        }
    }

    private static ulong ReadGeneration(IConfigfsTsmFileSystem fs, string entry)
    {
        string text;
        try
        {
            text = Encoding.ASCII.GetString(fs.Read(Path.Combine(entry, "generation"), 64)).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HardwareEvidenceException($"cannot read the configfs-tsm generation: {e.Message}");
        }
        return ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var g)
            ? g
            : throw new HardwareEvidenceException($"configfs-tsm generation '{text}' is not a number");
    }
}
