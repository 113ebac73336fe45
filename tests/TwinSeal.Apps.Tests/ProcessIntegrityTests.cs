using TwinSeal.Enclave;

namespace TwinSeal.Apps.Tests;

public sealed class ProcessIntegrityTests
{
    private const string Exe = "/opt/twinseal/enclave/twinseal-enclave";

    private static string Line(string path, string inode = "331651", string perms = "r-xp")
        => $"7f32c870f000-7f32c8711000 {perms} 00031000 fe:00 {inode}                     {path}";

    private static readonly string[] CleanProcess =
    [
        Line(Exe, "1001", "r--p"),
        Line(Exe, "1001"),
        Line(Exe, "1001", "r--s"),
        Line("/usr/lib/x86_64-linux-gnu/libc.so.6"),
        Line("/lib/x86_64-linux-gnu/libssl.so.3"),
        Line("/memfd:doublemapper (deleted)", "12", "rw-s"),
        Line("/dev/zero (deleted)", "164", "rw-s"),
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

    [Fact]
    public void A_path_with_spaces_is_read_whole()
    {
        var finding = Assert.Single(ProcessIntegrity.MappedFiles([Line("/tmp/my hook/x.so")], Exe));

        Assert.Equal("mapped file /tmp/my hook/x.so", finding);
    }

    [Fact]
    public void The_executable_path_mapped_from_two_different_files_is_a_finding()
    {
        // What a swap of the file between exec and the single-file host opening its bundle would look like.
        var finding = Assert.Single(ProcessIntegrity.MappedFiles([Line(Exe, "1001"), Line(Exe, "2002", "r--s")], Exe));

        Assert.Contains("two different files", finding, StringComparison.Ordinal);
    }

    [Fact]
    public void The_executable_when_deleted_after_start_is_a_finding()
    {
        Assert.Single(ProcessIntegrity.MappedFiles([Line(Exe + " (deleted)", "1001")], Exe));
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
    public void The_agreed_environment_turns_the_diagnostic_port_off_and_holds_nothing_else()
    {
        Assert.Equal(new Dictionary<string, string> { ["DOTNET_EnableDiagnostics"] = "0" }, ProcessIntegrity.Environment);
    }
}
