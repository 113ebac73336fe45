using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using TwinSeal.Crypto;

namespace TwinSeal.Bench;

/// <summary>One throughput figure: best and median of the timed repetitions.</summary>
internal sealed record Throughput(string Name, long Bytes, IReadOnlyList<double> Seconds)
{
    public double BestMBps => Bytes / 1e6 / Seconds.Min();
    public double MedianMBps => Bytes / 1e6 / Median(Seconds);

    private static double Median(IReadOnlyList<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}

/// <summary>Encrypt and decrypt throughput of <see cref="DatasetStream"/> and of raw <see cref="AesGcm"/> on the same buffers.</summary>
internal sealed record CryptoResult(int SegmentSize, long Bytes, int Repetitions, Throughput StreamEncrypt, Throughput RawEncrypt, Throughput StreamDecrypt, Throughput RawDecrypt, Throughput CopyOnly,
    Throughput MemoryEncrypt, Throughput MemoryDecrypt, Throughput WriterEncrypt, Throughput WriterDecrypt)
{
    public double EncryptRatio => StreamEncrypt.BestMBps / RawEncrypt.BestMBps;
    public double DecryptRatio => StreamDecrypt.BestMBps / RawDecrypt.BestMBps;
    /// <summary>The in-memory API the enclave's encryption unit uses, against the same raw baseline.</summary>
    public double MemoryEncryptRatio => MemoryEncrypt.BestMBps / RawEncrypt.BestMBps;
    public double MemoryDecryptRatio => MemoryDecrypt.BestMBps / RawDecrypt.BestMBps;
    /// <summary>The streaming API into a buffer writer (the isolated area's decryption into its plaintext buffer), against the same raw baseline.</summary>
    public double WriterEncryptRatio => WriterEncrypt.BestMBps / RawEncrypt.BestMBps;
    public double WriterDecryptRatio => WriterDecrypt.BestMBps / RawDecrypt.BestMBps;
}

/// <summary>
/// Measures the segmented dataset stream against the floor it is built on: the same AES-256-GCM, one call per
/// 1 MiB chunk, over the same plaintext, with no stream plumbing, header, key derivation or per-segment AAD.
/// Both sides are single-threaded and write into memory allocated before timing starts. Repetitions alternate
/// between the two so that a burst of noise on the shared machine hits both alike; the best repetition counts.
/// </summary>
internal static class CryptoThroughput
{
    private const int Chunk = DatasetStream.DefaultSegmentSize;
    private const int Tag = 16;
    private const int NonceLength = 12;

    public static async Task<CryptoResult> RunAsync(int mebibytes, int repetitions, TextWriter log)
    {
        var total = (long)mebibytes << 20;
        var plaintext = new byte[total];
        RandomNumberGenerator.Fill(plaintext);
        using var key = DataKey.Generate();
        var header = new DatasetStreamHeader(Guid.NewGuid(), "bench-key", 1, Chunk);
        var chunks = (int)((total + Chunk - 1) / Chunk);

        // DatasetStream output: header + chunks × (segment + tag). Allocate it once, reuse it every repetition.
        var streamCipher = new MemoryStream(checked((int)(total + chunks * Tag + 4096)));
        var streamPlain = new MemoryStream(plaintext.Length);
        // Raw AesGcm output: ciphertext and tags for every chunk, and the decrypted plaintext.
        var rawCipher = new byte[total];
        var rawTags = new byte[chunks * Tag];
        var rawPlain = new byte[total];
        var rawKey = RandomNumberGenerator.GetBytes(32);
        var noncePrefix = RandomNumberGenerator.GetBytes(NonceLength - 4);

        async Task<double> StreamEncrypt()
        {
            streamCipher.SetLength(0);
            var sw = Stopwatch.StartNew();
            await DatasetStream.EncryptAsync(key, header, new MemoryStream(plaintext, writable: false), streamCipher);
            return sw.Elapsed.TotalSeconds;
        }

        async Task<double> StreamDecrypt()
        {
            streamPlain.SetLength(0);
            var input = new MemoryStream(streamCipher.GetBuffer(), 0, (int)streamCipher.Length, writable: false);
            var sw = Stopwatch.StartNew();
            await DatasetStream.DecryptAsync(key, input, streamPlain, header.DatasetId);
            return sw.Elapsed.TotalSeconds;
        }

        // The same streaming API into buffer writers allocated once: each segment sealed or opened straight into them.
        var writerCipher = new ArrayBufferWriter<byte>(checked((int)(total + chunks * Tag + 4096)));
        var writerPlain = new ArrayBufferWriter<byte>(plaintext.Length);
        async Task<double> WriterEncrypt()
        {
            writerCipher.ResetWrittenCount();
            var sw = Stopwatch.StartNew();
            await DatasetStream.EncryptAsync(key, header, new MemoryStream(plaintext, writable: false), writerCipher);
            return sw.Elapsed.TotalSeconds;
        }

        async Task<double> WriterDecrypt()
        {
            writerPlain.ResetWrittenCount();
            var input = new MemoryStream(streamCipher.GetBuffer(), 0, (int)streamCipher.Length, writable: false);
            var sw = Stopwatch.StartNew();
            await DatasetStream.DecryptAsync(key, input, writerPlain, header.DatasetId);
            return sw.Elapsed.TotalSeconds;
        }

        // The stream plumbing alone, no crypto: what DatasetStream does around each AesGcm call (read a segment
        // from the input stream into its buffer, write the sealed segment to the output stream). Explains the gap.
        var copyBuffer = new byte[Chunk + Tag];
        async Task<double> CopyOnly()
        {
            streamPlain.SetLength(0);
            var input = new MemoryStream(plaintext, writable: false);
            var sw = Stopwatch.StartNew();
            int n;
            while ((n = await input.ReadAtLeastAsync(copyBuffer.AsMemory(0, Chunk), Chunk, throwOnEndOfStream: false)) > 0)
                await streamPlain.WriteAsync(copyBuffer.AsMemory(0, n));
            return sw.Elapsed.TotalSeconds;
        }

        double RawEncrypt()
        {
            var sw = Stopwatch.StartNew();
            using var gcm = new AesGcm(rawKey, Tag);
            Span<byte> nonce = stackalloc byte[NonceLength];
            noncePrefix.CopyTo(nonce);
            for (var i = 0; i < chunks; i++)
            {
                var offset = (long)i * Chunk;
                var length = (int)Math.Min(Chunk, total - offset);
                BinaryPrimitives.WriteInt32BigEndian(nonce[^4..], i);
                gcm.Encrypt(nonce, plaintext.AsSpan((int)offset, length), rawCipher.AsSpan((int)offset, length), rawTags.AsSpan(i * Tag, Tag));
            }
            return sw.Elapsed.TotalSeconds;
        }

        double RawDecrypt()
        {
            var sw = Stopwatch.StartNew();
            using var gcm = new AesGcm(rawKey, Tag);
            Span<byte> nonce = stackalloc byte[NonceLength];
            noncePrefix.CopyTo(nonce);
            for (var i = 0; i < chunks; i++)
            {
                var offset = (long)i * Chunk;
                var length = (int)Math.Min(Chunk, total - offset);
                BinaryPrimitives.WriteInt32BigEndian(nonce[^4..], i);
                gcm.Decrypt(nonce, rawCipher.AsSpan((int)offset, length), rawTags.AsSpan(i * Tag, Tag), rawPlain.AsSpan((int)offset, length));
            }
            return sw.Elapsed.TotalSeconds;
        }

        // Like the raw baseline, the in-memory API writes into buffers allocated once, before timing.
        var memoryCipher = new byte[DatasetStream.CiphertextLength(header, total)];
        var memoryPlain = new byte[total];
        double MemoryEncrypt()
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            DatasetStream.Encrypt(key, header, plaintext, memoryCipher);
            return sw.Elapsed.TotalSeconds;
        }

