using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.IntelDcap;

/// <summary>
/// The Intel SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): a SEQUENCE of (OID, value) pairs —
/// .1 PPID, .2 TCB (.2.1–.2.16 component SVNs, .2.17 PCESVN, .2.18 CPUSVN), .3 PCE-ID, .4 FMSPC, .5 SGX type, and
/// for Platform CA certificates .6 platform instance id and .7 configuration, which are not needed here.
/// </summary>
internal sealed record PckCertificateExtensions(byte[] Ppid, byte[] ComponentSvns, int PceSvn, byte[] CpuSvn, byte[] PceId, byte[] Fmspc)
{
    public const string SgxExtensionsOid = "1.2.840.113741.1.13.1";
    private const string PpidOid = SgxExtensionsOid + ".1";
    private const string Tcb = SgxExtensionsOid + ".2";
    private const string PceIdOid = SgxExtensionsOid + ".3";
    private const string FmspcOid = SgxExtensionsOid + ".4";
    private const string PceSvnOid = Tcb + ".17";
    private const string CpuSvnOid = Tcb + ".18";

    /// <summary>Reads the SGX extension of a PCK certificate; throws <see cref="EvidenceException"/> (invalid) when it is missing or malformed.</summary>
    public static PckCertificateExtensions Read(X509Certificate2 pck)
    {
        var ext = pck.Extensions[SgxExtensionsOid]
            ?? throw Invalid("PCK certificate has no Intel SGX extension (1.2.840.113741.1.13.1)");
        try
        {
            return Parse(ext.RawData);
        }
        catch (AsnContentException e)
        {
            throw Invalid($"PCK certificate's SGX extension is malformed: {e.Message}");
        }
    }

    private static PckCertificateExtensions Parse(byte[] der)
    {
        var outer = new AsnReader(der, AsnEncodingRules.DER);
        var items = outer.ReadSequence();
        outer.ThrowIfNotEmpty();
        byte[]? ppid = null, pceId = null, fmspc = null, cpuSvn = null, components = null;
        int? pceSvn = null;
        while (items.HasData)
        {
            var item = items.ReadSequence();
            var oid = item.ReadObjectIdentifier();
            switch (oid)
            {
                case PpidOid:
                    ppid = Once(ppid, item.ReadOctetString(), "PPID");
                    break;
                case Tcb:
                    (components, pceSvn, cpuSvn) = ReadTcb(item.ReadSequence(), components is not null);
                    break;
                case PceIdOid:
                    pceId = Once(pceId, item.ReadOctetString(), "PCE-ID");
                    break;
                case FmspcOid:
                    fmspc = Once(fmspc, item.ReadOctetString(), "FMSPC");
                    break;
                default:
                    item.ReadEncodedValue();
                    break;
            }
            item.ThrowIfNotEmpty();
        }
        if (ppid is null || components is null || pceSvn is null || cpuSvn is null || pceId is null || fmspc is null)
            throw Invalid("PCK certificate's SGX extension lacks one of PPID, TCB, PCE-ID and FMSPC");
        if (fmspc.Length != 6)
            throw Invalid($"PCK certificate's FMSPC is {fmspc.Length} bytes, not 6");
        if (pceId.Length != 2)
            throw Invalid($"PCK certificate's PCE-ID is {pceId.Length} bytes, not 2");
        if (cpuSvn.Length != 16)
            throw Invalid($"PCK certificate's CPUSVN is {cpuSvn.Length} bytes, not 16");
        return new PckCertificateExtensions(ppid, components, pceSvn.Value, cpuSvn, pceId, fmspc);
    }

    private static (byte[] Components, int PceSvn, byte[] CpuSvn) ReadTcb(AsnReader tcb, bool duplicate)
    {
        if (duplicate)
            throw Invalid("PCK certificate's SGX extension has two TCB entries");
        var components = new int?[16];
        int? pceSvn = null;
        byte[]? cpuSvn = null;
        while (tcb.HasData)
        {
            var entry = tcb.ReadSequence();
            var oid = entry.ReadObjectIdentifier();
            if (oid == CpuSvnOid)
            {
                cpuSvn = Once(cpuSvn, entry.ReadOctetString(), "CPUSVN");
            }
            else if (oid == PceSvnOid)
            {
                if (pceSvn is not null)
                    throw Invalid("PCK certificate's SGX extension has two PCESVN entries");
                pceSvn = ReadSvn(entry, "PCESVN", ushort.MaxValue);
            }
            else if (oid.StartsWith(Tcb + ".", StringComparison.Ordinal)
                     && int.TryParse(oid.AsSpan(Tcb.Length + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
                     && n is >= 1 and <= 16)
            {
                if (components[n - 1] is not null)
                    throw Invalid($"PCK certificate's SGX extension has two entries for TCB component {n}");
                components[n - 1] = ReadSvn(entry, $"TCB component {n}", byte.MaxValue);
            }
            else
            {
                entry.ReadEncodedValue();
            }
            entry.ThrowIfNotEmpty();
        }
        if (components.Any(c => c is null) || pceSvn is null || cpuSvn is null)
            throw Invalid("PCK certificate's TCB lacks a component SVN, the PCESVN or the CPUSVN");
        return (components.Select(c => (byte)c!.Value).ToArray(), pceSvn.Value, cpuSvn);
    }

    private static int ReadSvn(AsnReader entry, string what, int max)
    {
        if (!entry.TryReadInt32(out var value) || value < 0 || value > max)
            throw Invalid($"PCK certificate's {what} is not an integer between 0 and {max}");
        return value;
    }

    private static byte[] Once(byte[]? existing, byte[] value, string what)
        => existing is null ? value : throw Invalid($"PCK certificate's SGX extension has two {what} entries");

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);
}
