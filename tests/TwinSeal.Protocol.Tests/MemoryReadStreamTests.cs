using System.Buffers;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Protocol.Tests;

public sealed class MemoryReadStreamTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Reads_memory_that_is_not_an_array_in_pieces_to_its_end()
    {
        using var native = new NativeBytes("one,two\n1,2\n"u8);
        var stream = new MemoryReadStream(native.Memory);
        var read = new List<byte>();
        var piece = new byte[5];
        int n;
        while ((n = await stream.ReadAsync(piece, Ct)) > 0) read.AddRange(piece.AsSpan(0, n));

        Assert.Equal("one,two\n1,2\n"u8.ToArray(), read.ToArray());
        Assert.Equal(0, stream.Read(piece));
    }

    [Fact]
    public void A_csv_reader_over_memory_that_is_not_an_array_reads_it_where_it_lies()
    {
        // The isolated area's decrypted dataset lives outside the collected heap; reading it must not copy it there
        // first (an unwiped copy of the other party's table). A change made after the reader opened shows in its rows.
        var rows = string.Concat(Enumerable.Repeat("abc\n", 100_000));
        using var native = new NativeBytes(System.Text.Encoding.UTF8.GetBytes("k\n" + rows));
        using var reader = CsvDialect.Reader(native.Memory);
        native.Memory.Span[^4] = (byte)'x';

        var last = "";
        foreach (var row in reader) last = row[0].ToString();
        Assert.Equal("xbc", last);
    }

    [Fact]
    public void Reading_a_csv_from_memory_that_is_not_an_array_puts_no_copy_of_it_on_the_heap()
    {
        // The isolated area's shape check of the other party's decrypted dataset: a copy on the heap would outlive its wipe.
        var rows = string.Concat(Enumerable.Repeat("some-key,some-value\n", 50_000));
        using var native = new NativeBytes(System.Text.Encoding.UTF8.GetBytes("k,v\n" + rows));
        var before = GC.GetAllocatedBytesForCurrentThread();

        long read = 0;
        using (var reader = CsvDialect.Reader(native.Memory))
            foreach (var row in reader) read++;

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(50_001, read);
        Assert.True(allocated < native.Memory.Length / 4, $"reading a {native.Memory.Length}-byte CSV allocated {allocated} bytes on the heap");
    }

    [Fact]
    public async Task CopyToAsync_hands_what_is_left_over_in_one_write()
    {
        using var native = new NativeBytes(new byte[100_000]);
        var stream = new MemoryReadStream(native.Memory);
        await stream.ReadExactlyAsync(new byte[10], Ct);
        var writes = new WriteLengths();

        await stream.CopyToAsync(writes, Ct);

        Assert.Equal([99_990], writes.Lengths);
    }

    // Memory that does not show as an array (MemoryMarshal.TryGetArray fails), as the isolated area's PlaintextBuffer,
    // which holds a decrypted dataset outside the collected heap.
    private sealed class NativeBytes(ReadOnlySpan<byte> bytes) : MemoryManager<byte>
    {
        private readonly byte[] _bytes = bytes.ToArray();

        public override Span<byte> GetSpan() => _bytes;

        public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
