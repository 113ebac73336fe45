using System.Formats.Cbor;

namespace TwinSeal.Attestation.Sim;

/// <summary>
/// The CBOR claims a simulated isolated area signs. Encoded as a canonical CBOR map with text keys.
/// </summary>
public sealed record SimClaims(string AppName, byte[] Measurement, IReadOnlyDictionary<string, string> PlatformTests, byte[] ReportData, DateTimeOffset IssuedAt)
{
    /// <summary>The platform tag of simulated evidence.</summary>
    public const string PlatformTag = "sim";

    /// <summary>Canonical CBOR encoding.</summary>
    public byte[] Encode()
    {
        var w = new CborWriter(CborConformanceMode.Canonical);
        w.WriteStartMap(7);
        // Canonical mode sorts keys itself, so insertion order does not matter.
        w.WriteTextString("app"); w.WriteTextString(AppName);
        w.WriteTextString("iat"); w.WriteInt64(IssuedAt.ToUnixTimeSeconds());
        w.WriteTextString("platform"); w.WriteTextString(PlatformTag);
        w.WriteTextString("simulated"); w.WriteBoolean(true);
        w.WriteTextString("measurement"); w.WriteByteString(Measurement);
        w.WriteTextString("report_data"); w.WriteByteString(ReportData);
        w.WriteTextString("tests");
        w.WriteStartMap(PlatformTests.Count);
        foreach (var (k, v) in PlatformTests)
        {
            w.WriteTextString(k);
            w.WriteTextString(v);
        }
        w.WriteEndMap();
        w.WriteEndMap();
        return w.Encode();
    }

    /// <summary>Strict decoding: canonical CBOR, every field present once with the right type, nothing else.</summary>
    public static SimClaims Decode(ReadOnlyMemory<byte> cbor)
    {
        var r = new CborReader(cbor, CborConformanceMode.Canonical);
        string? app = null, platform = null;
        byte[]? measurement = null, reportData = null;
        long? iat = null;
        bool? simulated = null;
        Dictionary<string, string>? tests = null;
        var n = r.ReadStartMap() ?? throw new CborContentException("indefinite-length claims map");
        for (var i = 0; i < n; i++)
        {
            var key = r.ReadTextString();
            switch (key)
            {
                case "app": app = r.ReadTextString(); break;
                case "iat": iat = r.ReadInt64(); break;
                case "platform": platform = r.ReadTextString(); break;
                case "simulated": simulated = r.ReadBoolean(); break;
                case "measurement": measurement = r.ReadByteString(); break;
                case "report_data": reportData = r.ReadByteString(); break;
                case "tests":
                    var m = r.ReadStartMap() ?? throw new CborContentException("indefinite-length tests map");
                    tests = new Dictionary<string, string>(StringComparer.Ordinal);
                    for (var j = 0; j < m; j++)
                    {
                        var name = r.ReadTextString();
                        tests[name] = r.ReadTextString();
                    }
                    r.ReadEndMap();
                    break;
                default: throw new CborContentException($"unknown claim '{key}'");
            }
        }
        r.ReadEndMap();
        if (r.BytesRemaining != 0) throw new CborContentException("trailing bytes after claims");
        if (platform != PlatformTag || simulated != true) throw new CborContentException("claims are not simulated-platform claims");
        if (app is null || measurement is not { Length: 48 } || reportData is not { Length: 64 } || iat is null || tests is null)
            throw new CborContentException("a claim is missing or has the wrong size");
        if (iat.Value < 0 || iat.Value > DateTimeOffset.MaxValue.ToUnixTimeSeconds()) throw new CborContentException("the issue time is out of range");
        return new SimClaims(app, measurement, tests, reportData, DateTimeOffset.FromUnixTimeSeconds(iat.Value));
    }
}
