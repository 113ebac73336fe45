using System.Buffers.Binary;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Tests;

/// <summary>A clock that stays where it is put.</summary>
internal sealed class SnpFixedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}

/// <summary>The real go-sev-guest Milan sample (see testdata/attestation/SOURCES.md).</summary>
internal static class SnpSample
{
    public const string Platform = "amd-sev-snp";
    public const string Measurement = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01";

    /// <summary>Inside every certificate's validity (VCEK 2022-09-24 to 2029-09-24).</summary>
    public static readonly DateTimeOffset ValidTime = new(2024, 6, 1, 0, 0, 0, TimeSpan.Zero);

    public static byte[] Report => Samples.Read(Platform, "gosevguest-milan-report.bin");
    public static byte[] Vcek => Samples.Read(Platform, "gosevguest-milan-vcek.der");
    public static byte[] Ask => PemCertificates()[0];
    public static byte[] Ark => PemCertificates()[1];
    public static string AskArkPemPath => Path.Combine(Samples.Dir(Platform), "amd-milan-ask-ark.pem");

    /// <summary>ASK then ARK, as the file holds them.</summary>
    public static byte[][] PemCertificates()
    {
        var text = File.ReadAllText(AskArkPemPath);
        var result = new List<byte[]>();
        var at = text.AsSpan();
        while (PemEncoding.TryFind(at, out var fields))
        {
            result.Add(Convert.FromBase64String(at[fields.Base64Data].ToString()));
            at = at[fields.Location.End.Value..];
        }
        return [.. result];
    }

    public static SevSnpEvidence Envelope() => new(Report, SevSnpProduct.Milan, Vcek: Vcek, Ask: Ask);

    public static SevSnpVerifier Verifier(DateTimeOffset? at = null, SevSnpVerifierOptions? options = null, byte[]? pinnedArk = null)
        => new(new Dictionary<SevSnpProduct, X509Certificate2>
        {
            [SevSnpProduct.Milan] = X509CertificateLoader.LoadCertificate(pinnedArk ?? Ark),
        }, new SnpFixedClock(at ?? ValidTime), options);

    /// <summary>The sample is a debug guest (policy 0xb0000), so accepting it takes <see cref="SevSnpVerifierOptions.AllowDebug"/>.</summary>
    public static SevSnpVerifierOptions AllowDebug => new() { AllowDebug = true };
}

/// <summary>Field values of a synthetic attestation report.</summary>
internal sealed record SnpReportSpec
{
    public uint Version { get; init; } = 2;
    public uint GuestSvn { get; init; } = 1;
    public ulong Policy { get; init; } = 0x30000; // SMT allowed, reserved bit 17
    public uint Vmpl { get; init; }
    public ulong Tcb { get; init; } = SyntheticAmd.MilanTcbRaw;
    public byte[] ChipId { get; init; } = SyntheticAmd.ChipId64;
    public byte[] Measurement { get; init; } = Enumerable.Range(1, 48).Select(i => (byte)i).ToArray();
    public byte[] ReportData { get; init; } = Enumerable.Range(100, 64).Select(i => (byte)i).ToArray();
    public byte[] HostData { get; init; } = new byte[32];
    public SevSnpSigningKey SigningKey { get; init; } = SevSnpSigningKey.Vcek;
    public bool MaskChipKey { get; init; }
    public (byte Family, byte Model, byte Stepping)? Cpuid { get; init; }

    /// <summary>The unsigned 1184-byte report.</summary>
    public byte[] Build()
    {
        var r = new byte[SevSnpReport.Size];
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(0x00), Version);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(0x04), GuestSvn);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x08), Policy);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(0x30), Vmpl);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(0x34), SevSnpReport.EcdsaP384Sha384);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x38), Tcb);
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(0x48), ((uint)SigningKey << 2) | (MaskChipKey ? 2u : 0u));
        ReportData.CopyTo(r, 0x50);
        Measurement.CopyTo(r, 0x90);
        HostData.CopyTo(r, 0xC0);
        r.AsSpan(0x160, 32).Fill(0xFF);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x180), Tcb);
        if (Cpuid is { } cpu)
        {
            r[0x188] = cpu.Family;
            r[0x189] = cpu.Model;
            r[0x18A] = cpu.Stepping;
        }
        ChipId.CopyTo(r, 0x1A0);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x1E0), Tcb);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(0x1F0), Tcb);
        return r;
    }
}

/// <summary>
/// A stand-in AMD key hierarchy with the real structure (RSASSA-PSS SHA-384 certificates, AMD names and VCEK
/// extensions, P-384 endorsement keys), so that policy and TCB decisions can be tested on correctly signed reports.
/// </summary>
internal sealed class SyntheticAmd
{
    // Milan layout: bootloader 3, tee 0, snp 8, microcode 115.
    public const ulong MilanTcbRaw = 0x7308_0000_0000_0003;
    // Turin layout: fmc 1, bootloader 2, tee 3, snp 4, microcode 72.
    public const ulong TurinTcbRaw = 0x4800_0000_0403_0201;
    public static readonly byte[] ChipId64 = Enumerable.Range(0, 64).Select(i => (byte)(0xA0 ^ i)).ToArray();
    public static readonly byte[] TurinChipId = [.. Enumerable.Range(1, 8).Select(i => (byte)(0x10 * i)), .. new byte[56]];

