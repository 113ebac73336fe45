using System.Security.Cryptography;
using TwinSeal.Crypto;

namespace TwinSeal.Crypto.Tests;

/// <summary>The in-memory Encrypt/Decrypt: the very same format and refusals as the streaming API, without copies.</summary>
public sealed class DatasetStreamInMemoryTests
{
    private const int Segment = DatasetStream.MinSegmentSize;
    private static readonly DatasetStreamHeader Header = new(Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"), "key-1", 3, Segment);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(Segment)]
    [InlineData(3 * Segment)]
    [InlineData(5 * Segment + 123)]
    public async Task InMemoryEncrypt_ProducesTheSameBytesAsTheStreamingWriter(int length)
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(length);
        var salt = RandomNumberGenerator.GetBytes(32);
        var prefix = RandomNumberGenerator.GetBytes(7);
        using var streamed = new MemoryStream();
        await DatasetStream.EncryptWithRandomnessAsync(key, Header, new MemoryStream(plaintext), streamed, salt, prefix, Ct);

        var inMemory = DatasetStream.EncryptWithRandomness(key, Header, plaintext, salt, prefix);

        Assert.Equal(streamed.ToArray(), inMemory);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(Segment)]
    [InlineData(4 * Segment + 7)]
    public async Task InMemoryDecrypt_ReadsWhatTheStreamingWriterWrote(int length)
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(length);
        using var streamed = new MemoryStream();
        await DatasetStream.EncryptAsync(key, Header, new MemoryStream(plaintext), streamed, Ct);

        var (header, decrypted) = DatasetStream.Decrypt(key, streamed.ToArray(), Header.DatasetId);

        Assert.Equal(Header, header);
        Assert.Equal(plaintext, decrypted);
    }

    [Fact]
    public void InMemoryDecrypt_RefusesAChangedByte()
    {
        using var key = DataKey.Generate();
        var ciphertext = DatasetStream.Encrypt(key, Header, RandomNumberGenerator.GetBytes(3 * Segment));
        ciphertext[^(Segment + 40)] ^= 1;

        Assert.Equal("segment-authentication-failed", Assert.Throws<DatasetIntegrityException>(() => DatasetStream.Decrypt(key, ciphertext)).Code);
    }

    [Fact]
    public void InMemoryDecrypt_RefusesAStreamWhoseLastSegmentWasDropped()
    {
        using var key = DataKey.Generate();
        var ciphertext = DatasetStream.Encrypt(key, Header, RandomNumberGenerator.GetBytes(3 * Segment + 10));
        var cut = ciphertext[..^(10 + 16)];

        Assert.Equal("stream-truncated", Assert.Throws<DatasetIntegrityException>(() => DatasetStream.Decrypt(key, cut)).Code);
    }

    [Fact]
    public void InMemoryDecrypt_RefusesDataAfterTheLastSegment()
    {
        using var key = DataKey.Generate();
        var ciphertext = DatasetStream.Encrypt(key, Header, RandomNumberGenerator.GetBytes(2 * Segment));
        var longer = ciphertext.Concat(new byte[Segment + 16]).ToArray();

        Assert.Equal("trailing-data", Assert.Throws<DatasetIntegrityException>(() => DatasetStream.Decrypt(key, longer)).Code);
    }

    [Fact]
    public void InMemoryDecrypt_RefusesAnotherDatasetIdBeforeDecrypting()
    {
        using var key = DataKey.Generate();
        var ciphertext = DatasetStream.Encrypt(key, Header, [1, 2, 3]);

        Assert.Equal("dataset-id-mismatch", Assert.Throws<DatasetIntegrityException>(() => DatasetStream.Decrypt(key, ciphertext, Guid.NewGuid())).Code);
    }

    [Fact]
    public void InMemoryDecrypt_WithAnotherKey_IsRefused()
    {
        using var key = DataKey.Generate();
        using var other = DataKey.Generate();
        var ciphertext = DatasetStream.Encrypt(key, Header, [1, 2, 3]);

        Assert.Equal("segment-authentication-failed", Assert.Throws<DatasetIntegrityException>(() => DatasetStream.Decrypt(other, ciphertext)).Code);
    }
}

/// <summary>The caller-buffer overloads used where the same memory is reused.</summary>
public sealed class DatasetStreamBufferTests
{
    private static readonly DatasetStreamHeader Header = new(Guid.NewGuid(), "key-1", 1, DatasetStream.MinSegmentSize);

    [Theory]
    [InlineData(0)]
    [InlineData(DatasetStream.MinSegmentSize * 2)]
    [InlineData(DatasetStream.MinSegmentSize * 2 + 5)]
    public void EncryptIntoABufferOfCiphertextLength_DecryptsIntoABufferOfPlaintextLength(int length)
    {
        using var key = DataKey.Generate();
        var plaintext = RandomNumberGenerator.GetBytes(length);
        var ciphertext = new byte[DatasetStream.CiphertextLength(Header, length)];

        DatasetStream.Encrypt(key, Header, plaintext, ciphertext);
        var decrypted = new byte[DatasetStream.PlaintextLength(ciphertext)];
        DatasetStream.Decrypt(key, ciphertext, decrypted, Header.DatasetId);

        Assert.Equal(plaintext, decrypted);
    }

    [Fact]
    public void Encrypt_RefusesADestinationOfTheWrongSize()
    {
        using var key = DataKey.Generate();

        Assert.Throws<ArgumentException>(() => DatasetStream.Encrypt(key, Header, new byte[10], new byte[DatasetStream.CiphertextLength(Header, 10) + 1]));
    }

    [Fact]
    public void FailedDecryption_LeavesTheDestinationZeroed()
    {
        using var key = DataKey.Generate();
        var ciphertext = DatasetStream.Encrypt(key, Header, RandomNumberGenerator.GetBytes(3 * DatasetStream.MinSegmentSize));
        ciphertext[^5] ^= 1;
        var destination = new byte[DatasetStream.PlaintextLength(ciphertext)];

        Assert.Throws<DatasetIntegrityException>(() => DatasetStream.Decrypt(key, ciphertext, destination));
        Assert.All(destination, b => Assert.Equal(0, b));
    }
}
