using TwinSeal.Enclave;

namespace TwinSeal.Apps.Tests;

public sealed class ProcessIntegrityTests
{
    private const string Exe = "/opt/twinseal/enclave/twinseal-enclave";

    private static string Line(string path, string inode = "331651", string perms = "r-xp", string device = "fe:00")
        => $"7f32c870f000-7f32c8711000 {perms} 00031000 {device} {inode}                     {path}";

    private static readonly string[] CleanProcess =
    [
        Line(Exe, "1001", "r--p"),
        Line(Exe, "1001"),
        Line(Exe, "1001", "r--s"),
        Line("/usr/lib/x86_64-linux-gnu/libc.so.6"),
        Line("/lib/x86_64-linux-gnu/libssl.so.3"),
        Line("/memfd:doublemapper (deleted)", "12", "rw-s", "00:01"),
        Line("/memfd:doublemapper (deleted)", "12", "r-xs", "00:01"),
        Line("/dev/zero (deleted)", "164", "rw-s", "00:01"),
        Line("/memfd:twinseal-plaintext (deleted)", "2051", "rw-s", "00:01"),
        "7ffd97ee6000-7ffd97f07000 rw-p 00000000 00:00 0                          [stack]",
        "564598878000-5645988b0000 ---p 00000000 00:00 0 ",
    ];

    [Fact]
    public void A_process_that_maps_only_its_executable_the_OS_libraries_and_runtime_memory_has_no_finding()
    {
        Assert.Empty(ProcessIntegrity.MappedFiles(CleanProcess, Exe));
    }

    [Theory]
    [InlineData("/tmp/libinjected.so")]
    [InlineData("/home/party/hook/TwinSealInjectedHook.dll")]
    [InlineData("/usr/share/dotnet/shared/Microsoft.NETCore.App/10.0.12/libcoreclr.so")]
    [InlineData("/memfd:injected (deleted)")]
    [InlineData("/opt/twinseal/enclave/libextra.so")]
    public void Any_other_mapped_file_is_a_finding_naming_it(string path)
    {
        var finding = Assert.Single(ProcessIntegrity.MappedFiles([.. CleanProcess, Line(path), Line(path, perms: "r--p")], Exe));

        Assert.Equal($"mapped file {path}", finding);
    }

    private const string Engine = "/opt/twinseal/enclave/libduckdb.so";

    private static readonly FileIdentity MeasuredEngine = new(Engine, 0xfe, 0x00, 4242, 1_700_000_000_000_000_000);

    [Fact]
    public void A_measured_image_file_mapped_with_the_device_and_inode_it_was_measured_with_has_no_finding()
    {
        Assert.Empty(ProcessIntegrity.MappedFiles([.. CleanProcess, Line(Engine, "4242"), Line(Engine, "4242", "r--p")], Exe, [MeasuredEngine]));
    }

    [Theory]
    [InlineData("4243", "fe:00")]
    [InlineData("4242", "fe:01")]
    public void A_measured_image_path_mapped_from_another_file_is_a_finding(string inode, string device)
    {
        // What replacing libduckdb.so between measurement and the engine's first use would look like.
        var finding = Assert.Single(ProcessIntegrity.MappedFiles([.. CleanProcess, Line(Engine, inode, device: device)], Exe, [MeasuredEngine]));

        Assert.Equal($"mapped file {Engine} is not the file measured under that name", finding);
    }

