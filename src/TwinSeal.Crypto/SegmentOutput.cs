using System.Buffers;

namespace TwinSeal.Crypto;

/// <summary>Where a dataset stream's segments go once sealed or opened, one at a time and in order.</summary>
internal interface ISegmentOutput : IAsyncDisposable
{
    /// <summary>Memory for the next segment, <paramref name="length"/> bytes, that no earlier segment still uses.</summary>
    Memory<byte> Next(int length);

    /// <summary>The first <paramref name="length"/> bytes of <see cref="Next"/> are done: passes them on.</summary>
    ValueTask PassOnAsync(int length, CancellationToken ct);

    /// <summary>Waits until everything passed on has arrived; a failure to write it is thrown here.</summary>
    Task CompleteAsync();
}

/// <summary>
/// Segments sealed or opened straight into a buffer writer's memory: no copy at all, for an output that can lend its
/// memory (the isolated area's <see cref="PlaintextBuffer"/>). A segment is committed (<see cref="IBufferWriter{T}.Advance"/>)
/// only once done, so a segment that fails to open never counts as written.
/// </summary>
internal sealed class BufferWriterOutput(IBufferWriter<byte> writer) : ISegmentOutput
{
    public Memory<byte> Next(int length) => length == 0 ? Memory<byte>.Empty : writer.GetMemory(length)[..length];

    public ValueTask PassOnAsync(int length, CancellationToken ct)
    {
        if (length > 0) writer.Advance(length);
        return ValueTask.CompletedTask;
    }

    public Task CompleteAsync() => Task.CompletedTask;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
