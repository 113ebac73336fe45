using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;

namespace TwinSeal.Kms.Http;

/// <summary>
/// Kestrel's buffers in blocks of <see cref="BlockSize"/> instead of its default 4 KiB: a socket receive fills at most
/// one block, so a 43 MB dataset upload took 10,500 receives (and as many trips through the TLS and HTTP layers) with
/// 4 KiB blocks. Blocks are pinned arrays, reused; at most <see cref="MaxPooledBlocks"/> wait for reuse, the rest are left
/// to the collector. At most <see cref="MaxLentBlocks"/> large blocks are out at once: beyond that a rent gets a block of
/// Kestrel's own size, <see cref="SmallBlockSize"/>, so no client can make a pool hold more large blocks than that (an
/// attacker helper held 97 per HTTP/2 connection, 0.96 GB over 150 connections, with streams whose responses a zero flow
/// window kept waiting).
/// </summary>
internal sealed class LargeBlockMemoryPool : MemoryPool<byte>
{
    /// <summary>Bytes per block.</summary>
    public const int BlockSize = 64 * 1024;

    /// <summary>Free blocks kept for reuse (4 MiB): enough for the handful of connections a service has at once.</summary>
    public const int MaxPooledBlocks = 64;

    /// <summary>Large blocks out at once (16 MiB): a few transfers' worth; past it, blocks of <see cref="SmallBlockSize"/>.</summary>
    public const int MaxLentBlocks = 256;

    /// <summary>Kestrel's own block size, lent (or the size asked for, if larger) once <see cref="MaxLentBlocks"/> large blocks are out.</summary>
    public const int SmallBlockSize = 4096;

    private readonly ConcurrentQueue<byte[]> _free = new();
    private int _freeCount;
    private int _lent;

    /// <summary>Blocks rented and not yet returned.</summary>
    public int Lent => Volatile.Read(ref _lent);

    /// <inheritdoc />
    public override int MaxBufferSize => BlockSize;

    /// <inheritdoc />
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (Interlocked.Increment(ref _lent) > MaxLentBlocks)
        {
            Interlocked.Decrement(ref _lent);
            return new Block(null, GC.AllocateUninitializedArray<byte>(Math.Max(minBufferSize, SmallBlockSize), pinned: true));
        }
        if (_free.TryDequeue(out var block)) Interlocked.Decrement(ref _freeCount);
        else block = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);
        return new Block(this, block);
    }

    private void Return(byte[] block)
    {
        Interlocked.Decrement(ref _lent);
        if (Interlocked.Increment(ref _freeCount) <= MaxPooledBlocks) _free.Enqueue(block);
        else Interlocked.Decrement(ref _freeCount);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        while (_free.TryDequeue(out _))
        {
        }
    }

    // A large block goes back to its pool; a small one (no pool) to the collector.
    private sealed class Block(LargeBlockMemoryPool? pool, byte[] array) : IMemoryOwner<byte>
    {
        private byte[]? _array = array;

        public Memory<byte> Memory => _array is { } a ? MemoryMarshal.CreateFromPinnedArray(a, 0, a.Length) : throw new ObjectDisposedException(nameof(Block));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _array, null) is { } returned) pool?.Return(returned);
        }
    }
}

/// <summary>Gives Kestrel <see cref="LargeBlockMemoryPool"/>s (one per transport or layer that asks).</summary>
internal sealed class LargeBlockMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    private readonly ConcurrentBag<LargeBlockMemoryPool> _pools = [];

    /// <summary>Blocks lent by every pool made here and not yet returned.</summary>
    public int Lent => _pools.Sum(p => p.Lent);

    /// <inheritdoc />
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null)
    {
        var pool = new LargeBlockMemoryPool();
        _pools.Add(pool);
        return pool;
    }
}
