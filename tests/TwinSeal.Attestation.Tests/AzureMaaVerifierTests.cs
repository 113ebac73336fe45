using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using TwinSeal.Attestation.AzureMaa;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Tests;

/// <summary>Microsoft Azure Attestation tokens: the real teaclave sample (SOURCES.md) and tokens signed by a test key.</summary>
public sealed class AzureMaaVerifierTests
{
    private const string Platform = "azure-maa";
    private const string Issuer = "https://sharedeus.eus.attest.azure.net";
    private const string MrEnclave = "f56735aa42563627a832e0c7ba9911382eb68afed75830b3f97266f3e67bdc99";
    private const string MrSigner = "a595c6c5805da0c9c4cb920334d354aeaee2207e479dff679d5f360375f557dd";

    private static readonly DateTimeOffset InsideLifetime = new(2023, 9, 26, 18, 0, 0, TimeSpan.Zero);

    private static string SampleToken() => Encoding.ASCII.GetString(Samples.Read(Platform, "teaclave-sharedeus-sgx-2023-09-26.jwt")).Trim();

    private static string SampleJwks() => Encoding.UTF8.GetString(Samples.Read(Platform, "teaclave-sharedeus-jwks.json"));

    private static AzureMaaVerifier Verifier(DateTimeOffset? now = null, string? jwks = null, string issuer = Issuer, AzureMaaVerifierOptions? options = null)
        => new(jwks ?? SampleJwks(), issuer, new FixedClock(now ?? InsideLifetime), options);

    private static Evidence AsEvidence(string token) => new(Platform, Encoding.UTF8.GetBytes(token));

    private static EvidenceException Refusal(AzureMaaVerifier verifier, string token)
        => Assert.Throws<EvidenceException>(() => verifier.Verify(AsEvidence(token)));

    [Fact]
    public void RealToken_VerifiesInsideItsLifetime_WithMrEnclaveAsTheMeasurement()
    {
        var claims = Verifier().Verify(AsEvidence(SampleToken()));

        Assert.Equal(Platform, claims.Platform);
        Assert.False(claims.Simulated);
        Assert.False(claims.Debug);
        Assert.Equal(MrEnclave, claims.Measurement);
    }

    [Fact]
    public void RealToken_ReportsMrSignerProductIdSvnAndAttestationTypeAsPlatformTests()
    {
        var claims = Verifier().Verify(AsEvidence(SampleToken()));

        Assert.Equal(
            new Dictionary<string, string> { ["attestation-type"] = "sgx", ["mrsigner"] = MrSigner, ["product-id"] = "1", ["svn"] = "1" },
            claims.PlatformTests);
    }

    [Fact]
    public void RealToken_ReportDataIsTheDecodedEnclaveHeldData()
    {
        var claims = Verifier().Verify(AsEvidence(SampleToken()));

        Assert.Equal("This is some runtime data", Encoding.ASCII.GetString(claims.ReportData));
    }

