using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace TwinSeal.Crypto.Tests;

public sealed class DatasetStreamTests
{
    // Small segments keep the multi-segment tests fast; the format allows 4 KiB as its minimum.
    private const int Small = DatasetStream.MinSegmentSize;
    private const int Tag = 16;
    private const string KeyId = "kms/dataset-key";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // ---- round trips ----

    [Fact]
    public async Task Empty_dataset_round_trips_as_one_empty_last_segment()
    {
        using var key = DataKey.Generate();
        var header = NewHeader(Small);

        var ciphertext = await Encrypt(key, header, []);

        Assert.Equal(HeaderLength + Tag, ciphertext.Length);
        Assert.Empty(await Decrypt(key, ciphertext));
    }

    [Fact]
    public async Task One_byte_dataset_round_trips()
    {
        using var key = DataKey.Generate();
        var plaintext = new byte[] { 0x42 };

        var ciphertext = await Encrypt(key, NewHeader(Small), plaintext);

        Assert.Equal(HeaderLength + 1 + Tag, ciphertext.Length);
        Assert.Equal(plaintext, await Decrypt(key, ciphertext));
    }

    [Fact]
    public async Task Dataset_of_exactly_one_segment_is_one_full_last_segment_without_an_empty_trailer()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(Small);

        var ciphertext = await Encrypt(key, NewHeader(Small), plaintext);

