using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace TwinSeal.Crypto;

/// <summary>
/// Decrypted data held outside the garbage-collected heap, so that it can be wiped and its memory given back the moment
/// it is no longer needed rather than when the collector gets to it: a 10M-row dataset is 0.4 GB, and the isolated area
/// frees it as soon as its engine has read it. Filled once, as a buffer writer (<see cref="IBufferWriter{T}"/>: decryption
/// opens each segment straight into it); <see cref="Written"/> is what was written. Disposing zeroes and frees it; any use afterwards (a span, a pin) throws
/// <see cref="ObjectDisposedException"/> instead of reading freed memory. There is no finalizer (a span of it could still
/// be in use when the buffer itself is unreachable): whoever allocates one disposes it.
/// </summary>
/// <remarks>
/// On Linux the memory is a memory-only file (<c>memfd_create</c>) mapped into the process, so that a reader that takes
/// a path, the engine's CSV reader, reads what was written as a file (<see cref="AsFile"/>) with no copy: copying the
/// other party's 1M-row table into such a file cost the isolated area ~0.1 s on one thread between verification and
/// the engine (a write of 43 MB into as many freshly allocated pages). The isolated area also keeps the participant's
/// loaded CSV files in such buffers, for the same reason.
/// </remarks>
public sealed unsafe partial class PlaintextBuffer : MemoryManager<byte>, IBufferWriter<byte>
{
    private byte* _pointer;
    private readonly int _capacity;
    private readonly nuint _mapped;
    private readonly SafeFileHandle? _file;
    private int _length;
    private int _lent;
    private bool _sealed;

    private PlaintextBuffer(int capacity)
    {
        _capacity = capacity;
        // Never fewer than one byte, so an empty buffer still has memory to free.
        _mapped = (nuint)Math.Max(capacity, 1);
        if (!OperatingSystem.IsLinux())
        {
            _pointer = (byte*)NativeMemory.Alloc(_mapped);
            return;
        }
        var fd = MemfdCreate(MemoryFileName, CloseOnExec);
        if (fd < 0) throw new IOException($"memfd_create failed (errno {Marshal.GetLastPInvokeError()}).");
        _file = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            // Sized up front but sparse: a page takes memory only once something is written to it.
            RandomAccess.SetLength(_file, (long)_mapped);
            var at = Mmap(null, _mapped, ProtRead | ProtWrite, MapShared, fd, 0);
            if (at == MapFailed) throw new OutOfMemoryException($"Mapping {_mapped} bytes for decrypted data failed (errno {Marshal.GetLastPInvokeError()}).");
            _pointer = (byte*)at;
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    /// <summary>An empty buffer that can take up to <paramref name="capacity"/> bytes.</summary>
    public static PlaintextBuffer Allocate(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        return new PlaintextBuffer(capacity);
    }

    /// <summary>How many bytes have been written.</summary>
    public int Length => _length;

    /// <summary>The bytes written so far.</summary>
    public ReadOnlyMemory<byte> Written => Memory[.._length];

    /// <summary>Zeroes and frees the buffer now (what disposing it does).</summary>
    public void Wipe() => ((IDisposable)this).Dispose();

    /// <summary>
    /// What was written, as a file of this process that a reader taking a path opens with no copy: the memory-only file
    /// under the buffer (<c>/proc/self/fd/N</c>, readable only from inside the process), or null where there is none
    /// (not Linux). Nothing more can be written afterwards; the file goes with the buffer when it is wiped.
    /// </summary>
    public string? AsFile()
    {
        ObjectDisposedException.ThrowIf(_pointer is null, this);
        if (_file is null) return null;
        if (!_sealed)
        {
            // The file ends where the writing did. Whatever was lent past that and never committed is zeroed first, as
            // those pages go back to the system with the cut.
            CryptographicOperations.ZeroMemory(new Span<byte>(_pointer + _length, _lent - _length));
            _lent = _length;
            RandomAccess.SetLength(_file, _length);
            _sealed = true;
        }
        return "/proc/self/fd/" + _file.DangerousGetHandle().ToInt32().ToString(CultureInfo.InvariantCulture);
    }

    // Once the file is cut to what was written, the mapping past its end may no longer be touched.
    private int Usable => _sealed ? _length : _capacity;

    /// <inheritdoc />
    public override Span<byte> GetSpan()
    {
        ObjectDisposedException.ThrowIf(_pointer is null, this);
        return new Span<byte>(_pointer, Usable);
    }

    /// <inheritdoc />
    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(_pointer is null, this);
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, Usable);
        // Native memory never moves: nothing to pin.
        return new MemoryHandle(_pointer + elementIndex);
    }

    /// <inheritdoc />
    public override void Unpin()
    {
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (_pointer is null) return;
        // Everything written was lent first, so this covers it and whatever was lent but never committed.
        CryptographicOperations.ZeroMemory(new Span<byte>(_pointer, _lent));
        if (_file is null)
        {
            NativeMemory.Free(_pointer);
        }
        else
        {
            _ = Munmap(_pointer, _mapped);
            // Cut to nothing before closing, so the pages are freed even if a reader still holds the file open.
            RandomAccess.SetLength(_file, 0);
            _file.Dispose();
        }
        _pointer = null;
        _length = 0;
        _lent = 0;
    }

    // Lends the `count` bytes after what was written (at least one), remembering how far anything was lent, so that
    // wiping covers what a writer may have put there without committing it (a segment that failed to open).
    private int Lend(int count)
    {
        ObjectDisposedException.ThrowIf(_pointer is null, this);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (_sealed) throw new InvalidOperationException("The buffer was handed on as a file; nothing more can be written to it.");
        count = Math.Max(count, 1);
        if (count > _capacity - _length)
            throw new InvalidOperationException($"The plaintext is longer than the {_capacity} bytes this buffer was made for.");
        _lent = Math.Max(_lent, _length + count);
        return count;
    }

    /// <summary>As a buffer writer, the buffer lends the memory after what was written (decryption opens segments straight into it).</summary>
    Span<byte> IBufferWriter<byte>.GetSpan(int sizeHint) => new(_pointer + _length, Lend(sizeHint));

    /// <inheritdoc cref="IBufferWriter{T}.GetMemory"/>
    Memory<byte> IBufferWriter<byte>.GetMemory(int sizeHint) => Memory.Slice(_length, Lend(sizeHint));

    /// <inheritdoc cref="IBufferWriter{T}.Advance"/>
    void IBufferWriter<byte>.Advance(int count)
    {
        ObjectDisposedException.ThrowIf(_pointer is null, this);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count > _lent - _length)
            throw new InvalidOperationException($"Advancing by {count} bytes goes past the {_lent - _length} bytes lent.");
        _length += count;
    }

    /// <summary>
    /// The name of the memory-only files under these buffers, as the process's memory map shows them
    /// (<c>/memfd:NAME (deleted)</c>): data the isolated area maps itself, never executable.
    /// </summary>
    public const string MemoryFileName = "twinseal-plaintext";

    private const uint CloseOnExec = 1; // MFD_CLOEXEC
    private const int ProtRead = 1, ProtWrite = 2, MapShared = 1;
    private const nint MapFailed = -1;

    [LibraryImport("libc", EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MemfdCreate(string name, uint flags);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(void* address, nuint length);
}
