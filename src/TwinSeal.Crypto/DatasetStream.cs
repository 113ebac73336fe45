using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace TwinSeal.Crypto;

/// <summary>
/// The cleartext (but authenticated) header of an encrypted dataset stream. It names the key that encrypted the
/// dataset so a receiver can route the stream to the right data key before decrypting anything.
/// </summary>
/// <param name="DatasetId">The dataset this stream carries.</param>
/// <param name="KeyId">The KMS key id whose data key encrypted the stream; non-empty, at most 65535 UTF-8 bytes.</param>
/// <param name="KeyVersion">The data key version under <paramref name="KeyId"/>; non-negative.</param>
/// <param name="SegmentSize">
/// Plaintext bytes per segment, from <see cref="DatasetStream.MinSegmentSize"/> to <see cref="DatasetStream.MaxSegmentSize"/>.
/// Both sides hold about three segments in memory (one being cut, one being sealed or opened, one being written on),
/// so this bounds the memory a stream costs.
/// </param>
public sealed record DatasetStreamHeader(Guid DatasetId, string KeyId, int KeyVersion, int SegmentSize = DatasetStream.DefaultSegmentSize);

/// <summary>
/// An encrypted dataset stream failed to parse or authenticate. Whatever plaintext the decryptor already wrote
/// must be discarded: it is only a prefix of the dataset, and a truncated dataset is as wrong as a forged one.
/// </summary>
public sealed class DatasetIntegrityException : Exception
{
    /// <summary>Creates the exception; <paramref name="reason"/> is "code: human text".</summary>
    public DatasetIntegrityException(string reason)
        : base(reason)
    {
        ArgumentNullException.ThrowIfNull(reason);
        Reason = reason;
    }

    internal DatasetIntegrityException(string reason, Exception inner)
        : base(reason, inner)
    {
        Reason = reason;
    }

    /// <summary>
    /// A short stable code, a colon, then human text, e.g. "segment-authentication-failed: segment 3 does not authenticate".
    /// Match on <see cref="Code"/>, not on the text.
    /// </summary>
    public string Reason { get; }

    /// <summary>The stable code part of <see cref="Reason"/> (the text before the first colon).</summary>
    public string Code
    {
        get
        {
            var colon = Reason.IndexOf(':', StringComparison.Ordinal);
            return colon < 0 ? Reason : Reason[..colon];
        }
    }
}

/// <summary>
/// Segmented streaming AEAD for datasets, modelled on Tink's AES-GCM-HKDF streaming AEAD: a per-stream key is
/// derived with HKDF from the data key and a random salt, and the plaintext is cut into fixed-size segments, each
/// sealed with AES-256-GCM under a nonce and associated data that bind its position and whether it is the last one.
/// That makes dropping, duplicating, reordering, truncating, extending and cross-stream splicing all detectable while
/// memory stays proportional to the segment size. The byte layout is specified in docs/format.md
/// ("Encrypted dataset stream").
/// </summary>
public static class DatasetStream
{
    /// <summary>Default plaintext bytes per segment (1 MiB).</summary>
    public const int DefaultSegmentSize = 1 << 20;
    /// <summary>Smallest allowed segment size (4 KiB); smaller segments would spend too much on tags.</summary>
    public const int MinSegmentSize = 4 << 10;
    /// <summary>Largest allowed segment size (16 MiB); caps the memory a hostile header can make a reader allocate.</summary>
    public const int MaxSegmentSize = 16 << 20;
    /// <summary>Most segments one stream may have: the segment index is a 32-bit counter.</summary>
    public const long MaxSegmentCount = uint.MaxValue;

    internal const byte FormatVersion = 1;
    // magic 4 ‖ version 1 ‖ dataset id 16 ‖ key version 4 ‖ segment size 4 ‖ key id length 2
    internal const int FixedHeaderLength = 31;
    internal const int SaltLength = 32;
    internal const int NoncePrefixLength = 7;
    internal const int TagLength = Aes256Key.TagLength;
    private const int HashLength = 32;
    private const long MaxSegmentIndex = MaxSegmentCount - 1;

    internal static ReadOnlySpan<byte> Magic => "TSDS"u8;
    private static ReadOnlySpan<byte> KdfLabel => "twinseal/dataset/v1"u8;

