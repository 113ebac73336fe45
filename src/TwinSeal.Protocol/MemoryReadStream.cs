namespace TwinSeal.Protocol;

/// <summary>
/// A read-only stream over memory that need not be an array: the isolated area's decrypted dataset lives outside the
/// collected heap (TwinSeal.Crypto's <c>PlaintextBuffer</c>), and reading it through a <see cref="MemoryStream"/> would
/// first copy it into an array there, an unwiped copy of the other party's table (0.4 GB at 10M rows) left for the
/// collector. Copying it out (<see cref="CopyToAsync(Stream, int, CancellationToken)"/>) hands the rest over in one
/// write, as <see cref="MemoryStream"/> does, so a reader that works on whole segments gets them without a copy.
/// </summary>
public sealed class MemoryReadStream(ReadOnlyMemory<byte> bytes) : Stream
{
    private int _position;

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        var n = Math.Min(buffer.Length, bytes.Length - _position);
        bytes.Span.Slice(_position, n).CopyTo(buffer);
        _position += n;
        return n;
    }

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Read(buffer.Span));
    }

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override void CopyTo(Stream destination, int bufferSize)
    {
        var rest = bytes[_position..];
        _position = bytes.Length;
        destination.Write(rest.Span);
    }

    /// <inheritdoc />
    public override async Task CopyToAsync(Stream destination, int bufferSize, CancellationToken cancellationToken)
    {
        var rest = bytes[_position..];
        _position = bytes.Length;
        await destination.WriteAsync(rest, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override bool CanRead => true;
    /// <inheritdoc />
    public override bool CanSeek => false;
    /// <inheritdoc />
    public override bool CanWrite => false;
    /// <inheritdoc />
    public override long Length => bytes.Length;
    /// <inheritdoc />
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    /// <inheritdoc />
    public override void Flush() { }
    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();
    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
