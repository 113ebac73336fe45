using System.Buffers.Binary;

namespace TwinSeal.Enclave.Hardware;

/// <summary>
/// The certificate table an SEV-SNP guest gets with an extended report request (GHCB specification, MSG_REPORT_REQ
/// extended guest request; what configfs-tsm returns in <c>auxblob</c> when the provider is <c>sev_guest</c>):
/// a list of 24-byte entries <c>{ GUID (16 bytes), offset (u32 LE), length (u32 LE) }</c> closed by an all-zero
/// entry, followed by the certificates (DER) the entries point at; offsets count from the start of the table.
/// </summary>
public static class SevSnpCertificateTable
{
    /// <summary>GUID of the VCEK entry.</summary>
    public static readonly Guid Vcek = new("63da758d-e664-4564-adc5-f4b93be8accd");
    /// <summary>GUID of the VLEK entry.</summary>
    public static readonly Guid Vlek = new("a8074bc2-a25a-483e-aae6-39c045a0b8a1");
    /// <summary>GUID of the ASK entry.</summary>
    public static readonly Guid Ask = new("4ab7b379-bbac-4fe4-a02f-05aef327c782");
    /// <summary>GUID of the ARK entry.</summary>
    public static readonly Guid Ark = new("c0b406a4-a803-4952-9743-3fb6014cd0ae");

    private const int EntrySize = 24;
    private const int MaxEntries = 64;

    private static readonly Guid[] Known = [Vcek, Vlek, Ask, Ark];

    /// <summary>
    /// Reads the table. GUIDs are read in RFC 4122 byte order (as AMD's tools write them); a table whose GUIDs are in
    /// the mixed-endian order some hosts use is accepted too, so each entry's GUID is reported as one of the known GUIDs
    /// when either reading matches. An empty or all-zero blob is an empty table.
    /// </summary>
    /// <exception cref="FormatException">The table has no terminator, too many entries, or an entry pointing outside the blob or into the table.</exception>
    public static IReadOnlyList<(Guid Guid, byte[] Certificate)> Parse(ReadOnlySpan<byte> blob)
    {
        var entries = new List<(Guid, byte[])>();
        if (blob.IndexOfAnyExcept((byte)0) < 0)
            return entries;
        var raw = new List<(Guid Guid, uint Offset, uint Length)>();
        var position = 0;
        while (true)
        {
            if (position + EntrySize > blob.Length)
                throw new FormatException("the SEV-SNP certificate table has no all-zero terminating entry");
            var entry = blob.Slice(position, EntrySize);
            position += EntrySize;
            if (entry.IndexOfAnyExcept((byte)0) < 0)
                break;
            if (raw.Count == MaxEntries)
                throw new FormatException($"the SEV-SNP certificate table has more than {MaxEntries} entries");
            raw.Add((ReadGuid(entry[..16]), BinaryPrimitives.ReadUInt32LittleEndian(entry[16..]), BinaryPrimitives.ReadUInt32LittleEndian(entry[20..])));
        }
        foreach (var (guid, offset, length) in raw)
        {
            if (length == 0)
                throw new FormatException($"the SEV-SNP certificate table entry {guid} is empty");
            if (offset < (uint)position || (ulong)offset + length > (ulong)blob.Length)
                throw new FormatException($"the SEV-SNP certificate table entry {guid} points at bytes {offset}–{(ulong)offset + length} outside the certificate area {position}–{blob.Length}");
            entries.Add((guid, blob.Slice((int)offset, (int)length).ToArray()));
        }
        return entries;
    }

    /// <summary>Builds a table (RFC 4122 GUID byte order), e.g. to stand in for the host in tests.</summary>
    public static byte[] Build(IReadOnlyList<(Guid Guid, byte[] Certificate)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var header = (entries.Count + 1) * EntrySize;
        var total = header + entries.Sum(e => e.Certificate.Length);
        var blob = new byte[total];
        var offset = header;
        for (var i = 0; i < entries.Count; i++)
        {
            var (guid, certificate) = entries[i];
            var entry = blob.AsSpan(i * EntrySize, EntrySize);
            guid.TryWriteBytes(entry[..16], bigEndian: true, out _);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[16..], (uint)offset);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[20..], (uint)certificate.Length);
            certificate.CopyTo(blob, offset);
            offset += certificate.Length;
        }
        return blob;
    }

    private static Guid ReadGuid(ReadOnlySpan<byte> bytes)
    {
        var rfc = new Guid(bytes, bigEndian: true);
        if (Known.Contains(rfc))
            return rfc;
        var mixed = new Guid(bytes, bigEndian: false);
        return Known.Contains(mixed) ? mixed : rfc;
    }
}