    // Strict both ways: a key id that does not round-trip exactly would make two parties disagree on the header bytes.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Total header length for a key id of <paramref name="keyIdByteCount"/> UTF-8 bytes.</summary>
    internal static int HeaderLength(int keyIdByteCount) => FixedHeaderLength + keyIdByteCount + SaltLength + NoncePrefixLength;

    /// <summary>How many bytes the encoded header of a stream with this header takes (where the first segment starts).</summary>
    public static int EncodedHeaderLength(DatasetStreamHeader header) => HeaderLength(StrictUtf8.GetByteCount(header.KeyId));

    /// <summary>
    /// Encrypts <paramref name="plaintext"/> (read to its end) into <paramref name="ciphertext"/>: the header, then
    /// the segments. Memory use is about three segments whatever the input size.
    /// </summary>
    /// <param name="key">The data key named by <paramref name="header"/>.</param>
    /// <param name="header">Dataset id, key id and version, and segment size to record in the stream.</param>
    /// <param name="plaintext">Read until end of stream.</param>
    /// <param name="ciphertext">Receives the header and segments; not flushed or disposed.</param>
    /// <param name="ct">Cancels the copy; the output is then incomplete and must be discarded.</param>
    /// <exception cref="ArgumentException">The header has an out-of-range segment size or key version, or an unusable key id.</exception>
    public static Task EncryptAsync(DataKey key, DatasetStreamHeader header, Stream plaintext, Stream ciphertext, CancellationToken ct = default)
    {
        // Fresh salt per stream means a fresh segment key per stream, so the 7-byte random nonce prefix only has to
        // be unique among the segments of one stream, never across every stream a data key ever encrypts.
        var salt = RandomNumberGenerator.GetBytes(SaltLength);
        var noncePrefix = RandomNumberGenerator.GetBytes(NoncePrefixLength);
        return EncryptWithRandomnessAsync(key, header, plaintext, ciphertext, salt, noncePrefix, ct);
    }