        Assert.Equal(HeaderLength + Small + Tag, ciphertext.Length);
        Assert.Equal(plaintext, await Decrypt(key, ciphertext));
    }

    [Fact]
    public async Task Many_segments_with_a_partial_last_segment_round_trip()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(5 * Small + 123);

        var ciphertext = await Encrypt(key, NewHeader(Small), plaintext);

        Assert.Equal(HeaderLength + 5 * (Small + Tag) + 123 + Tag, ciphertext.Length);
        Assert.Equal(plaintext, await Decrypt(key, ciphertext));
    }

    [Fact]
    public async Task Three_MiB_with_the_default_segment_size_round_trips_as_three_full_segments()
    {
        using var key = DataKey.Generate();
        var header = NewHeader(DatasetStream.DefaultSegmentSize);
        var plaintext = RandomNumberGenerator.GetBytes(3 << 20);

        var ciphertext = await Encrypt(key, header, plaintext);

        Assert.Equal(HeaderLength + 3 * (DatasetStream.DefaultSegmentSize + Tag), ciphertext.Length);
        Assert.Equal(plaintext, await Decrypt(key, ciphertext));
    }

    [Fact]
    public void Default_segment_size_is_one_MiB()
    {
        Assert.Equal(1 << 20, new DatasetStreamHeader(Guid.NewGuid(), KeyId, 1).SegmentSize);
    }

    [Fact]
    public async Task Decrypt_returns_the_header_the_stream_was_encrypted_with()
    {
        using var key = DataKey.Generate();
        var header = NewHeader(Small);
        var ciphertext = await Encrypt(key, header, [1, 2, 3]);

        var returned = await DatasetStream.DecryptAsync(key, new MemoryStream(ciphertext), new MemoryStream(), ct: Ct);

        Assert.Equal(header, returned);
    }

    [Fact]
    public async Task Two_encryptions_of_the_same_data_differ_because_salt_and_nonce_prefix_are_fresh()
    {
        using var key = DataKey.Generate();
        var header = NewHeader(Small);
        var plaintext = RandomNumberGenerator.GetBytes(100);

        Assert.NotEqual(await Encrypt(key, header, plaintext), await Encrypt(key, header, plaintext));
    }

    [Fact]
    public async Task Streams_that_return_one_byte_per_read_are_encrypted_and_decrypted_correctly()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(3 * Small + 77);

        var ciphertext = new MemoryStream();
        await DatasetStream.EncryptAsync(key, NewHeader(Small), new OneBytePerReadStream(plaintext), ciphertext, Ct);
        var output = new MemoryStream();
        await DatasetStream.DecryptAsync(key, new OneBytePerReadStream(ciphertext.ToArray()), output, ct: Ct);

        Assert.Equal(plaintext, output.ToArray());
    }

    // A source that holds its data in memory writes it to the encryptor in pieces of its own choosing (Stream.CopyToAsync);
    // segments split across pieces, pieces of exactly one segment and pieces of many segments must all frame alike.
    [Theory]
    [InlineData(new[] { 1 })]
    [InlineData(new[] { Small })]
    [InlineData(new[] { Small + 1 })]
    [InlineData(new[] { Small - 1, 2, 3 * Small + 5 })]
    [InlineData(new[] { 2 * Small, Small, 7 })]
    public async Task Sources_that_write_in_uneven_pieces_give_the_bytes_of_one_that_writes_everything_at_once(int[] pieces)
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(6 * Small);
        var header = NewHeader(Small);
        var salt = RandomNumberGenerator.GetBytes(32);
        var noncePrefix = RandomNumberGenerator.GetBytes(7);
        var atOnce = new MemoryStream();
        var inPieces = new MemoryStream();

        await DatasetStream.EncryptWithRandomnessAsync(key, header, new MemoryStream(plaintext), atOnce, salt, noncePrefix, Ct);
        await DatasetStream.EncryptWithRandomnessAsync(key, header, new PieceWritingStream(plaintext, pieces), inPieces, salt, noncePrefix, Ct);

        Assert.Equal(atOnce.ToArray(), inPieces.ToArray());
    }

    [Theory]
    [InlineData(new[] { 1 })]
    [InlineData(new[] { Small + Tag })]
    [InlineData(new[] { Small + Tag + 1 })]
    [InlineData(new[] { Small - 1, 2, 3 * Small + 5 })]
    public async Task Ciphertext_written_in_uneven_pieces_decrypts(int[] pieces)
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(4 * Small + 9);
        var ciphertext = await Encrypt(key, NewHeader(Small), plaintext);
        var output = new MemoryStream();

        await DatasetStream.DecryptAsync(key, new PieceWritingStream(ciphertext, pieces), output, ct: Ct);

        Assert.Equal(plaintext, output.ToArray());
    }

    [Fact]
    public async Task Bytes_appended_in_a_later_piece_after_a_full_last_segment_are_rejected_as_trailing_data()
    {
        // Each segment arrives as a piece of its own, so the full last one is held until the garbage shows that
        // something follows it.
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(2 * Small));
        var pieces = new[] { Small + Tag, Small + Tag, 7 };

        var e = await Assert.ThrowsAsync<DatasetIntegrityException>(() =>
            DatasetStream.DecryptAsync(key, new PieceWritingStream([.. ciphertext, .. "garbage"u8], pieces), new MemoryStream(), ct: Ct));

        Assert.Equal("trailing-data", e.Code);
    }

    // ---- header parsing ----

    [Fact]
    public async Task ReadHeader_parses_the_prefix_of_a_stream_without_the_key()
    {
        using var key = DataKey.Generate();
        var header = NewHeader(Small);
        var ciphertext = await Encrypt(key, header, RandomNumberGenerator.GetBytes(10));

        Assert.Equal(header, DatasetStream.ReadHeader(ciphertext));
    }

    [Fact]
    public void ReadHeader_rejects_input_that_is_not_a_dataset_stream_as_bad_magic()
    {
        var e = Assert.Throws<DatasetIntegrityException>(() => DatasetStream.ReadHeader("PK\u0003\u0004 not a dataset stream at all"u8));

        Assert.Equal("bad-magic", e.Code);
    }

    [Fact]
    public async Task ReadHeader_rejects_an_unknown_format_version()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), []);
        ciphertext[4] = 2;

        var e = Assert.Throws<DatasetIntegrityException>(() => DatasetStream.ReadHeader(ciphertext));

        Assert.Equal("unsupported-version", e.Code);
    }

    [Fact]
    public async Task ReadHeader_rejects_a_prefix_shorter_than_the_header()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), []);

        var e = Assert.Throws<DatasetIntegrityException>(() => DatasetStream.ReadHeader(ciphertext.AsSpan(0, HeaderLength - 1)));

        Assert.Equal("header-truncated", e.Code);
    }

    [Fact]
    public async Task ReadHeader_rejects_a_segment_size_outside_the_allowed_range()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), []);
        ciphertext[25] = 0x7f; // segment size u32 BE at offset 25: now about 2 GiB

        var e = Assert.Throws<DatasetIntegrityException>(() => DatasetStream.ReadHeader(ciphertext));

        Assert.Equal("header-malformed", e.Code);
    }

    [Fact]
    public async Task Encrypt_refuses_a_segment_size_outside_the_allowed_range()
    {
        using var key = DataKey.Generate();

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            DatasetStream.EncryptAsync(key, NewHeader(Small - 1), new MemoryStream(), new MemoryStream(), Ct));
    }

    // ---- rejections ----

    [Fact]
    public async Task A_flipped_byte_in_a_segment_body_is_rejected()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(3 * Small + 10));
        ciphertext[SegmentOffset(1) + 100] ^= 0x01;

        var e = await DecryptFails(key, ciphertext);

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Contains("segment 1", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_flipped_byte_in_the_header_is_rejected()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(3 * Small + 10));
        ciphertext[10] ^= 0x01; // inside the dataset id: still a well-formed header, but a different one

        var e = await DecryptFails(key, ciphertext);

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Contains("segment 0", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_flipped_byte_in_the_salt_is_rejected()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(10));
        ciphertext[HeaderLength - 7 - 1] ^= 0x80; // last salt byte

        var e = await DecryptFails(key, ciphertext);

        Assert.Equal("segment-authentication-failed", e.Code);
    }

    [Fact]
    public async Task A_flipped_byte_in_a_tag_is_rejected()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(3 * Small + 10));
        ciphertext[SegmentOffset(1) - 1] ^= 0x01; // last tag byte of segment 0

        var e = await DecryptFails(key, ciphertext);

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Contains("segment 0", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dropped_middle_segment_is_rejected()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(4 * Small + 10));
        var (header, segments) = Split(ciphertext);
        segments.RemoveAt(2);

        var e = await DecryptFails(key, Join(header, segments));

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Contains("segment 2", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_duplicated_segment_is_rejected()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(4 * Small + 10));
        var (header, segments) = Split(ciphertext);
        segments.Insert(2, segments[1]);

        var e = await DecryptFails(key, Join(header, segments));

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Contains("segment 2", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Swapped_segments_are_rejected()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(4 * Small + 10));
        var (header, segments) = Split(ciphertext);
        (segments[1], segments[2]) = (segments[2], segments[1]);

        var e = await DecryptFails(key, Join(header, segments));

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Contains("segment 1", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stream_whose_last_segment_was_removed_is_rejected_as_truncated()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(3 * Small + 10));
        var (header, segments) = Split(ciphertext);
        segments.RemoveAt(segments.Count - 1);

        var e = await DecryptFails(key, Join(header, segments));

        Assert.Equal("stream-truncated", e.Code);
    }

    [Fact]
    public async Task A_stream_cut_inside_its_last_segment_is_rejected()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(3 * Small + 10));

        var e = await DecryptFails(key, ciphertext[..^5]);

        Assert.Equal("segment-authentication-failed", e.Code);
    }

    [Fact]
    public async Task A_header_with_no_segments_is_rejected_as_truncated()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), []);

        var e = await DecryptFails(key, ciphertext[..HeaderLength]);

        Assert.Equal("stream-truncated", e.Code);
    }

    [Fact]
    public async Task Bytes_appended_after_a_full_last_segment_are_rejected_as_trailing_data()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(2 * Small));

        var e = await DecryptFails(key, [.. ciphertext, .. "garbage"u8]);

        Assert.Equal("trailing-data", e.Code);
    }

    [Fact]
    public async Task Bytes_appended_after_a_partial_last_segment_are_rejected()
    {
        // The wire carries no segment lengths, so garbage after a short last segment just makes that segment longer;
        // it cannot authenticate, but it is indistinguishable from an altered segment.
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(2 * Small + 10));

        var e = await DecryptFails(key, [.. ciphertext, .. "garbage"u8]);

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Contains("segment 2", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_segment_spliced_from_another_dataset_under_the_same_key_is_rejected()
    {
        using var key = DataKey.Generate();
        // Same key and even the same header fields: only the per-stream salt and nonce prefix differ.
        var header = NewHeader(Small);
        var first = await Encrypt(key, header, RandomNumberGenerator.GetBytes(3 * Small + 10));
        var second = await Encrypt(key, header, RandomNumberGenerator.GetBytes(3 * Small + 10));
        var (firstHeader, firstSegments) = Split(first);
        var (_, secondSegments) = Split(second);
        firstSegments[1] = secondSegments[1];

        var e = await DecryptFails(key, Join(firstHeader, firstSegments));

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Contains("segment 1", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stream_decrypted_with_a_different_data_key_is_rejected()
    {
        using var key = DataKey.Generate();
        using var otherKey = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(10));

        var e = await DecryptFails(otherKey, ciphertext);

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Contains("segment 0", e.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stream_for_another_dataset_than_expected_is_rejected_before_decrypting()
    {
        using var key = DataKey.Generate();
        var ciphertext = await Encrypt(key, NewHeader(Small), RandomNumberGenerator.GetBytes(10));
        var output = new MemoryStream();

        var e = await Assert.ThrowsAsync<DatasetIntegrityException>(() =>
            DatasetStream.DecryptAsync(key, new MemoryStream(ciphertext), output, expectedDatasetId: Guid.NewGuid(), ct: Ct));

        Assert.Equal("dataset-id-mismatch", e.Code);
        Assert.Equal(0, output.Length);
    }

    [Fact]
    public async Task The_expected_dataset_id_is_accepted_when_it_matches()
    {
        using var key = DataKey.Generate();
        var header = NewHeader(Small);
        var plaintext = RandomNumberGenerator.GetBytes(10);
        var ciphertext = await Encrypt(key, header, plaintext);

        Assert.Equal(plaintext, await Decrypt(key, ciphertext, header.DatasetId));
    }

    [Fact]
    public async Task Decrypt_writes_only_the_segments_that_authenticated_before_a_failing_one()
    {
        // Callers must still treat this prefix as void: the exception says the dataset as a whole is not intact.
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(4 * Small + 10);
        var ciphertext = await Encrypt(key, NewHeader(Small), plaintext);
        ciphertext[SegmentOffset(2) + 5] ^= 0x01;
        var output = new MemoryStream();

        await Assert.ThrowsAsync<DatasetIntegrityException>(() =>
            DatasetStream.DecryptAsync(key, new MemoryStream(ciphertext), output, ct: Ct));

        Assert.Equal(plaintext[..(2 * Small)], output.ToArray());
    }

    [Fact]
    public async Task A_dataset_encrypted_and_decrypted_through_buffer_writers_is_the_one_the_streams_give()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(5 * Small + 123);
        var header = NewHeader(Small);
        var sealedInto = new ArrayBufferWriter<byte>();

        await DatasetStream.EncryptAsync(key, header, new MemoryStream(plaintext), sealedInto, Ct);
        var openedInto = new ArrayBufferWriter<byte>();
        var read = await DatasetStream.DecryptAsync(key, new MemoryStream(sealedInto.WrittenSpan.ToArray()), openedInto, header.DatasetId, Ct);

        Assert.Equal(HeaderLength + 5 * (Small + Tag) + 123 + Tag, sealedInto.WrittenCount);
        Assert.Equal(plaintext, openedInto.WrittenSpan.ToArray());
        Assert.Equal(header, read);
        Assert.Equal(plaintext, await Decrypt(key, sealedInto.WrittenSpan.ToArray()));
    }

    [Fact]
    public async Task An_empty_dataset_round_trips_through_buffer_writers()
    {
        using var key = DataKey.Generate();
        var sealedInto = new ArrayBufferWriter<byte>();
        await DatasetStream.EncryptAsync(key, NewHeader(Small), new MemoryStream(), sealedInto, Ct);
        var openedInto = new ArrayBufferWriter<byte>();

        await DatasetStream.DecryptAsync(key, new MemoryStream(sealedInto.WrittenSpan.ToArray()), openedInto, ct: Ct);

        Assert.Equal(HeaderLength + Tag, sealedInto.WrittenCount);
        Assert.Equal(0, openedInto.WrittenCount);
    }

    [Fact]
    public async Task Decrypting_into_a_buffer_writer_commits_only_the_segments_that_authenticated_before_a_failing_one()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(4 * Small + 10);
        var ciphertext = await Encrypt(key, NewHeader(Small), plaintext);
        ciphertext[SegmentOffset(2) + 5] ^= 0x01;
        var output = new ArrayBufferWriter<byte>();

        var e = await Assert.ThrowsAsync<DatasetIntegrityException>(() =>
            DatasetStream.DecryptAsync(key, new MemoryStream(ciphertext), output, ct: Ct));

        Assert.StartsWith("segment-authentication-failed", e.Reason, StringComparison.Ordinal);
        Assert.Equal(plaintext[..(2 * Small)], output.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task A_truncated_stream_decrypted_into_a_buffer_writer_is_diagnosed_as_truncated()
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(3 * Small);
        var ciphertext = await Encrypt(key, NewHeader(Small), plaintext);
        var output = new ArrayBufferWriter<byte>();

        var e = await Assert.ThrowsAsync<DatasetIntegrityException>(() =>
            DatasetStream.DecryptAsync(key, new MemoryStream(ciphertext[..SegmentOffset(2)]), output, ct: Ct));

        Assert.StartsWith("stream-truncated", e.Reason, StringComparison.Ordinal);
        Assert.Equal(plaintext[..Small], output.WrittenSpan.ToArray());
    }

    [Fact]
    public void Reason_is_a_stable_code_followed_by_human_text()
    {
        var e = new DatasetIntegrityException("segment-authentication-failed: segment 3 does not authenticate");

        Assert.Equal("segment-authentication-failed", e.Code);
        Assert.Equal("segment-authentication-failed: segment 3 does not authenticate", e.Reason);
        Assert.Equal(e.Reason, e.Message);
    }

    // ---- known answers (the vectors in docs/format.md, cross-checked with an independent Python implementation) ----

    private static readonly byte[] VectorKey = Enumerable.Range(0x00, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] VectorSalt = Enumerable.Range(0x40, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] VectorNoncePrefix = Enumerable.Range(0xa0, 7).Select(i => (byte)i).ToArray();
    private static readonly DatasetStreamHeader VectorHeader = new(Guid.Parse("00112233-4455-6677-8899-aabbccddeeff"), "kms/key-1", 7, 4096);

    private const string ShortVector =
        "545344530100112233445566778899aabbccddeeff000000070000100000096b6d732f6b65792d31"
        + "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f" + "a0a1a2a3a4a5a6"
        + "f1cdf70a8cc7d4674550565736aaa60e90874a7d03adb9c8a5fa28";

    [Fact]
    public async Task Known_answer_single_segment_stream_matches_the_documented_vector()
    {
        using var key = new DataKey(SecretBytes.CopyFrom(VectorKey));
        var ciphertext = new MemoryStream();

        await DatasetStream.EncryptWithRandomnessAsync(
            key, VectorHeader, new MemoryStream("hello, twin"u8.ToArray()), ciphertext, VectorSalt, VectorNoncePrefix, Ct);

        Assert.Equal(ShortVector, Convert.ToHexStringLower(ciphertext.ToArray()));
        Assert.Equal("hello, twin"u8.ToArray(), await Decrypt(key, Convert.FromHexString(ShortVector)));
    }

    [Fact]
    public async Task Known_answer_multi_segment_stream_matches_the_documented_digest()
    {
        using var key = new DataKey(SecretBytes.CopyFrom(VectorKey));
        var plaintext = Enumerable.Range(0, 3 * 4096 + 5).Select(i => (byte)(i * 7)).ToArray();
        var ciphertext = new MemoryStream();

        await DatasetStream.EncryptWithRandomnessAsync(
            key, VectorHeader, new MemoryStream(plaintext), ciphertext, VectorSalt, VectorNoncePrefix, Ct);

        Assert.Equal(
            "660bbf8b08ecc960693ea00d32c3e799a1cd62156dc23bd8f2a25a893d650203",
            Convert.ToHexStringLower(SHA256.HashData(ciphertext.ToArray())));
    }

    // ---- helpers ----

    private static readonly int HeaderLength = DatasetStream.HeaderLength(Encoding.UTF8.GetByteCount(KeyId));

    private static DatasetStreamHeader NewHeader(int segmentSize) => new(Guid.NewGuid(), KeyId, 3, segmentSize);

    private static int SegmentOffset(int index) => HeaderLength + index * (Small + Tag);

    private static async Task<byte[]> Encrypt(DataKey key, DatasetStreamHeader header, byte[] plaintext)
    {
        var ciphertext = new MemoryStream();
        await DatasetStream.EncryptAsync(key, header, new MemoryStream(plaintext), ciphertext, Ct);
        return ciphertext.ToArray();
    }

    private static async Task<byte[]> Decrypt(DataKey key, byte[] ciphertext, Guid? expectedDatasetId = null)
    {
        var plaintext = new MemoryStream();
        await DatasetStream.DecryptAsync(key, new MemoryStream(ciphertext), plaintext, expectedDatasetId, Ct);
        return plaintext.ToArray();
    }

    private static Task<DatasetIntegrityException> DecryptFails(DataKey key, byte[] ciphertext) =>
        Assert.ThrowsAsync<DatasetIntegrityException>(() => Decrypt(key, ciphertext));

    /// <summary>Cuts a stream with <see cref="Small"/> segments into its header and wire segments.</summary>
    private static (byte[] Header, List<byte[]> Segments) Split(byte[] ciphertext)
    {
        var segments = new List<byte[]>();
        for (var offset = HeaderLength; offset < ciphertext.Length; offset += Small + Tag)
            segments.Add(ciphertext[offset..Math.Min(offset + Small + Tag, ciphertext.Length)]);
        return (ciphertext[..HeaderLength], segments);
    }

    private static byte[] Join(byte[] header, List<byte[]> segments) => [.. header, .. segments.SelectMany(s => s)];

    /// <summary>A read-only stream that never returns more than one byte per read, like a slow network stream.</summary>
    /// <summary>A source that copies itself out in pieces of the given sizes, in turn, as a pipe hands on its buffers.</summary>
    private sealed class PieceWritingStream(byte[] data, int[] pieces) : Stream
    {
        private readonly MemoryStream _inner = new(data);

        public override async Task CopyToAsync(Stream destination, int bufferSize, CancellationToken cancellationToken)
        {
            for (var i = 0; _inner.Position < _inner.Length; i++)
            {
                var n = (int)Math.Min(pieces[i % pieces.Length], _inner.Length - _inner.Position);
                await destination.WriteAsync(data.AsMemory((int)_inner.Position, n), cancellationToken);
                _inner.Position += n;
            }
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class OneBytePerReadStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 1));
        public override int Read(Span<byte> buffer) => _inner.Read(buffer[..Math.Min(buffer.Length, 1)]);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer, offset, count));
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
