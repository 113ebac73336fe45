using System.Runtime.InteropServices;
using TwinSeal.Kms;

namespace TwinSeal.Party;

/// <summary>
/// The one folder a party host reads table files from on its own disk (<c>twinseal party serve --import-dir</c>), so a
/// large file goes into the isolated area straight from the disk instead of through the control API's TLS twice.
/// </summary>
/// <remarks>
/// Whoever holds the control token may name a file here, and the host reads it with its own rights: without this
/// bound, a token holder who cannot read the host's files could load its TLS key or a hosted KMS's master key as a
/// table and send it on. So a path is checked twice: as written, before anything is opened (no file outside the
/// folder is ever opened, not even a FIFO that would block the read), and as the opened file really lies, every link
/// followed, so that a link inside the folder to a file outside, or a path swapped between the check and the open,
/// is refused too.
/// </remarks>
public sealed partial class ImportFolder
{
    private readonly string _root;

    /// <summary>The folder <paramref name="directory"/>, which must exist.</summary>
    /// <exception cref="DirectoryNotFoundException">There is no such folder.</exception>
    public ImportFolder(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        var full = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full)) throw new DirectoryNotFoundException($"The import folder '{full}' does not exist.");
        Directory = full;
        _root = WithSeparator(RealPath(full) ?? full);
    }

    /// <summary>The folder, as configured (absolute).</summary>
    public string Directory { get; }

    /// <summary>
    /// Opens <paramref name="path"/> (absolute, or relative to the folder) for reading when the file lies in the folder.
    /// </summary>
    /// <exception cref="KmsException">
    /// <c>outside-import-folder</c> (403), <c>no-file</c> (404), <c>empty-file</c> (422: empty, a pipe or a device),
    /// <c>not-a-file</c> (422: a folder, or a file the host may not read).
    /// </exception>
    public FileStream Open(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var written = Path.GetFullPath(path, Directory);
        if (!Inside(written)) throw Outside(path);
        // A pipe or a device reports no length; opening a pipe would wait for a writer, so neither is opened.
        if (new FileInfo(written) is { Exists: true, Length: 0 })
            throw new KmsException(422, "empty-file", $"'{path}' in the host's import folder is empty, or not a regular file (a pipe or a device): a table file holds at least a header row.");
        FileStream file;
        try
        {
            file = new FileStream(written, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw KmsException.NotFound("no-file", $"There is no file '{path}' in the host's import folder {Directory}.");
        }
        catch (UnauthorizedAccessException)
        {
            throw new KmsException(422, "not-a-file", $"'{path}' in the host's import folder is a folder or a file the host may not read.");
        }
        try
        {
            if (!Inside(OpenedPath(file))) throw Outside(path);
            if (!file.CanSeek) throw new KmsException(422, "not-a-file", $"'{path}' in the host's import folder is not a regular file (a pipe or a device).");
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Whether <paramref name="path"/> (a file or folder that exists) lies in this folder, or is it, once its links are followed.</summary>
    public bool Holds(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.GetFullPath(path);
        return Inside(WithSeparator(RealPath(full) ?? full));
    }

    private bool Inside(string? path) => path is not null && path.StartsWith(_root, StringComparison.Ordinal);

    private KmsException Outside(string path) => KmsException.Forbidden("outside-import-folder",
        $"'{path}' is not in the host's import folder {Directory} (links are followed): the host reads table files only from there.");

    private static string WithSeparator(string path) => path.EndsWith('/') ? path : path + "/";

    // Where the kernel says the opened file lies (Linux); elsewhere the written path with its links resolved.
    private static string? OpenedPath(FileStream file)
    {
        var fd = $"/proc/self/fd/{file.SafeFileHandle.DangerousGetHandle()}";
        return File.Exists(fd) ? File.ResolveLinkTarget(fd, returnFinalTarget: false)?.FullName : RealPath(file.Name);
    }

    private static string? RealPath(string path)
    {
        var resolved = Resolve(path, 0);
        if (resolved == 0) return null;
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            Marshal.FreeHGlobal(resolved);
        }
    }

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint Resolve(string path, nint resolved);
}