    /// <summary>
    /// <see cref="EncryptAsync(DataKey, DatasetStreamHeader, Stream, Stream, CancellationToken)"/> with caller-chosen salt and nonce prefix. Internal so only known-answer tests can
    /// pin them: reusing a salt and prefix under one data key reuses GCM nonces, which is catastrophic.
    /// </summary>
    internal static async Task EncryptWithRandomnessAsync(
        DataKey key, DatasetStreamHeader header, Stream plaintext, Stream ciphertext, byte[] salt, byte[] noncePrefix, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(plaintext);
        ArgumentNullException.ThrowIfNull(ciphertext);
        if (salt.Length != SaltLength || noncePrefix.Length != NoncePrefixLength)
            throw new ArgumentException("Salt or nonce prefix has the wrong length.");

        // Everything that can be wrong with the header is checked here, before a byte is written.
        var headerBytes = EncodeHeader(header, salt, noncePrefix);
        using var cipher = SegmentCipher.Create(key, headerBytes);
        await ciphertext.WriteAsync(headerBytes, ct).ConfigureAwait(false);
        // Sealed into one of two buffers and written on from it while the next segment is sealed into the other.
        await using var sealedSegments = new SegmentWriteBehind(ciphertext, header.SegmentSize + TagLength);
        await SealSegmentsAsync(cipher, header.SegmentSize, plaintext, sealedSegments, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// <see cref="EncryptAsync(DataKey, DatasetStreamHeader, Stream, Stream, CancellationToken)"/> into a buffer writer:
    /// each segment is sealed straight into the writer's memory, with no copy after the cipher.
    /// </summary>
    /// <exception cref="ArgumentException">The header has an out-of-range segment size or key version, or an unusable key id.</exception>
    public static async Task EncryptAsync(DataKey key, DatasetStreamHeader header, Stream plaintext, IBufferWriter<byte> ciphertext, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(plaintext);
        ArgumentNullException.ThrowIfNull(ciphertext);
        var headerBytes = EncodeHeader(header, RandomNumberGenerator.GetBytes(SaltLength), RandomNumberGenerator.GetBytes(NoncePrefixLength));
        using var cipher = SegmentCipher.Create(key, headerBytes);
        ciphertext.Write(headerBytes);
        await using var output = new BufferWriterOutput(ciphertext);
        await SealSegmentsAsync(cipher, header.SegmentSize, plaintext, output, ct).ConfigureAwait(false);
    }

    // Segments are sealed out of place, from wherever the framer hands them (the source's memory, or the framer's buffer
    // for a segment split across writes), into the memory the output lends for it.
    private static async Task SealSegmentsAsync(SegmentCipher cipher, int segmentSize, Stream plaintext, ISegmentOutput sealedSegments, CancellationToken ct)
    {
        await using (var framer = new SegmentFramer(segmentSize, async (index, last, segment, token) =>
        {
            if (index > MaxSegmentIndex)
                throw new InvalidOperationException($"The dataset needs more than {MaxSegmentCount} segments; use a larger segment size.");
            var length = segment.Length;
            var sealedSegment = sealedSegments.Next(length + TagLength).Span;
            cipher.Seal((uint)index, last, segment.Span, sealedSegment[..length], sealedSegment[length..]);
            await sealedSegments.PassOnAsync(length + TagLength, token).ConfigureAwait(false);
        }))
        {
            await plaintext.CopyToAsync(framer, ct).ConfigureAwait(false);
            // A dataset that is a whole number of segments ends with a full last segment, not an extra empty one.
            await framer.CompleteAsync(ct).ConfigureAwait(false);
        }
        await sealedSegments.CompleteAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Reads the header, then authenticates and decrypts every segment, writing a segment's plaintext to
    /// <paramref name="plaintext"/> only after that segment authenticated. Memory use is about three segments.
    /// </summary>
    /// <remarks>
    /// On <see cref="DatasetIntegrityException"/> (or cancellation) <paramref name="plaintext"/> holds the plaintext of
    /// the segments that authenticated before the failure. Callers must treat that output as void and discard it:
    /// only a completed call proves the dataset is whole.
    /// </remarks>
    /// <param name="key">The data key named by the header (see <see cref="ReadHeader"/> for routing).</param>
    /// <param name="ciphertext">Read until end of stream; anything after the last segment is an error.</param>
    /// <param name="plaintext">Receives the dataset; not flushed or disposed.</param>
    /// <param name="expectedDatasetId">If given, a stream for any other dataset is refused with "dataset-id-mismatch" before decryption.</param>
    /// <param name="ct">Cancels the copy.</param>
    /// <returns>The authenticated header.</returns>
    /// <exception cref="DatasetIntegrityException">The stream is malformed, altered, truncated, extended, spliced, or not under <paramref name="key"/>.</exception>
    public static Task<DatasetStreamHeader> DecryptAsync(
        DataKey key, Stream ciphertext, Stream plaintext, Guid? expectedDatasetId = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        // Decrypted into a buffer of its own rather than in place (GCM wipes its output on failure, and the ciphertext
        // is still needed to diagnose why a segment failed); one of two, written on while the next segment is opened.
        return DecryptIntoAsync(key, ciphertext, header => new SegmentWriteBehind(plaintext, header.SegmentSize), expectedDatasetId, ct);
    }

    /// <summary>
    /// <see cref="DecryptAsync(DataKey, Stream, Stream, Guid?, CancellationToken)"/> into a buffer writer: each segment
    /// is opened straight into the writer's memory and committed (<see cref="IBufferWriter{T}.Advance"/>) only once it
    /// authenticated, with no copy after the cipher. On failure the writer holds the segments that authenticated before.
    /// </summary>
    /// <exception cref="DatasetIntegrityException">The stream is malformed, altered, truncated, extended, spliced, or not under <paramref name="key"/>.</exception>
    public static Task<DatasetStreamHeader> DecryptAsync(
        DataKey key, Stream ciphertext, IBufferWriter<byte> plaintext, Guid? expectedDatasetId = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        return DecryptIntoAsync(key, ciphertext, _ => new BufferWriterOutput(plaintext), expectedDatasetId, ct);
    }

    private static async Task<DatasetStreamHeader> DecryptIntoAsync(
        DataKey key, Stream ciphertext, Func<DatasetStreamHeader, ISegmentOutput> outputFor, Guid? expectedDatasetId, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(ciphertext);

        var (header, headerBytes) = await ReadHeaderAsync(ciphertext, ct).ConfigureAwait(false);
        // A genuine stream for another dataset would authenticate fine, so the id has to be checked explicitly.
        if (expectedDatasetId is { } expected && header.DatasetId != expected)
            throw Integrity("dataset-id-mismatch", $"the stream carries dataset {header.DatasetId}, expected {expected}");

        using var cipher = SegmentCipher.Create(key, headerBytes);
        var chunkSize = header.SegmentSize + TagLength;
        await using var openedSegments = outputFor(header);
        // Segments carry no length or last marker on the wire; the framer cuts them as the writer did: a full-size
        // segment is the last one exactly when end of stream follows it, and anything shorter must be the last one.
        await using (var framer = new SegmentFramer(chunkSize, async (index, last, segment, token) =>
        {
            if (index > MaxSegmentIndex)
                throw Integrity("too-many-segments", $"the stream has more than {MaxSegmentCount} segments");
            if (index == 0 && segment.IsEmpty)
                throw Integrity("stream-truncated", "no segment follows the header");
            if (segment.Length < TagLength)
                throw Integrity("stream-truncated", $"segment {index} is shorter than its {TagLength}-byte tag");
            var length = segment.Length - TagLength;
            if (!cipher.TryOpen((uint)index, last, segment.Span, openedSegments.Next(length).Span))
            {
                // The probes decrypt into memory of their own: none of it is the output's, even where a probe opens.
                using var scratch = SecretBytes.Allocate(length + 1);
                throw DiagnoseFailure(cipher, (uint)index, last, segment.Length == chunkSize, segment.Span, scratch.Span);
            }
            await openedSegments.PassOnAsync(length, token).ConfigureAwait(false);
        }))
        {
            await ciphertext.CopyToAsync(framer, ct).ConfigureAwait(false);
            await framer.CompleteAsync(ct).ConfigureAwait(false);
        }
        await openedSegments.CompleteAsync().ConfigureAwait(false);
        return header;
    }

    /// <summary>
    /// Encrypts a dataset held in memory: the same format as <see cref="EncryptAsync(DataKey, DatasetStreamHeader, Stream, Stream, CancellationToken)"/>, but every segment is sealed
    /// straight from <paramref name="plaintext"/> into the returned array, with no intermediate buffer or copy.
    /// </summary>
    /// <exception cref="ArgumentException">The header has an out-of-range segment size or key version, or an unusable key id.</exception>
    public static byte[] Encrypt(DataKey key, DatasetStreamHeader header, ReadOnlySpan<byte> plaintext)
        => EncryptWithRandomness(key, header, plaintext, RandomNumberGenerator.GetBytes(SaltLength), RandomNumberGenerator.GetBytes(NoncePrefixLength));

    /// <summary>
    /// <see cref="Encrypt(DataKey, DatasetStreamHeader, ReadOnlySpan{byte})"/> into a caller's buffer of exactly
    /// <see cref="CiphertextLength"/> bytes, so repeated encryptions need no new memory.
    /// </summary>
    public static void Encrypt(DataKey key, DatasetStreamHeader header, ReadOnlySpan<byte> plaintext, Span<byte> destination)
        => EncryptInto(key, header, plaintext, destination, RandomNumberGenerator.GetBytes(SaltLength), RandomNumberGenerator.GetBytes(NoncePrefixLength));

    /// <summary>The exact size of the encrypted form of <paramref name="plaintextLength"/> bytes under <paramref name="header"/>.</summary>
    public static long CiphertextLength(DatasetStreamHeader header, long plaintextLength)
    {
        ArgumentNullException.ThrowIfNull(header);
        var headerLength = HeaderLength(StrictUtf8.GetByteCount(header.KeyId));
        return headerLength + plaintextLength + SegmentCount(header.SegmentSize, plaintextLength) * TagLength;
    }

    // As the streaming writer: an empty dataset is one empty last segment, a whole number of segments ends with a full one.
    private static long SegmentCount(int segmentSize, long plaintextLength) => plaintextLength == 0 ? 1 : (plaintextLength + segmentSize - 1) / segmentSize;

    /// <summary><see cref="Encrypt(DataKey, DatasetStreamHeader, ReadOnlySpan{byte})"/> with caller-chosen salt and nonce prefix, for known-answer tests only.</summary>
    internal static byte[] EncryptWithRandomness(DataKey key, DatasetStreamHeader header, ReadOnlySpan<byte> plaintext, byte[] salt, byte[] noncePrefix)
    {
        // Every byte is written (header, ciphertext, tags), so the array need not be zeroed first.
        var output = GC.AllocateUninitializedArray<byte>(checked((int)CiphertextLength(header, plaintext.Length)));
        EncryptInto(key, header, plaintext, output, salt, noncePrefix);
        return output;
    }

    private static void EncryptInto(DataKey key, DatasetStreamHeader header, ReadOnlySpan<byte> plaintext, Span<byte> output, byte[] salt, byte[] noncePrefix)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(header);
        if (salt.Length != SaltLength || noncePrefix.Length != NoncePrefixLength)
            throw new ArgumentException("Salt or nonce prefix has the wrong length.");
        var headerBytes = EncodeHeader(header, salt, noncePrefix);
        var segmentSize = header.SegmentSize;
        var segments = SegmentCount(segmentSize, plaintext.Length);
        if (segments > MaxSegmentCount)
            throw new InvalidOperationException($"The dataset needs more than {MaxSegmentCount} segments; use a larger segment size.");
        if (output.Length != headerBytes.Length + plaintext.Length + segments * TagLength)
            throw new ArgumentException("The destination must be exactly CiphertextLength bytes.", nameof(output));
        headerBytes.CopyTo(output);
        using var cipher = SegmentCipher.Create(key, headerBytes);
        var at = headerBytes.Length;
        for (long index = 0; index < segments; index++)
        {
            var from = (int)(index * segmentSize);
            var length = Math.Min(segmentSize, plaintext.Length - from);
            cipher.Seal((uint)index, index == segments - 1, plaintext.Slice(from, length), output.Slice(at, length), output.Slice(at + length, TagLength));
            at += length + TagLength;
        }
    }

    /// <summary>
    /// Decrypts a whole encrypted dataset held in memory, segment by segment straight into the returned plaintext:
    /// the same checks and refusals as <see cref="DecryptAsync(DataKey, Stream, Stream, Guid?, CancellationToken)"/>, and no plaintext is returned unless every segment
    /// authenticated, in order, up to the last one.
    /// </summary>
    /// <exception cref="DatasetIntegrityException">Anything about the stream is wrong; the reason names what.</exception>
    public static (DatasetStreamHeader Header, byte[] Plaintext) Decrypt(DataKey key, ReadOnlySpan<byte> ciphertext, Guid? expectedDatasetId = null)
    {
        // Filled segment by segment; on any failure it is zeroed before the exception leaves.
        var plaintext = GC.AllocateUninitializedArray<byte>(PlaintextLength(ciphertext));
        var header = Decrypt(key, ciphertext, plaintext, expectedDatasetId);
        return (header, plaintext);
    }

    /// <summary>
    /// <see cref="Decrypt(DataKey, ReadOnlySpan{byte}, Guid?)"/> into a caller's buffer of exactly
    /// <see cref="PlaintextLength"/> bytes; on any failure the buffer is zeroed.
    /// </summary>
    /// <exception cref="DatasetIntegrityException">Anything about the stream is wrong; the reason names what.</exception>
    public static DatasetStreamHeader Decrypt(DataKey key, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext, Guid? expectedDatasetId = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        var header = ParseHeader(ciphertext, out var headerLength);
        if (expectedDatasetId is { } expected && header.DatasetId != expected)
            throw Integrity("dataset-id-mismatch", $"the stream carries dataset {header.DatasetId}, expected {expected}");
        var body = ciphertext[headerLength..];
        if (body.IsEmpty) throw Integrity("stream-truncated", "no segment follows the header");
        var chunkSize = header.SegmentSize + TagLength;
        var segments = (body.Length + (long)chunkSize - 1) / chunkSize;
        if (segments > MaxSegmentCount) throw Integrity("too-many-segments", $"the stream has more than {MaxSegmentCount} segments");
        if (plaintext.Length != Math.Max(0, body.Length - segments * TagLength))
            throw new ArgumentException("The destination must be exactly PlaintextLength bytes.", nameof(plaintext));
        using var cipher = SegmentCipher.Create(key, ciphertext[..headerLength]);
        try
        {
            for (long index = 0; index < segments; index++)
            {
                var from = (int)(index * chunkSize);
                var segment = body.Slice(from, (int)Math.Min(chunkSize, body.Length - from));
                // As in the streaming reader, the segment that ends the data is the last one.
                var last = index == segments - 1;
                if (segment.Length < TagLength)
                    throw Integrity("stream-truncated", $"segment {index} is shorter than its {TagLength}-byte tag");
                var output = plaintext.Slice((int)(index * header.SegmentSize), segment.Length - TagLength);
                if (!cipher.TryOpen((uint)index, last, segment, output))
                {
                    using var scratch = SecretBytes.Allocate(header.SegmentSize + 1);
                    throw DiagnoseFailure(cipher, (uint)index, last, segment.Length == chunkSize, segment, scratch.Span);
                }
            }
            return header;
        }
        catch
        {
            CryptographicOperations.ZeroMemory(plaintext);
            throw;
        }
    }

    /// <summary>The size of the plaintext in an encrypted dataset (0 when the layout is too short to tell; decryption then says why).</summary>
    public static int PlaintextLength(ReadOnlySpan<byte> ciphertext)
    {
        var header = ParseHeader(ciphertext, out var headerLength);
        var body = ciphertext.Length - headerLength;
        var chunkSize = header.SegmentSize + TagLength;
        var segments = (body + (long)chunkSize - 1) / chunkSize;
        return (int)Math.Max(0, body - segments * TagLength);
    }

    /// <summary>
    /// Parses the header at the start of <paramref name="prefix"/> without decrypting anything, so a receiver can pick
    /// the data key. Bytes after the header are ignored. The result is not authenticated until
    /// <see cref="DecryptAsync(DataKey, Stream, Stream, Guid?, CancellationToken)"/> succeeds.
    /// </summary>
    /// <exception cref="DatasetIntegrityException">The prefix is not a well-formed header, or is too short to hold one.</exception>
    public static DatasetStreamHeader ReadHeader(ReadOnlySpan<byte> prefix) => ParseHeader(prefix, out _);

    private static async Task<(DatasetStreamHeader Header, byte[] Bytes)> ReadHeaderAsync(Stream ciphertext, CancellationToken ct)
    {
        var fixedPart = new byte[FixedHeaderLength];
        var read = await ReadFullAsync(ciphertext, fixedPart, FixedHeaderLength, ct).ConfigureAwait(false);
        var keyIdLength = ParseFixedPart(fixedPart.AsSpan(0, read));

        var headerBytes = new byte[HeaderLength(keyIdLength)];
        fixedPart.CopyTo(headerBytes, 0);
        var rest = headerBytes.Length - FixedHeaderLength;
        read = await ciphertext.ReadAtLeastAsync(headerBytes.AsMemory(FixedHeaderLength), rest, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        var header = ParseHeader(headerBytes.AsSpan(0, FixedHeaderLength + read), out _);
        return (header, headerBytes);
    }

    // Stream.Read may return fewer bytes than asked (network streams do); only end of stream may cut a read short here.
    private static async ValueTask<int> ReadFullAsync(Stream stream, byte[] buffer, int count, CancellationToken ct) =>
        await stream.ReadAtLeastAsync(buffer.AsMemory(0, count), count, throwOnEndOfStream: false, ct).ConfigureAwait(false);

    private static byte[] EncodeHeader(DatasetStreamHeader header, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> noncePrefix)
    {
        if (header.SegmentSize is < MinSegmentSize or > MaxSegmentSize)
            throw new ArgumentOutOfRangeException(nameof(header), header.SegmentSize, $"Segment size must be from {MinSegmentSize} to {MaxSegmentSize} bytes.");
        if (header.KeyVersion < 0)
            throw new ArgumentOutOfRangeException(nameof(header), header.KeyVersion, "Key version must be non-negative.");
        if (string.IsNullOrEmpty(header.KeyId))
            throw new ArgumentException("Key id must be non-empty.", nameof(header));

        byte[] keyId;
        try
        {
            keyId = StrictUtf8.GetBytes(header.KeyId);
        }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException("Key id is not valid Unicode.", nameof(header), e);
        }
        if (keyId.Length > ushort.MaxValue)
            throw new ArgumentException($"Key id must be at most {ushort.MaxValue} UTF-8 bytes.", nameof(header));

        var bytes = new byte[HeaderLength(keyId.Length)];
        var span = bytes.AsSpan();
        Magic.CopyTo(span);
        span[4] = FormatVersion;
        var wrote = header.DatasetId.TryWriteBytes(span.Slice(5, 16), bigEndian: true, out _);
        Debug.Assert(wrote);
        BinaryPrimitives.WriteUInt32BigEndian(span.Slice(21, 4), (uint)header.KeyVersion);
        BinaryPrimitives.WriteUInt32BigEndian(span.Slice(25, 4), (uint)header.SegmentSize);
        BinaryPrimitives.WriteUInt16BigEndian(span.Slice(29, 2), (ushort)keyId.Length);
        keyId.CopyTo(span[FixedHeaderLength..]);
        salt.CopyTo(span.Slice(FixedHeaderLength + keyId.Length, SaltLength));
        noncePrefix.CopyTo(span.Slice(FixedHeaderLength + keyId.Length + SaltLength, NoncePrefixLength));
        return bytes;
    }

    /// <summary>Checks magic, version and length of the fixed part; returns the key id length.</summary>
    private static int ParseFixedPart(ReadOnlySpan<byte> data)
    {
        // Identify the format before complaining about length, so non-TwinSeal input gets the most useful reason.
        var magicSeen = Math.Min(data.Length, Magic.Length);
        if (!data[..magicSeen].SequenceEqual(Magic[..magicSeen]))
            throw Integrity("bad-magic", "the stream does not start with \"TSDS\"");
        if (data.Length > 4 && data[4] != FormatVersion)
            throw Integrity("unsupported-version", $"format version {data[4]} is not supported (expected {FormatVersion})");
        if (data.Length < FixedHeaderLength)
            throw Integrity("header-truncated", $"the header needs at least {FixedHeaderLength} bytes, got {data.Length}");
        return BinaryPrimitives.ReadUInt16BigEndian(data.Slice(29, 2));
    }

    private static DatasetStreamHeader ParseHeader(ReadOnlySpan<byte> data, out int headerLength)
    {
        var keyIdLength = ParseFixedPart(data);

        var datasetId = new Guid(data.Slice(5, 16), bigEndian: true);
        var keyVersion = BinaryPrimitives.ReadUInt32BigEndian(data.Slice(21, 4));
        var segmentSize = BinaryPrimitives.ReadUInt32BigEndian(data.Slice(25, 4));
        if (keyVersion > int.MaxValue)
            throw Integrity("header-malformed", $"key version {keyVersion} is out of range");
        // Checked before anything is allocated from it: the header is untrusted until the first segment authenticates.
        if (segmentSize is < MinSegmentSize or > MaxSegmentSize)
            throw Integrity("header-malformed", $"segment size {segmentSize} is outside {MinSegmentSize}..{MaxSegmentSize}");
        if (keyIdLength == 0)
            throw Integrity("header-malformed", "the key id is empty");

        headerLength = HeaderLength(keyIdLength);
        if (data.Length < headerLength)
            throw Integrity("header-truncated", $"the header needs {headerLength} bytes, got {data.Length}");

        string keyId;
        try
        {
            keyId = StrictUtf8.GetString(data.Slice(FixedHeaderLength, keyIdLength));
        }
        catch (DecoderFallbackException e)
        {
            throw new DatasetIntegrityException("header-malformed: the key id is not valid UTF-8", e);
        }

        return new DatasetStreamHeader(datasetId, keyId, (int)keyVersion, (int)segmentSize);
    }

    /// <summary>
    /// Explains a segment that failed to authenticate. The probes only try the other value of the last flag at a
    /// full-size segment; they are authenticated decryptions whose output is discarded, so they release no plaintext
    /// and only sharpen the reason (truncation and appended data look like tampering otherwise).
    /// </summary>
    private static DatasetIntegrityException DiagnoseFailure(
        SegmentCipher cipher, uint index, bool last, bool fullSize, ReadOnlySpan<byte> segment, Span<byte> scratch)
    {
        if (fullSize && last && cipher.TryOpen(index, last: false, segment, scratch))
            return Integrity("stream-truncated", $"segment {index} is not the last segment but the stream ends after it");
        if (fullSize && !last && cipher.TryOpen(index, last: true, segment, scratch))
            return Integrity("trailing-data", $"data follows the last segment ({index})");
        var why = index == 0
            ? "the header or the segment was altered, or the data key is wrong"
            : "it was altered, dropped, duplicated, reordered, or taken from another stream";
        return Integrity("segment-authentication-failed", $"segment {index} does not authenticate: {why}");
    }

    private static DatasetIntegrityException Integrity(string code, string text) => new($"{code}: {text}");

    /// <summary>The per-stream AES-GCM instance plus what every segment's nonce and associated data are built from.</summary>
    private sealed class SegmentCipher : IDisposable
    {
        private const int NonceLength = Aes256Key.NonceLength;
        private const int AadLength = HashLength + 4 + 1;

        private readonly AesGcm _gcm;
        private readonly byte[] _noncePrefix;
        private readonly byte[] _headerHash;

        private SegmentCipher(AesGcm gcm, byte[] noncePrefix, byte[] headerHash)
        {
            _gcm = gcm;
            _noncePrefix = noncePrefix;
            _headerHash = headerHash;
        }

        public static SegmentCipher Create(DataKey key, ReadOnlySpan<byte> header)
        {
            var saltOffset = header.Length - SaltLength - NoncePrefixLength;

            // info binds the segment key to every header field before the salt (dataset id, key id and version,
            // segment size), so a stream re-labelled as another dataset or key derives a different key.
            Span<byte> info = stackalloc byte[KdfLabel.Length + HashLength];
            KdfLabel.CopyTo(info);
            SHA256.HashData(header[..saltOffset], info[KdfLabel.Length..]);

            using var segmentKey = SecretBytes.Allocate(Aes256Key.Length);
            HKDF.DeriveKey(HashAlgorithmName.SHA256, key.Material, segmentKey.Span, header.Slice(saltOffset, SaltLength), info);
            // AesGcm keeps its own copy of the key, so the derived key is wiped as soon as the instance exists.
            var gcm = new AesGcm(segmentKey.Span, TagLength);

            // The whole-header hash in every segment's associated data also covers the salt and nonce prefix.
            return new SegmentCipher(gcm, header[(saltOffset + SaltLength)..].ToArray(), SHA256.HashData(header));
        }

        /// <summary>Seals <paramref name="plaintext"/> into <paramref name="ciphertext"/> (same length) and writes the tag.</summary>
        public void Seal(uint index, bool last, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag)
        {
            Span<byte> nonce = stackalloc byte[NonceLength];
            Span<byte> aad = stackalloc byte[AadLength];
            Build(index, last, nonce, aad);
            _gcm.Encrypt(nonce, plaintext, ciphertext, tag, aad);
        }

        /// <summary>Opens ciphertext ‖ tag into <paramref name="plaintext"/>; false if it does not authenticate.</summary>
        public bool TryOpen(uint index, bool last, ReadOnlySpan<byte> segment, Span<byte> plaintext)
        {
            Span<byte> nonce = stackalloc byte[NonceLength];
            Span<byte> aad = stackalloc byte[AadLength];
            Build(index, last, nonce, aad);
            var ciphertextLength = segment.Length - TagLength;
            try
            {
                _gcm.Decrypt(nonce, segment[..ciphertextLength], segment[ciphertextLength..], plaintext[..ciphertextLength], aad);
                return true;
            }
            catch (AuthenticationTagMismatchException)
            {
                return false;
            }
        }

        // The index and last flag go into both the nonce (so no two segments of a stream share one) and the
        // associated data (so a reader's idea of a segment's position and finality must match the writer's).
        private void Build(uint index, bool last, Span<byte> nonce, Span<byte> aad)
        {
            _noncePrefix.CopyTo(nonce);
            BinaryPrimitives.WriteUInt32BigEndian(nonce.Slice(NoncePrefixLength, 4), index);
            nonce[NoncePrefixLength + 4] = last ? (byte)1 : (byte)0;

            _headerHash.CopyTo(aad);
            BinaryPrimitives.WriteUInt32BigEndian(aad.Slice(HashLength, 4), index);
            aad[HashLength + 4] = last ? (byte)1 : (byte)0;
        }

        public void Dispose() => _gcm.Dispose();
    }
}
