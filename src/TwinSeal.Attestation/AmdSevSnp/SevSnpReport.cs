using System.Buffers.Binary;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.AmdSevSnp;

/// <summary>AMD EPYC product lines that run SEV-SNP; each has its own AMD root key (ARK) and VCEK issuer.</summary>
public enum SevSnpProduct
{
    /// <summary>3rd generation EPYC (Zen 3, family 19h models 00h–0Fh).</summary>
    Milan,
    /// <summary>4th generation EPYC (Zen 4, family 19h models 10h–1Fh and A0h–AFh).</summary>
    Genoa,
    /// <summary>5th generation EPYC (Zen 5, family 1Ah models 00h–11h). Its TCB_VERSION layout differs (an FMC byte first).</summary>
    Turin,
}

/// <summary>Which key signed an attestation report (bits 4:2 of the word at 0x48).</summary>
public enum SevSnpSigningKey
{
    /// <summary>Versioned Chip Endorsement Key: unique to the chip and its TCB; its certificate names the chip (hwID).</summary>
    Vcek = 0,
    /// <summary>Versioned Loaded Endorsement Key: issued to a cloud provider and loaded into the firmware; no chip identity.</summary>
    Vlek = 1,
    /// <summary>The report is not signed.</summary>
    None = 7,
}

/// <summary>
/// The guest policy the VM was launched with (report offset 0x08). Bit positions follow the SEV-SNP firmware ABI
/// (AMD 56860): 7:0 ABI minor, 15:8 ABI major, 16 SMT, 17 reserved (must be one), 18 MIGRATE_MA, 19 DEBUG,
/// 20 SINGLE_SOCKET, 21 CXL_ALLOW, 22 MEM_AES_256_XTS, 23 RAPL_DIS, 24 CIPHERTEXT_HIDING, 25 PAGE_SWAP_DISABLE.
/// </summary>
/// <param name="Value">The raw 64-bit policy.</param>
public readonly record struct SevSnpGuestPolicy(ulong Value)
{
    /// <summary>Bit 17, reserved; the firmware refuses a policy where it is zero.</summary>
    public const int ReservedOneBit = 17;
    /// <summary>Highest bit this parser knows; every bit above must be zero.</summary>
    public const int HighestKnownBit = 25;

    /// <summary>Minimum ABI minor version the guest requires.</summary>
    public byte AbiMinor => (byte)Value;
    /// <summary>Minimum ABI major version the guest requires.</summary>
    public byte AbiMajor => (byte)(Value >> 8);
    /// <summary>Simultaneous multithreading allowed.</summary>
    public bool Smt => Bit(16);
    /// <summary>The guest may be associated with a migration agent, which can read and move its memory.</summary>
    public bool MigrateMa => Bit(18);
    /// <summary>The host may debug the guest (read and write its memory decrypted).</summary>
    public bool Debug => Bit(19);
    /// <summary>The guest may be active on a single socket only.</summary>
    public bool SingleSocket => Bit(20);
    /// <summary>CXL may be populated with devices or memory.</summary>
    public bool CxlAllowed => Bit(21);
    /// <summary>AES-256-XTS memory encryption required.</summary>
    public bool MemAes256Xts => Bit(22);
    /// <summary>Running Average Power Limit must be disabled.</summary>
    public bool RaplDisabled => Bit(23);
    /// <summary>Ciphertext hiding must be enabled.</summary>
    public bool CiphertextHiding => Bit(24);
    /// <summary>Guest page swap and move commands disabled.</summary>
    public bool PageSwapDisabled => Bit(25);

    private bool Bit(int n) => (Value & (1UL << n)) != 0;
}

