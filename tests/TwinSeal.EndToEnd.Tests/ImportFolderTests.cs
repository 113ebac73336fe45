using System.Diagnostics;
using TwinSeal.Kms;
using TwinSeal.Party;

namespace TwinSeal.EndToEnd.Tests;

/// <summary>
/// What a party host's import folder opens for a control-token holder, and what it refuses before reading a byte:
/// the attacks of an attacker helper against a running host (hard links, links to pipes and devices, loops, probes for
/// files outside), each pinned here.
/// </summary>
public sealed class ImportFolderTests : IDisposable
{
    private readonly string _work = Directory.CreateTempSubdirectory("twinseal-imports-").FullName;

    private string Imports => Path.Combine(_work, "imports");

    // A key of the host's that lies outside the folder.
    private string Secret => Path.Combine(_work, "party", "control.token");

    public ImportFolderTests()
    {
        Directory.CreateDirectory(Imports);
        Directory.CreateDirectory(Path.GetDirectoryName(Secret)!);
        File.WriteAllText(Secret, "secret-token-value\n");
        File.WriteAllText(Path.Combine(Imports, "data.csv"), "email,n\na@x.org,1\n");
    }

    public void Dispose() => Directory.Delete(_work, recursive: true);

    private static async Task RunAsync(string program, params string[] args)
    {
        using var p = Process.Start(program, args);
        await p.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, p.ExitCode);
    }

    private KmsException Refused(string path, ImportFolder? folder = null)
    {
        var e = Assert.Throws<KmsException>(() => (folder ?? new ImportFolder(Imports)).Open(path).Dispose());
        Assert.DoesNotContain("secret-token-value", e.Message, StringComparison.Ordinal);
        return e;
    }

    [Fact]
    public void A_file_in_the_folder_is_opened_by_its_name_or_its_full_path()
    {
        using var byName = new ImportFolder(Imports).Open("data.csv");
        using var byPath = new ImportFolder(Imports).Open(Path.Combine(Imports, "data.csv"));

        Assert.Equal((18L, 18L), (byName.Length, byPath.Length));
    }

    [Fact]
    public async Task A_hard_link_inside_the_folder_to_a_key_outside_is_refused_unread()
    {
        await RunAsync("ln", Secret, Path.Combine(Imports, "innocent.csv"));

        var e = Refused("innocent.csv");

        Assert.Equal((422, "hard-linked-file"), (e.Status, e.Code));
    }

    [Fact]
    public async Task A_link_to_a_pipe_outside_is_refused_without_waiting_for_a_writer()
    {
        var fifo = Path.Combine(_work, "pipe");
        await RunAsync("mkfifo", fifo);
        File.CreateSymbolicLink(Path.Combine(Imports, "pipe.csv"), fifo);

        var e = await Task.Run(() => Refused("pipe.csv")).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        Assert.Equal((403, "outside-import-folder"), (e.Status, e.Code));
    }

    [Fact]
    public async Task A_pipe_inside_the_folder_is_opened_without_waiting_for_a_writer_and_refused()
    {
        await RunAsync("mkfifo", Path.Combine(Imports, "pipe.csv"));

        var e = await Task.Run(() => Refused("pipe.csv")).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        Assert.Equal((422, "not-a-file"), (e.Status, e.Code));
    }

    [Fact]
    public void A_link_to_a_device_outside_is_refused()
    {
        File.CreateSymbolicLink(Path.Combine(Imports, "zeros.csv"), "/dev/zero");

        Assert.Equal("outside-import-folder", Refused("zeros.csv").Code);
    }

    [Fact]
    public void A_loop_of_links_is_not_a_file()
    {
        File.CreateSymbolicLink(Path.Combine(Imports, "a.csv"), Path.Combine(Imports, "b.csv"));
        File.CreateSymbolicLink(Path.Combine(Imports, "b.csv"), Path.Combine(Imports, "a.csv"));

        var e = Refused("a.csv");

        Assert.Equal((422, "not-a-file"), (e.Status, e.Code));
    }

    [Theory]
    [InlineData("data.csv\0")]
    [InlineData("\0")]
    [InlineData("   ")]
    [InlineData("\t")]
    public void A_path_with_a_nul_or_nothing_but_spaces_is_malformed(string path)
    {
        var e = Refused(path);

        Assert.Equal((400, "malformed-request"), (e.Status, e.Code));
    }

    [Fact]
    public void A_name_too_long_for_the_system_is_malformed()
    {
        var e = Refused(new string('x', 300) + ".csv");

        Assert.Equal((400, "malformed-request"), (e.Status, e.Code));
    }

    [Fact]
    public void Whether_a_file_outside_exists_is_not_told_through_a_link_to_the_root()
    {
        File.CreateSymbolicLink(Path.Combine(Imports, "root"), "/");

        var existing = Refused(Path.Combine("root", Secret.TrimStart('/')));
        var missing = Refused(Path.Combine("root", _work.TrimStart('/'), "no-such-file"));
        var folder = Refused(Path.Combine("root", _work.TrimStart('/')));

        Assert.All([existing, missing, folder], e => Assert.Equal((403, "outside-import-folder"), (e.Status, e.Code)));
    }

    [Fact]
    public void A_refusal_names_the_path_given_never_the_folder()
    {
        foreach (var path in new[] { "../party/control.token", "nowhere.csv", "." })
            Assert.DoesNotContain(Imports, Refused(path).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_file_inside_is_reported_missing()
    {
        var e = Refused("nowhere.csv");

        Assert.Equal((404, "no-file"), (e.Status, e.Code));
    }

    [Fact]
    public void An_import_folder_reached_through_a_link_reads_its_files()
    {
        var link = Path.Combine(_work, "linked-imports");
        Directory.CreateSymbolicLink(link, Imports);
        var folder = new ImportFolder(link);

        using var relative = folder.Open("data.csv");
        using var absolute = folder.Open(Path.Combine(link, "data.csv"));

        Assert.Equal((18L, 18L), (relative.Length, absolute.Length));
    }

    [Fact]
    public void An_empty_file_and_the_folder_itself_are_refused()
    {
        File.WriteAllText(Path.Combine(Imports, "empty.csv"), "");

        Assert.Equal("empty-file", Refused("empty.csv").Code);
        Assert.Equal("not-a-file", Refused(".").Code);
        Assert.Equal("not-a-file", Refused(Imports + "/").Code);
    }

    [Fact]
    public void A_folder_holds_what_lies_in_it_and_itself_links_followed_but_not_its_neighbours()
    {
        var folder = new ImportFolder(_work);
        var beside = Directory.CreateDirectory(_work + "-beside").FullName;
        try
        {
            Assert.True(folder.Holds(Imports));
            Assert.True(folder.Holds(_work));
            Assert.False(folder.Holds(beside));
        }
        finally
        {
            Directory.Delete(beside);
        }
    }
}
