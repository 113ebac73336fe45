namespace TwinSeal.Crypto;

/// <summary>
/// Two segment buffers taking turns: while one segment is written on to the output (on a pool thread), the next one is
/// sealed or opened into the other. Writing a sealed segment on is a copy the stream cannot avoid (into the output's
/// memory, a pipe or a socket), and done in line it cost a quarter of the cipher's throughput
/// (bench/README.md, "Step 5"); behind the next segment's cipher work it costs a second core, when there is one.
/// At most one write is in flight, and writes reach the output in order; the buffers are wiped when given back.
/// </summary>
internal sealed class SegmentWriteBehind : ISegmentOutput
{
    private readonly Stream _output;
    private readonly int _length;
    private readonly byte[][] _buffers;
    private int _current;
    private Task _writing = Task.CompletedTask;

    public SegmentWriteBehind(Stream output, int bufferLength)
    {
        _output = output;
        _length = bufferLength;
        _buffers = [SegmentBuffer.Rent(bufferLength), SegmentBuffer.Rent(bufferLength)];
    }

    /// <summary>The buffer the next segment goes into: not being written (the write that last used it has completed).</summary>
    public Memory<byte> Next(int length) => _buffers[_current].AsMemory(0, length);

    /// <summary>
    /// Waits for the previous write, then starts writing the first <paramref name="count"/> bytes of <see cref="Next"/>
    /// and hands out the other buffer as the next one.
    /// </summary>
    public async ValueTask PassOnAsync(int count, CancellationToken ct)
    {
        await _writing.ConfigureAwait(false);
        var filled = _buffers[_current];
        _writing = Task.Run(() => _output.WriteAsync(filled.AsMemory(0, count), ct).AsTask(), ct);
        _current ^= 1;
    }

    /// <summary>Waits for the last write; its failure is thrown here.</summary>
    public Task CompleteAsync() => _writing;

    /// <summary>Waits for any write still in flight (a failed stream has thrown already) and wipes both buffers.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _writing.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The stream failed for another reason first, or CompleteAsync reported this one: the buffers still go back
            // only once nothing writes from them.
        }
        foreach (var buffer in _buffers) SegmentBuffer.Return(buffer, _length);
    }
}
