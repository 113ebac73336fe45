using System.Security.Cryptography;

namespace TwinSeal.Party;

/// <summary>
/// Reads from a stream and, as bytes pass, writes them to a copy and adds them to a hash (the inbox file and the
/// signed-hash check); <paramref name="copied"/> runs once, when the end is read and the copy holds every byte.
/// </summary>
internal sealed class TeeReadStream(Stream inner, Stream copy, IncrementalHash hash, Action? copied = null) : ReadOnlyForwardStream
{
    private Action? _copied = copied;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        if (n > 0)
        {
            hash.AppendData(buffer.Span[..n]);
            // Written on this thread: a file write blocks a thread on Linux either way (WriteAsync hands it to another
            // pool thread and back, a hop per chunk received), and into the page cache it takes microseconds.
            copy.Write(buffer.Span[..n]);
        }
        else if (buffer.Length > 0)
        {
            Interlocked.Exchange(ref _copied, null)?.Invoke();
        }
        return n;
    }
}

/// <summary>Base of the forward-only, read-only streams above: synchronous reads go through the asynchronous path.</summary>
internal abstract class ReadOnlyForwardStream : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
