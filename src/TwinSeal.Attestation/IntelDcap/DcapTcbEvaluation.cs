using TwinSeal.Protocol;

namespace TwinSeal.Attestation.IntelDcap;

/// <summary>TCB status of a platform as Intel's TCB info and QE identity define them (names as in the PCS JSON).</summary>
public enum DcapTcbStatus
{
    /// <summary>The platform's TCB is current; no known advisory applies.</summary>
    UpToDate,

    /// <summary>TCB current, but advisories require software mitigations in the enclave/TD.</summary>
    SWHardeningNeeded,

    /// <summary>TCB current, but the platform configuration (e.g. BIOS settings) needs changes to be fully mitigated.</summary>
    ConfigurationNeeded,

    /// <summary>Both configuration changes and software mitigations are needed.</summary>
    ConfigurationAndSWHardeningNeeded,

    /// <summary>The platform (microcode, firmware, TDX module or QE) is below the latest TCB level.</summary>
    OutOfDate,

    /// <summary>Out of date and configuration changes are needed.</summary>
    OutOfDateConfigurationNeeded,

    /// <summary>The platform's TCB (or its QE or TDX module) is revoked.</summary>
    Revoked,
}

/// <summary>The outcome of TCB evaluation: combined status and the advisory ids of the selected levels (sorted, distinct).</summary>
internal sealed record DcapTcbResult(DcapTcbStatus Status, IReadOnlyList<string> Advisories);

/// <summary>
/// TCB evaluation as Intel's Quote Verification Library does it (TcbLevelCheck, TdxModuleCheck, EnclaveReportVerifier):
/// platform TCB level from the PCK certificate's SGX TCB (and for TDX the TD report's TEE_TCB_SVN), TDX module status
/// from the module identity, QE status from the QE identity, then the statuses converge.
/// </summary>
internal static class DcapTcbEvaluation
{
    /// <summary>Selects the platform's TCB level: the first level (in the TCB info's order) that the PCK TCB — and for TDX the TEE TCB SVN — reaches.</summary>
    public static TcbLevel SelectPlatformLevel(TcbInfo info, PckCertificateExtensions pck, TdReportBody? td)
    {
        foreach (var level in info.Levels)
        {
            if (pck.PceSvn < level.PceSvn || !AllAtLeast(pck.ComponentSvns, level.SgxComponents, 0))
                continue;
            if (td is null)
                return level;
            // Per QVL: once a TDX module version is reported (TEE_TCB_SVN[1] > 0), bytes 0–1 are judged by the
            // module identity instead, so the TDX components are compared from index 2.
            var teeTcbSvn = td.TeeTcbSvn;
            var start = teeTcbSvn[1] > 0 ? 2 : 0;
            if (level.TdxComponents is { } tdx && AllAtLeast(teeTcbSvn, tdx, start))
                return level;
        }
        var what = td is null ? "PCK TCB" : "PCK TCB and TEE TCB SVN";
        throw Untrusted($"{what} of the platform is below every TCB level of FMSPC {Convert.ToHexString(info.Fmspc)} (TCB not supported)");
    }

    /// <summary>
    /// Checks the TD's TDX module against the TCB info (MRSIGNERSEAM and masked SEAMATTRIBUTES) and returns the module's
    /// TCB level when a module identity applies (TEE_TCB_SVN[1] &gt; 0), null for module version 0.
    /// </summary>
    public static IsvSvnLevel? CheckTdxModule(TcbInfo info, TdReportBody td)
    {
        var expected = info.TdxModule ?? throw Untrusted("TDX TCB info has no tdxModule");
        var isvSvn = td.TeeTcbSvn[0];
        var version = td.TeeTcbSvn[1];
        TdxModuleIdentity? identity = null;
        if (version > 0)
        {
            var id = $"TDX_{version:X2}";
            identity = info.TdxModuleIdentities.FirstOrDefault(m => string.Equals(m.Id, id, StringComparison.OrdinalIgnoreCase))
                ?? throw Untrusted($"TCB info has no TDX module identity {id} for the TD's TDX module version {version}");
            expected = identity;
        }
        if (!td.MrSignerSeam.SequenceEqual(expected.MrSigner))
            throw Untrusted($"TDX module signer (MRSIGNERSEAM {Convert.ToHexStringLower(td.MrSignerSeam)}) is not the one the TCB info names");
        var attributes = td.SeamAttributes;
        for (var i = 0; i < attributes.Length; i++)
        {
            if ((attributes[i] & expected.AttributesMask[i]) != (expected.Attributes[i] & expected.AttributesMask[i]))
                throw Untrusted($"TDX module SEAMATTRIBUTES {Convert.ToHexStringLower(attributes)} do not match the TCB info");
        }
        if (identity is null)
            return null;
        return identity.Levels.FirstOrDefault(l => isvSvn >= l.IsvSvn)
            ?? throw Untrusted($"TDX module ISVSVN {isvSvn} is below every TCB level of {identity.Id} (TCB not supported)");
    }

