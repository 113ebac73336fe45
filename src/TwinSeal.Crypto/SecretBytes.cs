using System.Security.Cryptography;

namespace TwinSeal.Crypto;

/// <summary>
/// A pinned buffer for plaintext key material that is zeroed when disposed.
/// Pinning keeps the GC from leaving stale copies behind when it compacts the heap.
/// </summary>
public sealed class SecretBytes : IDisposable
{
    private readonly byte[] _buffer;
    private bool _disposed;

    private SecretBytes(int length)
    {
        _buffer = GC.AllocateArray<byte>(length, pinned: true);
    }

    /// <summary>Allocates a zero-filled secret buffer of <paramref name="length"/> bytes.</summary>
    public static SecretBytes Allocate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        return new SecretBytes(length);
    }

    /// <summary>Allocates a buffer filled from the system CSPRNG.</summary>
    public static SecretBytes Random(int length)
    {
        var s = Allocate(length);
        RandomNumberGenerator.Fill(s._buffer);
        return s;
    }

    /// <summary>Copies <paramref name="source"/> into a new secret buffer. The caller still owns (and must wipe) the source.</summary>
    public static SecretBytes CopyFrom(ReadOnlySpan<byte> source)
    {
        var s = Allocate(source.Length);
        source.CopyTo(s._buffer);
        return s;
    }

    /// <summary>Length in bytes.</summary>
    public int Length => _buffer.Length;

    /// <summary>The secret bytes. Throws once disposed so a wiped key cannot be used by mistake.</summary>
    public Span<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _buffer;
        }
    }

    /// <summary>Zeroes the buffer.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        CryptographicOperations.ZeroMemory(_buffer);
        _disposed = true;
    }
}