        double MemoryDecrypt()
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            DatasetStream.Decrypt(key, memoryCipher, memoryPlain, header.DatasetId);
            return sw.Elapsed.TotalSeconds;
        }

        // Warm-up: JIT (tier-up), page faults on the output buffers, AES-NI code paths.
        for (var w = 0; w < 2; w++)
        {
            await StreamEncrypt();
            RawEncrypt();
            await StreamDecrypt();
            RawDecrypt();
            await CopyOnly();
            MemoryEncrypt();
            MemoryDecrypt();
            await WriterEncrypt();
            await WriterDecrypt();
        }

        var se = new List<double>();
        var re = new List<double>();
        var sd = new List<double>();
        var rd = new List<double>();
        var co = new List<double>();
        var me = new List<double>();
        var md = new List<double>();
        var we = new List<double>();
        var wd = new List<double>();
        for (var r = 0; r < repetitions; r++)
        {
            se.Add(await StreamEncrypt());
            re.Add(RawEncrypt());
            sd.Add(await StreamDecrypt());
            rd.Add(RawDecrypt());
            co.Add(await CopyOnly());
            me.Add(MemoryEncrypt());
            md.Add(MemoryDecrypt());
            we.Add(await WriterEncrypt());
            wd.Add(await WriterDecrypt());
            log.WriteLine($"    crypto repetition {r + 1}/{repetitions}: stream enc {total / 1e6 / se[^1]:N0} MB/s, raw enc {total / 1e6 / re[^1]:N0} MB/s, stream dec {total / 1e6 / sd[^1]:N0} MB/s, raw dec {total / 1e6 / rd[^1]:N0} MB/s");
        }

        // The decrypted stream must be the plaintext, or the numbers measure nothing.
        if (!streamPlain.GetBuffer().AsSpan(0, (int)streamPlain.Length).SequenceEqual(plaintext) || !rawPlain.AsSpan().SequenceEqual(plaintext) || !memoryPlain.AsSpan().SequenceEqual(plaintext) || !writerPlain.WrittenSpan.SequenceEqual(plaintext))
            throw new InvalidOperationException("A decryption did not give back the plaintext.");

        return new CryptoResult(Chunk, total, repetitions,
            new Throughput("DatasetStream.EncryptAsync", total, se), new Throughput("AesGcm.Encrypt (1 MiB chunks)", total, re),
            new Throughput("DatasetStream.DecryptAsync", total, sd), new Throughput("AesGcm.Decrypt (1 MiB chunks)", total, rd),
            new Throughput("stream copy only (read 1 MiB + write, no crypto)", total, co),
            new Throughput("DatasetStream.Encrypt (in memory)", total, me), new Throughput("DatasetStream.Decrypt (in memory)", total, md),
            new Throughput("DatasetStream.EncryptAsync into a buffer writer", total, we), new Throughput("DatasetStream.DecryptAsync into a buffer writer", total, wd));
    }
}