/// <summary>
/// A TCB_VERSION: security patch levels of the platform components. Milan and Genoa lay it out as
/// bootloader (byte 0), TEE (1), reserved (2–5), SNP (6), microcode (7); Turin as FMC (0), bootloader (1), TEE (2),
/// SNP (3), reserved (4–6), microcode (7). The report does not say which layout it uses: the product does.
/// </summary>
/// <param name="Bootloader">Security patch level of the AMD-SP bootloader.</param>
/// <param name="Tee">Security patch level of the AMD-SP operating system.</param>
/// <param name="Snp">Security patch level of the SNP firmware.</param>
/// <param name="Microcode">Lowest microcode patch level of all cores.</param>
/// <param name="Fmc">FMC firmware patch level; Turin only (null on Milan and Genoa).</param>
public readonly record struct SevSnpTcb(byte Bootloader, byte Tee, byte Snp, byte Microcode, byte? Fmc = null)
{
    /// <summary>Reads a little-endian TCB_VERSION value in the product's layout.</summary>
    public static SevSnpTcb Decode(ulong raw, SevSnpProduct product)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, raw);
        return product == SevSnpProduct.Turin
            ? new SevSnpTcb(Bootloader: b[1], Tee: b[2], Snp: b[3], Microcode: b[7], Fmc: b[0])
            : new SevSnpTcb(Bootloader: b[0], Tee: b[1], Snp: b[6], Microcode: b[7]);
    }

    /// <summary>True when no component of this TCB is lower than the same component of <paramref name="other"/>.</summary>
    public bool IsAtLeast(SevSnpTcb other)
        => Bootloader >= other.Bootloader && Tee >= other.Tee && Snp >= other.Snp && Microcode >= other.Microcode
           && (Fmc ?? 0) >= (other.Fmc ?? 0);

    /// <summary>
    /// Compares the TCB a report claims with the TCB its VCEK/VLEK certificate was issued for. They must be equal:
    /// the endorsement key is derived from the TCB, so a report claiming another TCB than its key's is not what the
    /// firmware would sign. Returns null when they are equal, otherwise the reason (naming a lower TCB as such).
    /// </summary>
    public static string? Mismatch(SevSnpTcb reported, SevSnpTcb endorsed)
    {
        if (reported == endorsed)
            return null;
        return reported.IsAtLeast(endorsed)
            ? $"reported TCB ({reported}) differs from the TCB the endorsement key was issued for ({endorsed})"
            : $"reported TCB ({reported}) is lower than the TCB the endorsement key was issued for ({endorsed})";
    }

    /// <inheritdoc />
    public override string ToString()
        => (Fmc is { } fmc ? $"fmc={fmc} " : "") + $"bootloader={Bootloader} tee={Tee} snp={Snp} microcode={Microcode}";
}

/// <summary>
/// An SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP firmware ABI, 56860), versions 2 to 5: 1184 bytes, little-endian,
/// signed with ECDSA P-384/SHA-384 over bytes 0x000–0x29F. Parsing checks the structure only
/// (length, version, signature algorithm, reserved bits and signature padding); the signature is checked by
/// <see cref="SevSnpVerifier"/>.
/// </summary>
/// <remarks>
/// Layout: 0x000 VERSION, 0x004 GUEST_SVN, 0x008 POLICY, 0x010 FAMILY_ID (16), 0x020 IMAGE_ID (16), 0x030 VMPL,
/// 0x034 SIGNATURE_ALGO, 0x038 CURRENT_TCB, 0x040 PLATFORM_INFO, 0x048 AUTHOR_KEY_EN (bit 0) / MASK_CHIP_KEY (bit 1) /
/// SIGNING_KEY (bits 4:2), 0x050 REPORT_DATA (64), 0x090 MEASUREMENT (48), 0x0C0 HOST_DATA (32), 0x0E0 ID_KEY_DIGEST (48),
/// 0x110 AUTHOR_KEY_DIGEST (48), 0x140 REPORT_ID (32), 0x160 REPORT_ID_MA (32), 0x180 REPORTED_TCB,
/// 0x188 CPUID family/model/stepping (version 3 and later), 0x1A0 CHIP_ID (64), 0x1E0 COMMITTED_TCB,
/// 0x1E8 CURRENT build/minor/major, 0x1EC COMMITTED build/minor/major, 0x1F0 LAUNCH_TCB,
/// 0x1F8 LAUNCH_MIT_VECTOR and 0x200 CURRENT_MIT_VECTOR (version 5), 0x2A0 SIGNATURE (R then S, 72 bytes each, little-endian).
/// </remarks>
public sealed class SevSnpReport
{
    /// <summary>Size of every report version.</summary>
    public const int Size = 0x4A0;
    /// <summary>Length of the signed prefix (0x000–0x29F).</summary>
    public const int SignedLength = 0x2A0;
    /// <summary>Lowest report version this parser reads.</summary>
    public const int MinVersion = 2;
    /// <summary>Highest report version this parser reads (versions 3 to 5 share version 2's prefix and add fields in reserved space).</summary>
    public const int MaxVersion = 5;
    /// <summary>SIGNATURE_ALGO value for ECDSA P-384 with SHA-384, the only algorithm defined.</summary>
    public const uint EcdsaP384Sha384 = 1;

    private const int SignatureOffset = SignedLength;
    private const int ComponentSize = 72;
    private const int ScalarSize = 48;

    private readonly byte[] _raw;

    private SevSnpReport(byte[] raw) => _raw = raw;

    /// <summary>The report bytes as parsed.</summary>
    public ReadOnlyMemory<byte> Raw => _raw;
    /// <summary>The signed bytes, 0x000–0x29F.</summary>
    public ReadOnlyMemory<byte> SignedBytes => _raw.AsMemory(0, SignedLength);

