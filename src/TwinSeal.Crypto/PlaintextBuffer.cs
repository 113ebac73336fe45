using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace TwinSeal.Crypto;

/// <summary>
/// Decrypted data held outside the garbage-collected heap, so that it can be wiped and its memory given back the moment
/// it is no longer needed rather than when the collector gets to it: a 10M-row dataset is 0.4 GB, and the isolated area
/// frees it as soon as its engine has read it. Filled once, as a buffer writer (<see cref="IBufferWriter{T}"/>: decryption
/// opens each segment straight into it); <see cref="Written"/> is what was written. Disposing zeroes and frees it; any use afterwards (a span, a pin) throws
/// <see cref="ObjectDisposedException"/> instead of reading freed memory. There is no finalizer (a span of it could still
/// be in use when the buffer itself is unreachable): whoever allocates one disposes it.
/// </summary>
public sealed unsafe class PlaintextBuffer : MemoryManager<byte>, IBufferWriter<byte>
{
    private byte* _pointer;
    private readonly int _capacity;
    private int _length;
    private int _lent;

    private PlaintextBuffer(int capacity)
    {
        _capacity = capacity;
        // Never fewer than one byte, so an empty buffer still has a pointer to free.
        _pointer = (byte*)NativeMemory.Alloc((nuint)Math.Max(capacity, 1));
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

    /// <inheritdoc />
    public override Span<byte> GetSpan()
    {
        ObjectDisposedException.ThrowIf(_pointer is null, this);
        return new Span<byte>(_pointer, _capacity);
    }

    /// <inheritdoc />
    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(_pointer is null, this);
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, _capacity);
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
        NativeMemory.Free(_pointer);
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
}