    /// <summary>
    /// Checks the QE report against the QE identity (masked MISCSELECT and ATTRIBUTES, MRSIGNER, ISVPRODID) and returns
    /// the QE's TCB level by ISVSVN.
    /// </summary>
    public static IsvSvnLevel CheckQe(QeIdentity identity, SgxReportBody qe)
    {
        for (var i = 0; i < 4; i++)
        {
            if ((qe.MiscSelect[i] & identity.MiscSelectMask[i]) != identity.MiscSelect[i])
                throw Untrusted($"quoting enclave MISCSELECT {Convert.ToHexStringLower(qe.MiscSelect)} does not match the QE identity");
        }
        for (var i = 0; i < 16; i++)
        {
            if ((qe.Attributes[i] & identity.AttributesMask[i]) != identity.Attributes[i])
                throw Untrusted($"quoting enclave ATTRIBUTES {Convert.ToHexStringLower(qe.Attributes)} do not match the QE identity");
        }
        if (!qe.MrSigner.SequenceEqual(identity.MrSigner))
            throw Untrusted($"quoting enclave MRSIGNER {Convert.ToHexStringLower(qe.MrSigner)} is not Intel's QE signer");
        if (qe.IsvProdId != identity.IsvProdId)
            throw Untrusted($"quoting enclave ISVPRODID {qe.IsvProdId} is not {identity.IsvProdId}");
        return identity.Levels.FirstOrDefault(l => qe.IsvSvn >= l.IsvSvn)
            ?? throw Untrusted($"quoting enclave ISVSVN {qe.IsvSvn} is below every TCB level of the QE identity (TCB not supported)");
    }

    /// <summary>Combines the platform level, the TDX module level (if any) and the QE level into one status with their advisories.</summary>
    public static DcapTcbResult Combine(TcbLevel platform, IsvSvnLevel? module, IsvSvnLevel qe)
    {
        var status = ParseStatus(platform.Status, "TCB info", all: true);
        if (module is not null)
            status = Converge(status, ParseStatus(module.Status, "TDX module identity", all: false));
        status = Converge(status, ParseStatus(qe.Status, "QE identity", all: false));
        var advisories = platform.Advisories
            .Concat(module?.Advisories ?? [])
            .Concat(qe.Advisories)
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToArray();
        return new DcapTcbResult(status, advisories);
    }

    /// <summary>QVL's convergence of a TCB level status with a QE or TDX module status (UpToDate, OutOfDate or Revoked).</summary>
    public static DcapTcbStatus Converge(DcapTcbStatus level, DcapTcbStatus other) => other switch
    {
        DcapTcbStatus.Revoked => DcapTcbStatus.Revoked,
        DcapTcbStatus.OutOfDate => level switch
        {
            DcapTcbStatus.UpToDate or DcapTcbStatus.SWHardeningNeeded => DcapTcbStatus.OutOfDate,
            DcapTcbStatus.ConfigurationNeeded or DcapTcbStatus.ConfigurationAndSWHardeningNeeded => DcapTcbStatus.OutOfDateConfigurationNeeded,
            _ => level,
        },
        _ => level,
    };

    private static DcapTcbStatus ParseStatus(string status, string source, bool all)
    {
        foreach (var s in Enum.GetValues<DcapTcbStatus>())
        {
            if (string.Equals(s.ToString(), status, StringComparison.Ordinal)
                && (all || s is DcapTcbStatus.UpToDate or DcapTcbStatus.OutOfDate or DcapTcbStatus.Revoked))
                return s;
        }
        throw Untrusted($"{source} gives the unrecognised TCB status '{status}'");
    }

    private static bool AllAtLeast(ReadOnlySpan<byte> actual, ReadOnlySpan<byte> required, int start)
    {
        for (var i = start; i < required.Length; i++)
        {
            if (actual[i] < required[i])
                return false;
        }
        return true;
    }

    private static EvidenceException Untrusted(string message) => new(KeyUseRefusal.EvidenceUntrusted, message);
}