    /// <summary>Report format version (2–5).</summary>
    public uint Version => U32(0x00);
    /// <summary>Guest security version number from the ID block.</summary>
    public uint GuestSvn => U32(0x04);
    /// <summary>Guest launch policy.</summary>
    public SevSnpGuestPolicy Policy => new(U64(0x08));
    /// <summary>Family ID from the ID block.</summary>
    public ReadOnlyMemory<byte> FamilyId => Field(0x10, 16);
    /// <summary>Image ID from the ID block.</summary>
    public ReadOnlyMemory<byte> ImageId => Field(0x20, 16);
    /// <summary>VM privilege level that requested the report (0 is the most privileged).</summary>
    public uint Vmpl => U32(0x30);
    /// <summary>Signature algorithm; always <see cref="EcdsaP384Sha384"/> for a parsed report.</summary>
    public uint SignatureAlgorithm => U32(0x34);
    /// <summary>Raw CURRENT_TCB; decode with <see cref="SevSnpTcb.Decode"/>.</summary>
    public ulong CurrentTcb => U64(0x38);
    /// <summary>Raw PLATFORM_INFO (bit 0 SMT enabled, 1 TSME enabled, 2 ECC, 3 RAPL disabled, 4 ciphertext hiding, 5 alias check complete, 7 TIO).</summary>
    public ulong PlatformInfo => U64(0x40);
    /// <summary>AUTHOR_KEY_EN: the ID key was certified by an author key whose digest is in <see cref="AuthorKeyDigest"/>.</summary>
    public bool AuthorKeyEnabled => (U32(0x48) & 1) != 0;
    /// <summary>MASK_CHIP_KEY: the VCEK is not used for attestation (a VCEK "signature" is then not a signature).</summary>
    public bool MaskChipKey => (U32(0x48) & 2) != 0;
    /// <summary>Which key signed the report.</summary>
    public SevSnpSigningKey SigningKey => (SevSnpSigningKey)((U32(0x48) >> 2) & 7);
    /// <summary>The 64 bytes the guest supplied with its report request.</summary>
    public ReadOnlyMemory<byte> ReportData => Field(0x50, 64);
    /// <summary>Launch measurement (SHA-384).</summary>
    public ReadOnlyMemory<byte> Measurement => Field(0x90, 48);
    /// <summary>Data the host supplied at launch.</summary>
    public ReadOnlyMemory<byte> HostData => Field(0xC0, 32);
    /// <summary>SHA-384 of the ID key that signed the ID block (zero without one).</summary>
    public ReadOnlyMemory<byte> IdKeyDigest => Field(0xE0, 48);
    /// <summary>SHA-384 of the author key that certified the ID key (zero without one).</summary>
    public ReadOnlyMemory<byte> AuthorKeyDigest => Field(0x110, 48);
    /// <summary>Guest identifier, stable for the guest's lifetime.</summary>
    public ReadOnlyMemory<byte> ReportId => Field(0x140, 32);
    /// <summary>The guest's identifier at its migration agent (all 0xFF without one).</summary>
    public ReadOnlyMemory<byte> ReportIdMa => Field(0x160, 32);
    /// <summary>Raw REPORTED_TCB: the TCB the endorsement key was derived for.</summary>
    public ulong ReportedTcb => U64(0x180);
    /// <summary>CPUID family (base + extended), version 3 and later; null on version 2.</summary>
    public byte? CpuidFamily => Version >= 3 ? _raw[0x188] : null;
    /// <summary>CPUID model (base + extended), version 3 and later.</summary>
    public byte? CpuidModel => Version >= 3 ? _raw[0x189] : null;
    /// <summary>CPUID stepping, version 3 and later.</summary>
    public byte? CpuidStepping => Version >= 3 ? _raw[0x18A] : null;
    /// <summary>Chip identifier (Turin uses the first 8 bytes, the rest zero); all zero when the host masks it.</summary>
    public ReadOnlyMemory<byte> ChipId => Field(0x1A0, 64);
    /// <summary>Raw COMMITTED_TCB.</summary>
    public ulong CommittedTcb => U64(0x1E0);
    /// <summary>Running firmware build.</summary>
    public byte CurrentBuild => _raw[0x1E8];
    /// <summary>Running firmware minor version.</summary>
    public byte CurrentMinor => _raw[0x1E9];
    /// <summary>Running firmware major version.</summary>
    public byte CurrentMajor => _raw[0x1EA];
    /// <summary>Committed firmware build.</summary>
    public byte CommittedBuild => _raw[0x1EC];
    /// <summary>Committed firmware minor version.</summary>
    public byte CommittedMinor => _raw[0x1ED];
    /// <summary>Committed firmware major version.</summary>
    public byte CommittedMajor => _raw[0x1EE];
    /// <summary>Raw LAUNCH_TCB: the TCB when the guest was launched.</summary>
    public ulong LaunchTcb => U64(0x1F0);
    /// <summary>LAUNCH_MIT_VECTOR, version 5 and later.</summary>
    public ulong? LaunchMitigationVector => Version >= 5 ? U64(0x1F8) : null;
    /// <summary>CURRENT_MIT_VECTOR, version 5 and later.</summary>
    public ulong? CurrentMitigationVector => Version >= 5 ? U64(0x200) : null;