    [Fact]
    public void A_mapped_image_file_written_in_place_after_it_was_measured_is_a_finding()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "libduckdb.so");
        File.WriteAllBytes(path, [1, 2, 3]);
        var measured = FileIdentity.Of(path);
        var maps = new[] { Line(path, measured.Inode.ToString(System.Globalization.CultureInfo.InvariantCulture), device: $"{measured.DeviceMajor:x2}:{measured.DeviceMinor:x2}") };
        Assert.Empty(ProcessIntegrity.ChangedSinceMeasured(maps, [measured]));

        // Same inode, so the map still names it; other bytes, so the measurement no longer describes what runs.
        Thread.Sleep(20);
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Write)) f.WriteByte(9);

        var finding = Assert.Single(ProcessIntegrity.ChangedSinceMeasured(maps, [measured]));
        Assert.Equal($"image file {path} changed since it was measured", finding);
    }

    [Fact]
    public void A_path_with_spaces_is_read_whole()
    {
        var finding = Assert.Single(ProcessIntegrity.MappedFiles([.. CleanProcess, Line("/tmp/my hook/x.so")], Exe));

        Assert.Equal("mapped file /tmp/my hook/x.so", finding);
    }

    [Fact]
    public void The_executable_path_mapped_from_two_different_files_is_a_finding()
    {
        // What a swap of the file between exec and the single-file host opening its bundle would look like.
        var finding = Assert.Single(ProcessIntegrity.MappedFiles([.. CleanProcess, Line(Exe, "2002", "r--s")], Exe));

        Assert.Contains("two different files", finding, StringComparison.Ordinal);
    }

    [Fact]
    public void The_executable_when_deleted_after_start_is_a_finding()
    {
        var findings = ProcessIntegrity.MappedFiles([.. CleanProcess.Where(l => !l.EndsWith(Exe, StringComparison.Ordinal)), Line(Exe + " (deleted)", "1001")], Exe).ToList();

        Assert.Contains($"mapped file {Exe} (deleted)", findings);
    }

    [Fact]
    public void No_finding_leaves_the_image_measurement_as_it_is()
    {
        var image = new string('a', 96);

        Assert.Equal(image, ProcessIntegrity.Extend(image, []));
    }

    [Fact]
    public void Each_finding_gives_another_measurement_and_the_order_counts()
    {
        var image = new string('a', 96);
        var one = ProcessIntegrity.Extend(image, ["mapped file /tmp/a.so"]);
        var two = ProcessIntegrity.Extend(image, ["mapped file /tmp/a.so", "environment variable LD_PRELOAD"]);
        var swapped = ProcessIntegrity.Extend(image, ["environment variable LD_PRELOAD", "mapped file /tmp/a.so"]);

        Assert.Matches("^[0-9a-f]{96}$", one);
        Assert.Equal(4, new[] { image, one, two, swapped }.Distinct().Count());
    }

    [Fact]
    public void The_agreed_environment_turns_the_diagnostic_port_off_points_OpenSSL_into_the_image_and_holds_nothing_else()
    {
        Assert.Equal(
            new Dictionary<string, string> { ["DOTNET_EnableDiagnostics"] = "0", ["OPENSSL_CONF"] = "/opt/twinseal/enclave/openssl.cnf" },
            ProcessIntegrity.EnvironmentFor("/opt/twinseal/enclave"));
    }

    [Fact]
    public void A_second_memory_file_under_the_runtimes_double_mapping_name_is_a_finding()
    {
        // An inherited memfd named like the runtime's own, holding a library loaded through /proc/self/fd/N.
        var finding = Assert.Single(ProcessIntegrity.MappedFiles([.. CleanProcess, Line("/memfd:doublemapper (deleted)", "99", "r-xp", "00:01")], Exe));

        Assert.Contains("double mapping", finding, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/memfd:doublemapper-evil (deleted)")]
    [InlineData("/dev/zero-evil")]
    public void A_name_that_only_starts_like_a_runtime_mapping_is_a_finding(string path)
    {
        Assert.Single(ProcessIntegrity.MappedFiles([.. CleanProcess, Line(path)], Exe));
    }

    private static string Mount(string point) => $"210 27 0:99 /attack {point} rw,relatime - tmpfs tmpfs rw";

    private static readonly string[] OrdinaryMounts =
    [
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
        "22 27 0:21 / /proc rw,relatime - proc proc rw",
        "25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw",
        "90 27 0:40 / /home rw,relatime - ext4 /dev/vdb rw",
        "91 27 0:41 / /tmp rw,relatime - tmpfs tmpfs rw",
        "92 27 254:0 /var/lib/docker/containers/x/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw",
        "93 22 0:50 / /proc/sys/fs/binfmt_misc rw,relatime - autofs systemd-1 rw",
        "94 27 254:0 /usr /usr ro,relatime - ext4 /dev/vda rw",
    ];

    [Fact]
    public void Ordinary_mounts_including_ones_above_the_image_are_no_finding()
    {
        Assert.Empty(ProcessIntegrity.Mounts(OrdinaryMounts, "/home/party/twinseal/enclave", 4242));
    }

    [Theory]
    [InlineData("/usr/lib/ssl/misc")]
    [InlineData("/usr/lib/x86_64-linux-gnu/libc.so.6")]
    [InlineData("/lib")]
    [InlineData("/etc/ld.so.preload")]
    [InlineData("/etc/ld.so.conf.d")]
    [InlineData("/etc")]
    [InlineData("/home/party/twinseal/enclave")]
    [InlineData("/home/party/twinseal/enclave/apps")]
    [InlineData("/home/party/with\\040space")]
    [InlineData("/proc/4242/mountinfo")]
    [InlineData("/proc/4242/maps")]
    public void A_mount_over_system_code_loader_configuration_or_the_image_is_a_finding(string point)
    {
        var image = point.Contains("space", StringComparison.Ordinal) ? "/home/party/with space" : "/home/party/twinseal/enclave";

        var finding = Assert.Single(ProcessIntegrity.Mounts([.. OrdinaryMounts, Mount(point)], image, 4242));

        Assert.StartsWith("mount at /", finding, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tracer_is_named_and_no_tracer_is_none()
    {
        Assert.Equal("4242", ProcessIntegrity.TracerOf(["Name:\ttwinseal-enclave", "TracerPid:\t4242"]));
        Assert.Null(ProcessIntegrity.TracerOf(["Name:\ttwinseal-enclave", "TracerPid:\t0"]));
    }

    [Fact]
    public void The_runtime_register_keeps_a_finding_after_its_cause_is_gone()
    {
        var image = new string('a', 96);
        var register = new RuntimeMeasurementRegister(image);

        var (withPreload, fresh) = register.Extend(["system-wide preload /etc/ld.so.preload: /proc/self/fd/7"]);
        var (afterwards, none) = register.Extend([]);

        Assert.NotEqual(image, withPreload);
        Assert.Single(fresh);
        Assert.Equal(withPreload, afterwards);
        Assert.Empty(none);
    }

    [Fact]
    public void The_runtime_register_counts_a_repeated_finding_once()
    {
        var register = new RuntimeMeasurementRegister(new string('a', 96));

        var once = register.Extend(["mapped file /tmp/a.so"]).Value;

        Assert.Equal(once, register.Extend(["mapped file /tmp/a.so"]).Value);
    }

    [Theory]
    [InlineData("/dev/zero (deleted)", "rw-s", "fe:00")]
    [InlineData("/dev/zero", "r-xp", "00:01")]
    [InlineData("/memfd:twinseal-plaintext (deleted)", "r-xs", "00:01")]
    [InlineData("/memfd:twinseal-plaintext (deleted)", "rw-s", "fe:00")]
    public void A_file_mapped_under_the_name_of_data_memory_that_is_code_or_not_memory_is_a_finding(string path, string perms, string device)
    {
        Assert.Single(ProcessIntegrity.MappedFiles([.. CleanProcess, Line(path, "7", perms, device)], Exe));
    }

    [Fact]
    public void A_memory_map_without_the_executable_or_the_stack_is_a_finding()
    {
        // What a file bind-mounted over /proc/PID/maps would show: nothing, or a copy with the injected lines taken out.
        Assert.Single(ProcessIntegrity.MappedFiles([], Exe));
        Assert.Single(ProcessIntegrity.MappedFiles(CleanProcess.Where(l => !l.Contains("[stack]", StringComparison.Ordinal)), Exe));
    }

    [Fact]
    public void A_mount_table_without_a_root_mount_is_a_finding()
    {
        var finding = Assert.Single(ProcessIntegrity.Mounts([], "/home/party/twinseal/enclave", 4242));

        Assert.Contains("root mount", finding, StringComparison.Ordinal);
    }

    [Fact]
    public void A_folder_bound_onto_itself_on_the_root_filesystem_is_no_finding_but_one_bound_from_elsewhere_is()
    {
        Assert.Empty(ProcessIntegrity.Mounts([.. OrdinaryMounts, "95 27 254:0 /usr/lib /usr/lib ro - ext4 /dev/vda ro"], "/opt/enclave", 4242));
        Assert.Single(ProcessIntegrity.Mounts([.. OrdinaryMounts, "95 27 254:0 /tmp/evil /usr/lib/ssl/misc rw - ext4 /dev/vda rw"], "/opt/enclave", 4242));
    }
}