    public static readonly DateTimeOffset NotBefore = new(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);
    public static readonly DateTimeOffset NotAfter = new(2040, 1, 1, 0, 0, 0, TimeSpan.Zero);
    public static readonly DateTimeOffset Now = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly Lazy<SyntheticAmd> MilanChain = new(() => new SyntheticAmd(SevSnpProduct.Milan));
    private static readonly Lazy<SyntheticAmd> TurinChain = new(() => new SyntheticAmd(SevSnpProduct.Turin));

    public static SyntheticAmd Milan => MilanChain.Value;
    public static SyntheticAmd Turin => TurinChain.Value;

    public SevSnpProduct Product { get; }
    public RSA ArkKey { get; } = RSA.Create(2048);
    public RSA AskKey { get; } = RSA.Create(2048);
    public RSA AsvkKey { get; } = RSA.Create(2048);
    public ECDsa VcekKey { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    public ECDsa VlekKey { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    public byte[] Ark { get; }
    public byte[] Ask { get; }
    public byte[] Asvk { get; }
    public byte[] Vcek { get; }
    public byte[] Vlek { get; }

    private SyntheticAmd(SevSnpProduct product)
    {
        Product = product;
        var turin = product == SevSnpProduct.Turin;
        Ark = CreateAuthority($"ARK-{product}", ArkKey, issuerName: null, issuerKey: ArkKey);
        Ask = CreateAuthority($"SEV-{product}", AskKey, $"ARK-{product}", ArkKey);
        Asvk = CreateAuthority($"SEV-VLEK-{product}", AsvkKey, $"ARK-{product}", ArkKey);
        var tcb = SevSnpTcb.Decode(turin ? TurinTcbRaw : MilanTcbRaw, product);
        Vcek = CreateEndorsementKey("SEV-VCEK", VcekKey, $"SEV-{product}", AskKey, tcb, hwId: turin ? TurinChipId[..8] : ChipId64);
        Vlek = CreateEndorsementKey("SEV-VLEK", VlekKey, $"SEV-VLEK-{product}", AsvkKey, tcb, hwId: null);
    }

    public ulong TcbRaw => Product == SevSnpProduct.Turin ? TurinTcbRaw : MilanTcbRaw;

    /// <summary>AMD's subject names, encoded as AMD encodes them (same attribute order and string types).</summary>
    public static X500DistinguishedName AmdName(string cn)
    {
        // The builder encodes the attributes in reverse order of addition.
        var b = new X500DistinguishedNameBuilder();
        b.AddCommonName(cn);
        b.AddOrganizationName("Advanced Micro Devices");
        b.AddStateOrProvinceName("CA");
        b.AddLocalityName("Santa Clara");
        b.AddCountryOrRegion("US");
        b.AddOrganizationalUnitName("Engineering");
        return b.Build();
    }

    public static byte[] CreateAuthority(string cn, RSA key, string? issuerName, RSA issuerKey, RSASignaturePadding? padding = null)
    {
        var request = new CertificateRequest(AmdName(cn), key, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var generator = X509SignatureGenerator.CreateForRSA(issuerKey, padding ?? RSASignaturePadding.Pss);
        using var cert = request.Create(AmdName(issuerName ?? cn), generator, NotBefore, NotAfter, [0x01, 0x00, 0x01]);
        return cert.RawData;
    }

    public static byte[] CreateEndorsementKey(string cn, ECDsa key, string issuerName, RSA issuerKey, SevSnpTcb tcb, byte[]? hwId,
        string? productName = null, DateTimeOffset? notAfter = null, RSASignaturePadding? padding = null)
    {
        var request = new CertificateRequest(AmdName(cn), key, HashAlgorithmName.SHA384);
        const string amd = "1.3.6.1.4.1.3704.1.";
        request.CertificateExtensions.Add(new X509Extension(amd + "1", Integer(0), false));
        var product = productName ?? issuerName.Split('-')[^1] + "-B0";
        var w = new AsnWriter(AsnEncodingRules.DER);
        w.WriteCharacterString(UniversalTagNumber.IA5String, product);
        request.CertificateExtensions.Add(new X509Extension(amd + "2", w.Encode(), false));
        request.CertificateExtensions.Add(new X509Extension(amd + "3.1", Integer(tcb.Bootloader), false));
        request.CertificateExtensions.Add(new X509Extension(amd + "3.2", Integer(tcb.Tee), false));
        request.CertificateExtensions.Add(new X509Extension(amd + "3.3", Integer(tcb.Snp), false));
        request.CertificateExtensions.Add(new X509Extension(amd + "3.8", Integer(tcb.Microcode), false));
        if (tcb.Fmc is { } fmc)
            request.CertificateExtensions.Add(new X509Extension(amd + "3.9", Integer(fmc), false));
        if (hwId is not null)
            request.CertificateExtensions.Add(new X509Extension(amd + "4", hwId, false)); // raw, as AMD's KDS writes it
        var generator = X509SignatureGenerator.CreateForRSA(issuerKey, padding ?? RSASignaturePadding.Pss);
        using var cert = request.Create(AmdName(issuerName), generator, NotBefore, notAfter ?? NotAfter, [0x80]);
        return cert.RawData;
    }

    /// <summary>
    /// Re-issues <paramref name="der"/> with another serial number, which .NET's certificate builder would make
    /// positive: the TBSCertificate is rewritten and signed again (RSASSA-PSS SHA-384) by <paramref name="issuerKey"/>.
    /// </summary>
    public static byte[] WithSerial(byte[] der, System.Numerics.BigInteger serial, RSA issuerKey)
    {
        var outer = new AsnReader(der, AsnEncodingRules.DER).ReadSequence();
        var tbs = outer.ReadSequence();
        var algorithm = outer.ReadEncodedValue();
        var w = new AsnWriter(AsnEncodingRules.DER);
        using (w.PushSequence())
        {
            w.WriteEncodedValue(tbs.ReadEncodedValue().Span); // [0] version
            tbs.ReadIntegerBytes();
            w.WriteInteger(serial);
            while (tbs.HasData)
                w.WriteEncodedValue(tbs.ReadEncodedValue().Span);
        }
        var newTbs = w.Encode();
        var signature = issuerKey.SignData(newTbs, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        var cert = new AsnWriter(AsnEncodingRules.DER);
        using (cert.PushSequence())
        {
            cert.WriteEncodedValue(newTbs);
            cert.WriteEncodedValue(algorithm.Span);
            cert.WriteBitString(signature);
        }
        return cert.Encode();
    }

    /// <summary>A VCEK for this chain with another TCB, chip or product name.</summary>
    public byte[] VcekWith(SevSnpTcb tcb, byte[]? hwId = null, string? productName = null, DateTimeOffset? notAfter = null)
        => CreateEndorsementKey("SEV-VCEK", VcekKey, $"SEV-{Product}", AskKey, tcb,
            hwId ?? (Product == SevSnpProduct.Turin ? TurinChipId[..8] : ChipId64), productName, notAfter);

    public SnpReportSpec Spec() => new()
    {
        Tcb = TcbRaw,
        ChipId = Product == SevSnpProduct.Turin ? TurinChipId : ChipId64,
    };

    /// <summary>Builds and signs the report with the VCEK or VLEK, as its SIGNING_KEY says.</summary>
    public byte[] Signed(SnpReportSpec spec) => Sign(spec.Build(), spec.SigningKey == SevSnpSigningKey.Vlek ? VlekKey : VcekKey);

    public static byte[] Sign(byte[] report, ECDsa key)
    {
        var sig = key.SignData(report.AsSpan(0, SevSnpReport.SignedLength), HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        for (var i = 0; i < 48; i++)
        {
            report[0x2A0 + i] = sig[47 - i];
            report[0x2E8 + i] = sig[95 - i];
        }
        return report;
    }

    public SevSnpEvidence Envelope(SnpReportSpec spec) => spec.SigningKey == SevSnpSigningKey.Vlek
        ? new SevSnpEvidence(Signed(spec), Product, Vlek: Vlek, Asvk: Asvk)
        : new SevSnpEvidence(Signed(spec), Product, Vcek: Vcek, Ask: Ask);

    public SevSnpVerifier Verifier(SevSnpVerifierOptions? options = null, DateTimeOffset? at = null)
        => new(new Dictionary<SevSnpProduct, X509Certificate2> { [Product] = X509CertificateLoader.LoadCertificate(Ark) },
            new SnpFixedClock(at ?? Now), options);

    private static byte[] Integer(int value)
    {
        var w = new AsnWriter(AsnEncodingRules.DER);
        w.WriteInteger(value);
        return w.Encode();
    }
}

internal static class SnpAssert
{
    /// <summary>Asserts that verification fails with <paramref name="refusal"/>, and returns the message.</summary>
    public static string Refused(KeyUseRefusal refusal, SevSnpVerifier verifier, SevSnpEvidence envelope)
        => Refused(refusal, verifier, envelope.ToEvidence());

    public static string Refused(KeyUseRefusal refusal, SevSnpVerifier verifier, Evidence evidence)
    {
        var e = Assert.Throws<EvidenceException>(() => verifier.Verify(evidence));
        Assert.True(e.Refusal == refusal, $"expected {refusal}, got {e.Refusal}: {e.Message}");
        return e.Message;
    }
}
