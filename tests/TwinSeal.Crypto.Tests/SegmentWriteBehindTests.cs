using System.Security.Cryptography;

namespace TwinSeal.Crypto.Tests;

/// <summary>
/// The streaming dataset paths write each segment on while the next one is sealed or opened: the output must still see
/// one write at a time, in order, and a failing output must fail the stream, not be lost on a pool thread.
/// </summary>
public sealed class SegmentWriteBehindTests
{
    private const int Small = DatasetStream.MinSegmentSize;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_slow_output_gets_every_sealed_segment_in_order_one_write_at_a_time()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(12 * Small + 77);
        var slow = new SlowOutput();

        await DatasetStream.EncryptAsync(key, new DatasetStreamHeader(Guid.NewGuid(), "k", 1, Small), new MemoryStream(plaintext), slow, Ct);

        Assert.Equal(1, slow.MostAtOnce);
        var decrypted = new MemoryStream();
        await DatasetStream.DecryptAsync(key, new MemoryStream(slow.Written.ToArray()), decrypted, ct: Ct);
        Assert.Equal(plaintext, decrypted.ToArray());
    }

    [Fact]
    public async Task A_slow_output_gets_every_opened_segment_in_order_one_write_at_a_time()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(12 * Small + 77);
        var ciphertext = new MemoryStream();
        await DatasetStream.EncryptAsync(key, new DatasetStreamHeader(Guid.NewGuid(), "k", 1, Small), new MemoryStream(plaintext), ciphertext, Ct);
        var slow = new SlowOutput();

        await DatasetStream.DecryptAsync(key, new MemoryStream(ciphertext.ToArray()), slow, ct: Ct);

        Assert.Equal(1, slow.MostAtOnce);
        Assert.Equal(plaintext, slow.Written.ToArray());
    }

    [Fact]
    public async Task An_output_that_fails_mid_stream_fails_the_encryption_with_its_own_error()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(12 * Small);

        var e = await Assert.ThrowsAsync<IOException>(() =>
            DatasetStream.EncryptAsync(key, new DatasetStreamHeader(Guid.NewGuid(), "k", 1, Small), new MemoryStream(plaintext), new SlowOutput(failOnWrite: 4), Ct));

        Assert.Equal("disk full", e.Message);
    }

    [Fact]
    public async Task An_output_that_fails_on_the_last_segment_still_fails_the_decryption()
    {
        using var key = DataKey.Generate();
        var ciphertext = new MemoryStream();
        await DatasetStream.EncryptAsync(key, new DatasetStreamHeader(Guid.NewGuid(), "k", 1, Small), new MemoryStream(RandomNumberGenerator.GetBytes(3 * Small)), ciphertext, Ct);

        // Three segments, three writes: the third is the one still in flight when the framer is done.
        await Assert.ThrowsAsync<IOException>(() => DatasetStream.DecryptAsync(key, new MemoryStream(ciphertext.ToArray()), new SlowOutput(failOnWrite: 3), ct: Ct));
    }

    [Fact]
    public async Task A_tampered_segment_behind_a_slow_output_is_refused_and_nothing_after_it_is_written()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(6 * Small);
        var ciphertext = new MemoryStream();
        await DatasetStream.EncryptAsync(key, new DatasetStreamHeader(Guid.NewGuid(), "k", 1, Small), new MemoryStream(plaintext), ciphertext, Ct);
        var bytes = ciphertext.ToArray();
        // A byte inside the fourth segment (index 3).
        bytes[DatasetStream.HeaderLength(1) + 3 * (Small + 16) + 10] ^= 1;
        var slow = new SlowOutput();

        var e = await Assert.ThrowsAsync<DatasetIntegrityException>(() => DatasetStream.DecryptAsync(key, new MemoryStream(bytes), slow, ct: Ct));

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Equal(plaintext.AsSpan(0, 3 * Small).ToArray(), slow.Written.ToArray());
    }

    /// <summary>An output whose writes take a while and complete on another thread, counting how many overlap.</summary>
    private sealed class SlowOutput(int failOnWrite = 0) : Stream
    {
        private int _inFlight;
        private int _writes;

        public MemoryStream Written { get; } = new();

        public int MostAtOnce { get; private set; }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var now = Interlocked.Increment(ref _inFlight);
            MostAtOnce = Math.Max(MostAtOnce, now);
            try
            {
                await Task.Delay(2, cancellationToken);
                if (++_writes == failOnWrite) throw new IOException("disk full");
                // A copy taken late: a buffer reused while this write is still running would show up as wrong bytes.
                Written.Write(buffer.Span);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