    [Fact]
    public void RealToken_IssuedAtIsIat()
    {
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1_695_737_747), Verifier().Verify(AsEvidence(SampleToken())).IssuedAt);
    }

    [Fact]
    public void RealToken_IsUntrusted_UnderAnotherPinnedIssuer()
    {
        var e = Refusal(Verifier(issuer: "https://sharedweu.weu.attest.azure.net"), SampleToken());

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("is not the pinned issuer", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RealToken_IsUntrusted_AfterItExpires()
    {
        var e = Refusal(Verifier(now: new DateTimeOffset(2023, 9, 26, 23, 0, 0, TimeSpan.Zero)), SampleToken());

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("expired", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RealToken_IsUntrusted_BeforeItIsValid()
    {
        var e = Refusal(Verifier(now: new DateTimeOffset(2023, 9, 26, 13, 0, 0, TimeSpan.Zero)), SampleToken());

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("not valid before", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RealToken_IsUntrusted_WhenThePinnedKeysLackItsKid()
    {
        var jwks = JsonNode.Parse(SampleJwks())!;
        var keys = jwks["keys"]!.AsArray();
        var kid = new JsonWebToken(SampleToken()).Kid;
        keys.Remove(keys.Single(k => (string?)k!["kid"] == kid));

        var e = Refusal(Verifier(jwks: jwks.ToJsonString()), SampleToken());

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("not in the pinned signing keys", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RealToken_WithOneCharacterOfItsPayloadChanged_FailsTheSignatureCheck()
    {
        var e = Refusal(Verifier(), TamperPayload(SampleToken()));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("signature does not verify", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RealPayloadWithAlgNoneAndNoSignature_IsUntrusted()
    {
        var parts = SampleToken().Split('.');
        var kid = new JsonWebToken(SampleToken()).Kid;
        var header = Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["alg"] = "none", ["kid"] = kid, ["typ"] = "JWT" }));

        var e = Refusal(Verifier(), $"{header}.{parts[1]}.");

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("alg 'none'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TokenSignedByAnotherKeyUnderThePinnedKid_IsUntrusted()
    {
        var real = new JsonWebToken(SampleToken());
        using var rsa = RSA.Create(2048);
        var forged = CreateToken(rsa, real.Kid, Encoding.UTF8.GetString(Base64Url.DecodeFromChars(real.EncodedPayload)));

        var e = Refusal(Verifier(), forged);

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
    }

    [Fact]
    public void TruncatedTokens_AreRefused_NeverWithAnUnhandledException()
    {
        var token = SampleToken();
        var verifier = Verifier();

        for (var length = 0; length < token.Length; length += 7)
        {
            var e = Refusal(verifier, token[..length]);
            Assert.Contains(e.Refusal, new[] { KeyUseRefusal.EvidenceInvalid, KeyUseRefusal.EvidenceUntrusted });
        }
    }

    [Fact]
    public void GarbageInput_IsInvalid()
    {
        var verifier = Verifier();
        var random = new Random(26);
        List<byte[]> inputs = [[], [0xff, 0xfe], "a.b"u8.ToArray(), "..."u8.ToArray(), "a.b.c.d.e"u8.ToArray(), "eyJhbGciOiJSUzI1NiJ9.e30.AAAA "u8.ToArray(), "x.y.z"u8.ToArray(), new byte[70_000]];
        inputs.AddRange(Enumerable.Range(0, 100).Select(i => { var b = new byte[1 + random.Next(300)]; random.NextBytes(b); return b; }));

        foreach (var input in inputs)
        {
            var e = Assert.Throws<EvidenceException>(() => verifier.Verify(new Evidence(Platform, input)));
            Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        }
    }

    [Fact]
    public void TokenForADebuggableEnclave_IsRefusedByDefault()
    {
        using var rsa = RSA.Create(2048);
        var token = CreateToken(rsa, "test-key", SgxPayload(debuggable: true));

        var e = Refusal(Verifier(jwks: Jwks(rsa, "test-key")), token);

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        Assert.Contains("debuggable", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TokenForADebuggableEnclave_IsAcceptedWhenDebugIsAllowed_AndMarkedDebug()
    {
        using var rsa = RSA.Create(2048);
        var token = CreateToken(rsa, "test-key", SgxPayload(debuggable: true));

        var claims = Verifier(jwks: Jwks(rsa, "test-key"), options: new AzureMaaVerifierOptions { AllowDebug = true }).Verify(AsEvidence(token));

        Assert.True(claims.Debug);
    }

    [Fact]
    public void TokenWith64BytesOfEnclaveHeldData_HasThemAsReportData()
    {
        using var rsa = RSA.Create(2048);
        var binding = ReportDataBinding.Compute(RandomNumberGenerator.GetBytes(32), RandomNumberGenerator.GetBytes(65));
        var token = CreateToken(rsa, "test-key", SgxPayload(debuggable: false, ehd: binding));

        var claims = Verifier(jwks: Jwks(rsa, "test-key")).Verify(AsEvidence(token));

        Assert.Equal(binding, claims.ReportData);
    }

    [Fact]
    public void TokenForAnotherAttestationType_IsInvalid()
    {
        using var rsa = RSA.Create(2048);
        var payload = JsonNode.Parse(SgxPayload(debuggable: false))!;
        payload["x-ms-attestation-type"] = "sevsnpvm";
        var token = CreateToken(rsa, "test-key", payload.ToJsonString());

        var e = Refusal(Verifier(jwks: Jwks(rsa, "test-key")), token);

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        Assert.Contains("sevsnpvm", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Changes one character of the payload part so that the payload still decodes to JSON (only the signature can catch it).</summary>
    private static string TamperPayload(string token)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        var parts = token.Split('.');
        var payload = parts[1].ToCharArray();
        var at = payload.Length / 2;
        foreach (var c in alphabet.Where(c => c != payload[at]))
        {
            var candidate = (char[])payload.Clone();
            candidate[at] = c;
            try
            {
                using var json = JsonDocument.Parse(Base64Url.DecodeFromChars(candidate));
                return $"{parts[0]}.{new string(candidate)}.{parts[2]}";
            }
            catch (JsonException)
            {
            }
        }
        throw new InvalidOperationException("no one-character change keeps the payload JSON");
    }

    private static string SgxPayload(bool debuggable, byte[]? ehd = null)
    {
        var iat = InsideLifetime.AddMinutes(-5).ToUnixTimeSeconds();
        var payload = new JsonObject
        {
            ["iss"] = Issuer,
            ["iat"] = iat,
            ["nbf"] = iat,
            ["exp"] = iat + 8 * 3600,
            ["x-ms-attestation-type"] = "sgx",
            ["x-ms-sgx-mrenclave"] = MrEnclave,
            ["x-ms-sgx-mrsigner"] = MrSigner,
            ["x-ms-sgx-product-id"] = 7,
            ["x-ms-sgx-svn"] = 3,
            ["x-ms-sgx-is-debuggable"] = debuggable,
            ["x-ms-sgx-ehd"] = Base64Url.EncodeToString(ehd ?? "runtime"u8.ToArray()),
        };
        return payload.ToJsonString();
    }

    private static string CreateToken(RSA key, string kid, string payloadJson)
    {
        var credentials = new SigningCredentials(new RsaSecurityKey(key) { KeyId = kid }, SecurityAlgorithms.RsaSha256);
        return new JsonWebTokenHandler().CreateToken(payloadJson, credentials);
    }

    private static string Jwks(RSA key, string kid)
    {
        var p = key.ExportParameters(false);
        var set = new JsonObject
        {
            ["keys"] = new JsonArray(new JsonObject
            {
                ["kty"] = "RSA",
                ["kid"] = kid,
                ["n"] = Base64Url.EncodeToString(p.Modulus),
                ["e"] = Base64Url.EncodeToString(p.Exponent),
            }),
        };
        return set.ToJsonString();
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