    /// <summary>The reported TCB in the product's layout.</summary>
    public SevSnpTcb ReportedTcbFor(SevSnpProduct product) => SevSnpTcb.Decode(ReportedTcb, product);

    /// <summary>
    /// The product named by the report's CPUID fields (version 3 and later), or null when the report does not say
    /// (version 2, or the fields are zero). <paramref name="known"/> is false when the fields name no known product.
    /// </summary>
    public SevSnpProduct? CpuidProduct(out bool known)
    {
        known = true;
        if (CpuidFamily is not { } family || CpuidModel is not { } model || (family == 0 && model == 0))
            return null;
        SevSnpProduct? product = (family, model) switch
        {
            (0x19, <= 0x0F) => SevSnpProduct.Milan,
            (0x19, >= 0x10 and <= 0x1F) or (0x19, >= 0xA0 and <= 0xAF) => SevSnpProduct.Genoa,
            (0x1A, <= 0x11) => SevSnpProduct.Turin,
            _ => null,
        };
        known = product is not null;
        return product;
    }

    /// <summary>The signature as IEEE P1363 (r ‖ s, 48 bytes each, big-endian), the form <c>ECDsa.VerifyData</c> takes.</summary>
    public byte[] SignatureP1363()
    {
        var sig = new byte[2 * ScalarSize];
        for (var i = 0; i < ScalarSize; i++)
        {
            sig[ScalarSize - 1 - i] = _raw[SignatureOffset + i];
            sig[2 * ScalarSize - 1 - i] = _raw[SignatureOffset + ComponentSize + i];
        }
        return sig;
    }

    /// <summary>
    /// Parses a report. Throws <see cref="EvidenceException"/> with <see cref="KeyUseRefusal.EvidenceInvalid"/> when
    /// the length, version or signature algorithm is wrong, a reserved bit is set, or the signature field is not
    /// the P-384 form (bytes beyond the 48-byte scalars and beyond S must be zero).
    /// </summary>
    public static SevSnpReport Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length != Size)
            throw Invalid($"an SEV-SNP attestation report is {Size} bytes, this one is {data.Length}");
        var version = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (version is < MinVersion or > MaxVersion)
            throw Invalid($"attestation report version {version} is not supported (only {MinVersion} to {MaxVersion})");
        var algo = BinaryPrimitives.ReadUInt32LittleEndian(data[0x34..]);
        if (algo != EcdsaP384Sha384)
            throw Invalid($"attestation report signature algorithm {algo} is not ECDSA P-384 with SHA-384 (1)");

        var policy = BinaryPrimitives.ReadUInt64LittleEndian(data[0x08..]);
        if ((policy & (1UL << SevSnpGuestPolicy.ReservedOneBit)) == 0)
            throw Invalid($"guest policy 0x{policy:x16} has reserved bit {SevSnpGuestPolicy.ReservedOneBit} clear; the firmware sets it");
        if (policy >> (SevSnpGuestPolicy.HighestKnownBit + 1) != 0)
            throw Invalid($"guest policy 0x{policy:x16} sets bits above {SevSnpGuestPolicy.HighestKnownBit}, which this verifier does not know");

        var signer = BinaryPrimitives.ReadUInt32LittleEndian(data[0x48..]);
        if (signer >> 5 != 0)
            throw Invalid($"signer information 0x{signer:x8} sets reserved bits");
        var key = (signer >> 2) & 7;
        if (key is > 1 and < 7)
            throw Invalid($"SIGNING_KEY {key} is reserved");

        for (var part = 0; part < 2; part++)
        {
            var component = data.Slice(SignatureOffset + part * ComponentSize, ComponentSize);
            if (component[ScalarSize..].ContainsAnyExcept((byte)0))
                throw Invalid($"signature {(part == 0 ? "R" : "S")} is longer than a P-384 scalar");
        }
        if (data[(SignatureOffset + 2 * ComponentSize)..].ContainsAnyExcept((byte)0))
            throw Invalid("signature field has non-zero bytes after S");

        return new SevSnpReport(data.ToArray());
    }

    private uint U32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(_raw.AsSpan(offset));
    private ulong U64(int offset) => BinaryPrimitives.ReadUInt64LittleEndian(_raw.AsSpan(offset));
    private ReadOnlyMemory<byte> Field(int offset, int length) => _raw.AsMemory(offset, length);

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);
}
