using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using TwinSeal.Attestation;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Attestation.IntelDcap;
using TwinSeal.Enclave;
using TwinSeal.Enclave.Hardware;
using TwinSeal.Protocol;

namespace TwinSeal.Apps.Tests;

/// <summary>
/// Hardware evidence sources without hardware: <see cref="ConfigfsTsmEvidenceSource"/> against a directory tree laid
/// out like <c>/sys/kernel/config/tsm/report</c>, with <see cref="FakeTsmKernel"/> playing the kernel (it populates a
/// new entry's attributes on mkdir, bumps <c>generation</c> on every write, and answers an <c>inblob</c> write with a
/// canned <c>outblob</c>/<c>auxblob</c> — the real SEV-SNP and TDX samples); and the Nitro stub.
/// </summary>
public sealed class HardwareEvidenceSourceTests : IDisposable
{
    private static readonly byte[] SnpSampleReportData = [1, 2, 3, 4, 5, .. new byte[59]];

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Root => _dir.Sub("report");

    private static string SampleDir(string platform)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "tests", "testdata", "attestation", platform);
            if (Directory.Exists(candidate))
                return candidate;
        }
        throw new InvalidOperationException("tests/testdata/attestation not found above the test assembly");
    }

    private static byte[] Sample(string platform, string file) => File.ReadAllBytes(Path.Combine(SampleDir(platform), file));

    private static byte[][] AskArk()
    {
        var all = new X509Certificate2Collection();
        all.ImportFromPemFile(Path.Combine(SampleDir("amd-sev-snp"), "amd-milan-ask-ark.pem"));
        return [all[0].RawData, all[1].RawData];
    }

    private static FakeTsmKernel SnpKernel()
    {
        var askArk = AskArk();
        return new FakeTsmKernel("sev_guest", Sample("amd-sev-snp", "gosevguest-milan-report.bin"), SevSnpCertificateTable.Build(
        [
            (SevSnpCertificateTable.Vcek, Sample("amd-sev-snp", "gosevguest-milan-vcek.der")),
            (SevSnpCertificateTable.Ask, askArk[0]),
            (SevSnpCertificateTable.Ark, askArk[1]),
        ]));
    }

    private ConfigfsTsmEvidenceSource Source(string platform, FakeTsmKernel kernel, ConfigfsTsmOptions? options = null)
        => new(platform, Root, (options ?? new ConfigfsTsmOptions()) with { FileSystem = kernel });

    private static Evidence Acquire(IEvidenceSource source, byte[] reportData)
        => source.Acquire("secure-match", new string('0', 96), new Dictionary<string, string>(), reportData);

    [Fact]
    public void Snp_guest_evidence_carries_the_kernels_report_and_the_certificates_from_auxblob_and_verifies()
    {
        var kernel = SnpKernel();

        var evidence = Acquire(Source("amd-sev-snp", kernel), SnpSampleReportData);

        Assert.Equal("amd-sev-snp", evidence.Platform);
        var envelope = SevSnpEvidence.Decode(evidence.Document);
        Assert.Equal(kernel.Outblob, envelope.Report);
        Assert.Equal(SevSnpProduct.Milan, envelope.Product);
        Assert.Equal(Sample("amd-sev-snp", "gosevguest-milan-vcek.der"), envelope.Vcek);
        Assert.Equal(AskArk()[0], envelope.Ask);
        Assert.Equal(AskArk()[1], envelope.Ark);
        Assert.Equal(SnpSampleReportData, kernel.LastInblob);
        Assert.Empty(Directory.GetDirectories(Root)); // the entry was removed

        var ark = X509CertificateLoader.LoadCertificate(AskArk()[1]);
        var verifier = new SevSnpVerifier(new Dictionary<SevSnpProduct, X509Certificate2> { [SevSnpProduct.Milan] = ark },
            new FixedTime(new DateTimeOffset(2024, 6, 1, 0, 0, 0, TimeSpan.Zero)), new SevSnpVerifierOptions { AllowDebug = true });
        var claims = verifier.Verify(evidence);
        Assert.Equal("b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01", claims.Measurement);
        Assert.Equal(SnpSampleReportData, claims.ReportData);
    }

    [Fact]
    public void The_kernel_sees_mkdir_provider_generation_inblob_outblob_auxblob_generation_rmdir_in_that_order()
    {
        var kernel = SnpKernel();

        Acquire(Source("amd-sev-snp", kernel), SnpSampleReportData);

        Assert.Equal(["mkdir", "read provider", "read generation", "write inblob", "read outblob", "read auxblob", "read generation", "rmdir"], kernel.Operations);
    }

    [Fact]
    public void Privilege_level_is_written_before_inblob_and_counted_in_the_generation()
    {
        var kernel = SnpKernel();

        Acquire(Source("amd-sev-snp", kernel, new ConfigfsTsmOptions { PrivilegeLevel = 2 }), SnpSampleReportData);

        Assert.Equal(["mkdir", "read provider", "read generation", "write privlevel", "write inblob", "read outblob", "read auxblob", "read generation", "rmdir"], kernel.Operations);
        Assert.Equal("2\n", kernel.LastPrivlevel);
    }

    [Fact]
    public void A_concurrent_writer_on_every_attempt_is_detected_by_the_generation_and_refused()
    {
        var kernel = SnpKernel();
        kernel.ConcurrentWritesPerRequest = int.MaxValue;

        var e = Assert.Throws<HardwareEvidenceException>(() => Acquire(Source("amd-sev-snp", kernel), SnpSampleReportData));

        Assert.Equal("evidence-unavailable", e.Code);
        Assert.Contains("another writer changed the configfs-tsm report entry during each of 3 attempts", e.Message, StringComparison.Ordinal);
        Assert.Contains("generation went from 0 to 2, this request wrote 1 time(s)", e.Message, StringComparison.Ordinal);
        Assert.Equal(3, kernel.Operations.Count(o => o == "mkdir"));
        Assert.Equal(3, kernel.Operations.Count(o => o == "rmdir"));
        Assert.Empty(Directory.GetDirectories(Root));
    }

    [Fact]
    public void A_concurrent_writer_on_the_first_attempt_only_is_survived_by_asking_again()
    {
        var kernel = SnpKernel();
        kernel.ConcurrentWritesPerRequest = 1; // only the first entry sees a foreign write

        var evidence = Acquire(Source("amd-sev-snp", kernel), SnpSampleReportData);

        Assert.Equal(kernel.Outblob, SevSnpEvidence.Decode(evidence.Document).Report);
        Assert.Equal(2, kernel.Operations.Count(o => o == "mkdir"));
    }

    [Fact]
    public void A_report_for_other_report_data_is_refused()
    {
        var kernel = SnpKernel();
        var other = RandomNumberGenerator.GetBytes(64);

        var e = Assert.Throws<HardwareEvidenceException>(() => Acquire(Source("amd-sev-snp", kernel), other));

        Assert.Contains("other report data than this request wrote", e.Message, StringComparison.Ordinal);
        Assert.Equal(other, kernel.LastInblob);
    }

    [Fact]
    public void A_provider_of_another_platform_is_refused()
    {
        var kernel = SnpKernel();

        var e = Assert.Throws<HardwareEvidenceException>(() => Acquire(Source("intel-tdx", kernel), SnpSampleReportData));

        Assert.Contains("provider is 'sev_guest', intel-tdx evidence needs 'tdx_guest'", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetDirectories(Root));
    }

    [Fact]
    public void Tdx_guest_evidence_carries_the_kernels_quote_without_collateral()
    {
        var quote = Sample("intel-tdx", "dcapqvl-tdx-quote-v4.bin");
        var reportData = DcapQuote.Parse(quote).ReportData.ToArray();
        var kernel = new FakeTsmKernel("tdx_guest", quote, auxblob: null);

        var evidence = Acquire(Source("intel-tdx", kernel), reportData);

        Assert.Equal("intel-tdx", evidence.Platform);
        var (carried, collateral) = IntelDcapEvidence.Decode(evidence.Document);
        Assert.Equal(quote, carried);
        Assert.Null(collateral);
        Assert.DoesNotContain("read auxblob", kernel.Operations);
    }

    [Fact]
    public void Report_data_must_be_64_bytes()
    {
        Assert.Throws<ArgumentException>(() => Acquire(Source("amd-sev-snp", SnpKernel()), new byte[32]));
    }

    [Fact]
    public void A_missing_configfs_tsm_folder_is_reported_with_what_it_needs()
    {
        var source = new ConfigfsTsmEvidenceSource("amd-sev-snp", Path.Combine(_dir.Path, "no-such-root"));

        var e = Assert.Throws<HardwareEvidenceException>(() => Acquire(source, SnpSampleReportData));

        Assert.Contains("configfs-tsm is not available", e.Message, StringComparison.Ordinal);
        Assert.Contains("sev-guest or tdx-guest driver", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_provider_error_on_reading_outblob_is_reported()
    {
        var kernel = SnpKernel();
        kernel.FailOutblob = true;

        var e = Assert.Throws<HardwareEvidenceException>(() => Acquire(Source("amd-sev-snp", kernel), SnpSampleReportData));

        Assert.Contains("could not produce a report", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetDirectories(Root));
    }

    [Fact]
    public void Detect_platform_reads_the_provider_and_leaves_no_entry()
    {
        var kernel = new FakeTsmKernel("tdx_guest", [], null);

        Assert.Equal("intel-tdx", ConfigfsTsmEvidenceSource.DetectPlatform(Root, kernel));
        Assert.Null(ConfigfsTsmEvidenceSource.DetectPlatform(Path.Combine(_dir.Path, "absent"), kernel));
        Assert.Empty(Directory.GetDirectories(Root));
    }

    [Fact]
    public void Only_snp_and_tdx_are_served_and_the_source_is_not_simulated()
    {
        Assert.Throws<ArgumentException>(() => new ConfigfsTsmEvidenceSource("aws-nitro", Root));
        Assert.Throws<ArgumentException>(() => new ConfigfsTsmEvidenceSource("intel-tdx", Root, new ConfigfsTsmOptions { PrivilegeLevel = 0 }));
        Assert.False(new ConfigfsTsmEvidenceSource("intel-tdx", Root).Simulated);
    }

    [Fact]
    public void The_real_file_system_reads_to_end_and_writes_without_truncating()
    {
        var file = Path.Combine(_dir.Path, "attr");
        File.WriteAllBytes(file, [9, 9, 9, 9]);

        ConfigfsTsmFileSystem.Real.Write(file, [1, 2]);

        Assert.Equal([1, 2, 9, 9], ConfigfsTsmFileSystem.Real.Read(file, 16));
        Assert.Throws<IOException>(() => ConfigfsTsmFileSystem.Real.Read(file, 3));
        var entry = Path.Combine(_dir.Path, "entry");
        ConfigfsTsmFileSystem.Real.CreateDirectory(entry);
        Assert.Throws<IOException>(() => ConfigfsTsmFileSystem.Real.CreateDirectory(entry));
        ConfigfsTsmFileSystem.Real.RemoveDirectory(entry);
        Assert.False(Directory.Exists(entry));
    }

    // ───────────── SEV-SNP certificate table ─────────────

    [Fact]
    public void Certificate_table_round_trips_and_accepts_mixed_endian_guids()
    {
        var vcek = Sample("amd-sev-snp", "gosevguest-milan-vcek.der");
        var table = SevSnpCertificateTable.Build([(SevSnpCertificateTable.Vcek, vcek), (SevSnpCertificateTable.Ask, AskArk()[0])]);

        var parsed = SevSnpCertificateTable.Parse(table);
        Assert.Equal([SevSnpCertificateTable.Vcek, SevSnpCertificateTable.Ask], parsed.Select(e => e.Guid));
        Assert.Equal(vcek, parsed[0].Certificate);

        // The same table with the GUIDs in .NET/Windows mixed-endian byte order.
        SevSnpCertificateTable.Vcek.TryWriteBytes(table.AsSpan(0, 16), bigEndian: false, out _);
        SevSnpCertificateTable.Ask.TryWriteBytes(table.AsSpan(24, 16), bigEndian: false, out _);
        Assert.Equal([SevSnpCertificateTable.Vcek, SevSnpCertificateTable.Ask], SevSnpCertificateTable.Parse(table).Select(e => e.Guid));
        Assert.Empty(SevSnpCertificateTable.Parse(new byte[4096]));
    }

    [Fact]
    public void Certificate_table_entries_pointing_outside_the_blob_or_a_missing_terminator_are_refused()
    {
        var table = SevSnpCertificateTable.Build([(SevSnpCertificateTable.Vcek, new byte[] { 1, 2, 3 })]);
        var truncated = table[..^1];
        var noTerminator = table[..24];

        Assert.Throws<FormatException>(() => SevSnpCertificateTable.Parse(truncated));
        Assert.Throws<FormatException>(() => SevSnpCertificateTable.Parse(noTerminator));
    }

    [Fact]
    public void Malformed_auxblob_is_reported()
    {
        var kernel = new FakeTsmKernel("sev_guest", Sample("amd-sev-snp", "gosevguest-milan-report.bin"), [0xff, 0xff, 0xff]);

        var e = Assert.Throws<HardwareEvidenceException>(() => Acquire(Source("amd-sev-snp", kernel), SnpSampleReportData));

        Assert.Contains("certificate table (auxblob) is malformed", e.Message, StringComparison.Ordinal);
    }

    // ───────────── AWS Nitro ─────────────

    [Fact]
    public void Nitro_nsm_source_says_exactly_what_is_missing()
    {
        var source = new NitroNsmEvidenceSource();

        var e = Assert.Throws<PlatformNotSupportedException>(() => Acquire(source, new byte[64]));

        Assert.Equal("aws-nitro", source.Platform);
        Assert.False(source.Simulated);
        Assert.Contains("not implemented", e.Message, StringComparison.Ordinal);
        Assert.Contains("NSM_IOCTL_REQUEST ioctl on /dev/nsm", e.Message, StringComparison.Ordinal);
        Assert.Contains("/dev/nsm does not exist on this machine", e.Message, StringComparison.Ordinal);
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    /// <summary>
    /// Plays the Linux kernel's configfs-tsm on an ordinary directory: mkdir creates the entry's attribute files
    /// (provider, generation, inblob, outblob, privlevel, privlevel_floor, and auxblob when the provider has one);
    /// every write bumps generation; an inblob write produces the canned outblob and auxblob; rmdir drops everything.
    /// </summary>
    private sealed class FakeTsmKernel(string provider, byte[] outblob, byte[]? auxblob) : IConfigfsTsmFileSystem
    {
        public byte[] Outblob { get; } = outblob;
        public byte[]? LastInblob { get; private set; }
        public string? LastPrivlevel { get; private set; }
        public List<string> Operations { get; } = [];
        /// <summary>How many of the next requests see another process write to their entry.</summary>
        public int ConcurrentWritesPerRequest { get; set; }
        public bool FailOutblob { get; set; }

        public bool DirectoryExists(string path) => Directory.Exists(path);

        public void CreateDirectory(string path)
        {
            if (Directory.Exists(path))
                throw new IOException("File exists");
            Operations.Add("mkdir");
            Directory.CreateDirectory(path);
            File.WriteAllText(Path.Combine(path, "provider"), provider + "\n");
            File.WriteAllText(Path.Combine(path, "generation"), "0\n");
            File.WriteAllText(Path.Combine(path, "privlevel_floor"), "0\n");
            foreach (var name in new[] { "inblob", "outblob", "privlevel" })
                File.WriteAllBytes(Path.Combine(path, name), []);
            if (auxblob is not null)
                File.WriteAllBytes(Path.Combine(path, "auxblob"), []);
        }

        public void RemoveDirectory(string path)
        {
            Operations.Add("rmdir");
            Directory.Delete(path, recursive: true);
        }

        public bool FileExists(string path) => File.Exists(path);

        public byte[] Read(string path, int maxBytes)
        {
            var name = Path.GetFileName(path);
            Operations.Add($"read {name}");
            if (name == "outblob" && FailOutblob)
                throw new IOException("Input/output error");
            return ConfigfsTsmFileSystem.Real.Read(path, maxBytes);
        }

        public void Write(string path, ReadOnlySpan<byte> data)
        {
            var name = Path.GetFileName(path);
            Operations.Add($"write {name}");
            var entry = Path.GetDirectoryName(path)!;
            File.WriteAllBytes(path, data.ToArray());
            var generation = ulong.Parse(File.ReadAllText(Path.Combine(entry, "generation")), CultureInfo.InvariantCulture) + 1;
            if (name == "privlevel")
                LastPrivlevel = Encoding.ASCII.GetString(data);
            if (name == "inblob")
            {
                LastInblob = data.ToArray();
                File.WriteAllBytes(Path.Combine(entry, "outblob"), Outblob);
                if (auxblob is not null)
                    File.WriteAllBytes(Path.Combine(entry, "auxblob"), auxblob);
                if (ConcurrentWritesPerRequest > 0)
                {
                    // Another process writes inblob of the same entry between our write and our read.
                    ConcurrentWritesPerRequest--;
                    generation++;
                }
            }
            File.WriteAllText(Path.Combine(entry, "generation"), generation.ToString(CultureInfo.InvariantCulture) + "\n");
        }
    }
}
