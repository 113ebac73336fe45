using System.Buffers;
using TwinSeal.Crypto;

namespace TwinSeal.Crypto.Tests;

/// <summary>Decrypted data outside the collected heap: read back as written, bounded, and unreadable once wiped.</summary>
public sealed class PlaintextBufferTests
{
    [Fact]
    public void What_is_written_into_it_as_a_buffer_writer_is_what_it_holds()
    {
        using var buffer = PlaintextBuffer.Allocate(16);
        IBufferWriter<byte> writer = buffer;
        writer.Write("id,name\n"u8);
        "1,a\n"u8.CopyTo(writer.GetSpan(4));
        writer.Advance(4);

        Assert.Equal(12, buffer.Length);
        Assert.Equal("id,name\n1,a\n"u8.ToArray(), buffer.Written.ToArray());
    }

    [Fact]
    public void Writing_past_its_capacity_is_refused_and_keeps_what_fit()
    {
        using var buffer = PlaintextBuffer.Allocate(4);
        IBufferWriter<byte> writer = buffer;
        writer.Write("abc"u8);

        Assert.Throws<InvalidOperationException>(() => writer.GetMemory(2));
        Assert.Equal("abc"u8.ToArray(), buffer.Written.ToArray());
    }

    [Fact]
    public void Committing_more_than_was_lent_is_refused()
    {
        using var buffer = PlaintextBuffer.Allocate(16);
        IBufferWriter<byte> writer = buffer;
        writer.GetSpan(4);

        Assert.Throws<InvalidOperationException>(() => writer.Advance(5));
        Assert.Equal(0, buffer.Length);
    }

    [Fact]
    public void As_a_file_it_holds_exactly_what_was_written_and_takes_no_more()
    {
        using var buffer = PlaintextBuffer.Allocate(64);
        IBufferWriter<byte> writer = buffer;
        writer.Write("id,name\n1,a\n"u8);
        // Lent but never committed, as a segment that failed to open leaves it.
        "uncommitted"u8.CopyTo(writer.GetSpan(16));

        var path = buffer.AsFile();

        Assert.NotNull(path);
        Assert.Equal("id,name\n1,a\n"u8.ToArray(), File.ReadAllBytes(path));
        Assert.Equal(path, buffer.AsFile());
        Assert.Equal(12, buffer.Memory.Length);
        Assert.Throws<InvalidOperationException>(() => writer.GetSpan(1));
    }

    [Fact]
    public void Once_wiped_its_bytes_can_no_longer_be_read_or_pinned()
    {
        var buffer = PlaintextBuffer.Allocate(8);
        ((IBufferWriter<byte>)buffer).Write("secret!!"u8);
        var written = buffer.Written;

        buffer.Wipe();

        Assert.Throws<ObjectDisposedException>(() => written.Span.ToArray());
        Assert.Throws<ObjectDisposedException>(() => written.Pin());
        Assert.Throws<ObjectDisposedException>(() => ((IBufferWriter<byte>)buffer).GetSpan(1));
        buffer.Wipe();
        ((IDisposable)buffer).Dispose();
    }
}
