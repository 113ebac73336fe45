using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace TwinSeal.Enclave;

/// <summary>
/// The one encoding of a measured file tree: SHA-384 over (u32 path length ‖ UTF-8 path ‖ u64 content length ‖ content)
/// for each file in ordinal path order. Paths are relative with '/' separators, so the value does not depend on where
/// the tree lies; the length prefixes keep ("ab","c") and ("a","bc") apart.
/// </summary>
public sealed class MeasurementDigest : IDisposable
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA384);
    private string? _previous;

    /// <summary>Adds one file whose bytes are in memory.</summary>
    public void Add(string relativePath, ReadOnlySpan<byte> content)
    {
        AddHeader(relativePath, content.Length);
        _hash.AppendData(content);
    }

    /// <summary>Adds one file read from <paramref name="content"/> to its end; its length must be known first.</summary>
    public void Add(string relativePath, Stream content)
    {
        AddHeader(relativePath, content.Length);
        var buffer = new byte[1 << 20];
        long total = 0;
        int read;
        while ((read = content.Read(buffer)) > 0)
        {
            _hash.AppendData(buffer, 0, read);
            total += read;
        }
        // A file that grew or shrank while it was read would be measured as something that never existed on disk.
        if (total != content.Length) throw new InvalidOperationException($"'{relativePath}' changed while it was measured.");
    }

    /// <summary>Lower-case hex SHA-384 of everything added.</summary>
    public string Finish() => Convert.ToHexStringLower(_hash.GetHashAndReset());

    private void AddHeader(string relativePath, long length)
    {
        if (_previous is not null && string.CompareOrdinal(_previous, relativePath) >= 0)
            throw new InvalidOperationException("Measured files must come in strictly ascending ordinal path order.");
        _previous = relativePath;
        Span<byte> len = stackalloc byte[8];
        var path = Encoding.UTF8.GetBytes(relativePath);
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)path.Length);
        _hash.AppendData(len[..4]);
        _hash.AppendData(path);
        BinaryPrimitives.WriteUInt64BigEndian(len, (ulong)length);
        _hash.AppendData(len);
    }

    /// <inheritdoc />
    public void Dispose() => _hash.Dispose();
}
