using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.AzureMaa;

/// <summary>Options of <see cref="AzureMaaVerifier"/>.</summary>
public sealed record AzureMaaVerifierOptions
{
    /// <summary>
    /// Accept tokens for debuggable SGX enclaves (<c>x-ms-sgx-is-debuggable</c> true), whose memory the host can
    /// read. Off by default; only for development.
    /// </summary>
    public bool AllowDebug { get; init; }

    /// <summary>Tolerated difference between the attestation service's clock and the verifier's when judging <c>nbf</c> and <c>exp</c>.</summary>
    public TimeSpan ClockSkew { get; init; } = TimeSpan.FromMinutes(1);
}

/// <summary>
/// Verifies Microsoft Azure Attestation (MAA) tokens for SGX enclaves (platform <c>azure-maa</c>): the evidence
/// document is the UTF-8 compact JWS, which must be RS256-signed by the JWKS key its <c>kid</c> names, issued by the
/// pinned attestation provider, and within its lifetime at the verifier's clock.
/// </summary>
/// <remarks>
/// <para>Normalised claims: <see cref="NormalisedClaims.Measurement"/> is <c>x-ms-sgx-mrenclave</c>; platform tests are
/// <c>attestation-type</c> (<c>x-ms-attestation-type</c>, which must be <c>sgx</c>), <c>mrsigner</c>,
/// <c>product-id</c> and <c>svn</c> (decimal); <see cref="NormalisedClaims.Debug"/> is <c>x-ms-sgx-is-debuggable</c>;
/// <see cref="NormalisedClaims.IssuedAt"/> is <c>iat</c>.</para>
/// <para>Report data: TwinSeal enclaves send the 64-byte binding SHA-512(nonce ‖ SHA-256(public key)) as the
/// attestation request's runtime data, which MAA returns base64url-encoded as <c>x-ms-sgx-ehd</c> (having checked
/// that the enclave's SGX report data holds its SHA-256). The verifier returns the decoded <c>x-ms-sgx-ehd</c> exactly,
/// whatever its length, and an empty array when the claim is absent; it never truncates or pads it, so a token whose
/// runtime data is not such a binding fails the binding check (<see cref="ReportDataBinding.Matches"/>).</para>
/// </remarks>
public sealed class AzureMaaVerifier : IEvidenceVerifier
{
    /// <summary>The platform tag of Microsoft Azure Attestation tokens.</summary>
    public const string PlatformTag = "azure-maa";

    private const string Rs256 = SecurityAlgorithms.RsaSha256;
    private const int MaxEvidenceBytes = 64 * 1024;
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private static readonly JsonWebTokenHandler Handler = new();
    private static readonly SearchValues<char> Base64UrlAlphabet = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    private static readonly SearchValues<char> HexDigits = SearchValues.Create("0123456789abcdefABCDEF");

    private readonly IReadOnlyDictionary<string, SecurityKey> _keys;
    private readonly string _issuer;
    private readonly TimeProvider _clock;
    private readonly AzureMaaVerifierOptions _options;

    /// <summary>Creates a verifier for tokens of one attestation provider.</summary>
    /// <param name="jwks">The provider's signing keys as a JSON Web Key Set (its <c>/certs</c> document), pinned by configuration.</param>
    /// <param name="issuer">The pinned issuer, e.g. <c>https://sharedeus.eus.attest.azure.net</c>.</param>
    /// <param name="clock">Clock at which token lifetime is judged.</param>
    /// <param name="options">Options; defaults refuse debuggable enclaves.</param>
    /// <exception cref="ArgumentException">The JWKS is not valid JSON or holds no usable RSA signing key.</exception>
    public AzureMaaVerifier(string jwks, string issuer, TimeProvider clock, AzureMaaVerifierOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(jwks);
        ArgumentException.ThrowIfNullOrWhiteSpace(issuer);
        ArgumentNullException.ThrowIfNull(clock);
        JsonWebKeySet set;
        try
        {
            set = new JsonWebKeySet(jwks);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"The MAA signing keys are not a valid JSON Web Key Set: {e.Message}", nameof(jwks), e);
        }
        var keys = new Dictionary<string, SecurityKey>(StringComparer.Ordinal);
        foreach (var key in set.GetSigningKeys())
        {
            if (key.KeyId is { Length: > 0 } kid && key is X509SecurityKey or RsaSecurityKey)
                keys.TryAdd(kid, key);
        }
        if (keys.Count == 0)
            throw new ArgumentException("The MAA JSON Web Key Set holds no RSA signing key with a key id.", nameof(jwks));
        _keys = keys;
        _issuer = issuer;
        _clock = clock;
        _options = options ?? new AzureMaaVerifierOptions();
    }

    /// <inheritdoc />
    public string Platform => PlatformTag;

    /// <inheritdoc />
    public NormalisedClaims Verify(Evidence evidence)
    {
        EvidenceEnvelope.Check(evidence, PlatformTag, "MAA token", MaxEvidenceBytes);

        var compact = ReadCompact(evidence.Document);
        var token = Parse(compact);
        var key = SelectKey(token);
        Validate(compact, token, key);
        return ToClaims(token);
    }

    private static string ReadCompact(byte[] document)
    {
        string compact;
        try
        {
            compact = StrictUtf8.GetString(document);
        }
        catch (DecoderFallbackException)
        {
            throw Invalid("MAA token is not UTF-8 text");
        }
        var parts = compact.Split('.');
        if (parts.Length != 3)
            throw Invalid($"MAA token has {parts.Length} dot-separated parts, a compact JWS has 3");
        for (var i = 0; i < parts.Length; i++)
        {
            if (parts[i].AsSpan().ContainsAnyExcept(Base64UrlAlphabet))
                throw Invalid($"MAA token part {i + 1} holds a character outside base64url");
        }
        if (parts[0].Length == 0 || parts[1].Length == 0)
            throw Invalid("MAA token has an empty header or payload");
        return compact;
    }

    private static JsonWebToken Parse(string compact)
    {
        try
        {
            return new JsonWebToken(compact);
        }
        catch (Exception e) when (e is ArgumentException or SecurityTokenException or JsonException or FormatException)
        {
            throw Invalid($"MAA token is not a well-formed JWT: {Brief(e)}");
        }
    }

    private SecurityKey SelectKey(JsonWebToken token)
    {
        if (!string.Equals(token.Alg, Rs256, StringComparison.Ordinal))
            throw Untrusted($"MAA token is signed with alg '{token.Alg}', only {Rs256} is accepted");
        if (string.IsNullOrEmpty(token.Kid))
            throw Untrusted("MAA token header names no signing key (kid)");
        if (!_keys.TryGetValue(token.Kid, out var key))
            throw Untrusted($"MAA token is signed by key '{token.Kid}', which is not in the pinned signing keys");
        return key;
    }

    private void Validate(string compact, JsonWebToken token, SecurityKey key)
    {
        var parameters = new TokenValidationParameters
        {
            ValidIssuer = _issuer,
            ValidateIssuer = true,
            ValidateAudience = false,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = _options.ClockSkew,
            LifetimeValidator = CheckLifetime,
            ValidAlgorithms = [Rs256],
            IssuerSigningKeys = [key],
            TryAllIssuerSigningKeys = false,
            ValidateIssuerSigningKey = false,
            ValidateTokenReplay = false,
            SaveSigninToken = false,
        };
        TokenValidationResult result;
        try
        {
            result = Handler.ValidateTokenAsync(compact, parameters).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is ArgumentException or SecurityTokenException or JsonException or FormatException)
        {
            throw Invalid($"MAA token cannot be validated: {Brief(e)}");
        }
        if (result.IsValid)
            return;

        var now = _clock.GetUtcNow().UtcDateTime;
        throw result.Exception switch
        {
            SecurityTokenInvalidIssuerException => Untrusted($"MAA token issuer '{token.Issuer}' is not the pinned issuer '{_issuer}'"),
            SecurityTokenExpiredException => Untrusted($"MAA token expired at {token.ValidTo:O} (clock {now:O})"),
            SecurityTokenNotYetValidException => Untrusted($"MAA token is not valid before {token.ValidFrom:O} (clock {now:O})"),
            SecurityTokenNoExpirationException => Invalid("MAA token has no expiry (exp)"),
            SecurityTokenInvalidLifetimeException => Invalid($"MAA token lifetime is invalid (nbf {token.ValidFrom:O}, exp {token.ValidTo:O})"),
            SecurityTokenInvalidAlgorithmException => Untrusted($"MAA token is signed with alg '{token.Alg}', only {Rs256} is accepted"),
            SecurityTokenSignatureKeyNotFoundException => Untrusted($"MAA token is signed by key '{token.Kid}', which is not in the pinned signing keys"),
            SecurityTokenInvalidSignatureException => Untrusted($"MAA token signature does not verify with the pinned key '{token.Kid}'"),
            SecurityTokenMalformedException e => Invalid($"MAA token is malformed: {Brief(e)}"),
            { } e => Untrusted($"MAA token is refused: {Brief(e)}"),
            null => Untrusted("MAA token is refused by validation without a reason"),
        };
    }

    // The handler's default lifetime check reads the machine clock; this one reads the verifier's.
    private bool CheckLifetime(DateTime? notBefore, DateTime? expires, SecurityToken token, TokenValidationParameters parameters)
    {
        var now = _clock.GetUtcNow().UtcDateTime;
        if (expires is null)
            throw new SecurityTokenNoExpirationException("token has no exp");
        if (notBefore is { } nbf && nbf > expires)
            throw new SecurityTokenInvalidLifetimeException("nbf is after exp");
        if (notBefore is { } start && now + parameters.ClockSkew < start)
            throw new SecurityTokenNotYetValidException("token is not valid yet") { NotBefore = start };
        if (now - parameters.ClockSkew >= expires.Value)
            throw new SecurityTokenExpiredException("token has expired") { Expires = expires.Value };
        return true;
    }

    private NormalisedClaims ToClaims(JsonWebToken token)
    {
        JsonDocument payload;
        try
        {
            payload = JsonDocument.Parse(Base64Url.DecodeFromChars(token.EncodedPayload), new JsonDocumentOptions { AllowDuplicateProperties = false, MaxDepth = 16 });
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            throw Invalid($"MAA token payload is not a JSON object: {e.Message}");
        }
        using (payload)
        {
            var root = payload.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Invalid("MAA token payload is not a JSON object");

            var type = RequiredString(root, "x-ms-attestation-type");
            if (!string.Equals(type, "sgx", StringComparison.Ordinal))
                throw Invalid($"MAA token attests '{type}', this verifier maps only 'sgx' tokens");
            var mrenclave = RequiredHex(root, "x-ms-sgx-mrenclave", 32);
            var mrsigner = RequiredHex(root, "x-ms-sgx-mrsigner", 32);
            var productId = RequiredUnsigned(root, "x-ms-sgx-product-id");
            var svn = RequiredUnsigned(root, "x-ms-sgx-svn");
            var debug = RequiredBoolean(root, "x-ms-sgx-is-debuggable");
            var iat = RequiredUnsigned(root, "iat");
            var reportData = OptionalBase64Url(root, "x-ms-sgx-ehd");

            if (debug && !_options.AllowDebug)
                throw Invalid("MAA token is for a debuggable SGX enclave (x-ms-sgx-is-debuggable), whose memory the host can read; debuggable enclaves are refused by configuration");
            DateTimeOffset issuedAt;
            try
            {
                issuedAt = DateTimeOffset.FromUnixTimeSeconds((long)iat);
            }
            catch (ArgumentOutOfRangeException)
            {
                throw Invalid($"MAA token iat {iat} is out of range");
            }

            var tests = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["attestation-type"] = type,
                ["mrsigner"] = mrsigner,
                ["product-id"] = productId.ToString(CultureInfo.InvariantCulture),
                ["svn"] = svn.ToString(CultureInfo.InvariantCulture),
            };
            return new NormalisedClaims(PlatformTag, Simulated: false, mrenclave, tests, reportData, issuedAt, debug);
        }
    }

    private static JsonElement Required(JsonElement root, string name, JsonValueKind kind, string what)
    {
        if (!root.TryGetProperty(name, out var value))
            throw Invalid($"MAA token lacks the claim '{name}'");
        if (value.ValueKind != kind && !(kind == JsonValueKind.True && value.ValueKind == JsonValueKind.False))
            throw Invalid($"MAA token claim '{name}' must be {what}, found {value.ValueKind}");
        return value;
    }

    private static string RequiredString(JsonElement root, string name)
        => Required(root, name, JsonValueKind.String, "a string").GetString()!;

    private static string RequiredHex(JsonElement root, string name, int bytes)
    {
        var text = RequiredString(root, name);
        if (text.Length != bytes * 2 || text.AsSpan().ContainsAnyExcept(HexDigits))
            throw Invalid($"MAA token claim '{name}' must be {bytes} bytes of hex, found '{text}'");
        return text.ToLowerInvariant();
    }

    private static ulong RequiredUnsigned(JsonElement root, string name)
    {
        var value = Required(root, name, JsonValueKind.Number, "a number");
        if (!value.TryGetUInt64(out var n))
            throw Invalid($"MAA token claim '{name}' must be a non-negative integer, found {value.GetRawText()}");
        return n;
    }

    private static bool RequiredBoolean(JsonElement root, string name)
        => Required(root, name, JsonValueKind.True, "a boolean").GetBoolean();

    private static byte[] OptionalBase64Url(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value))
            return [];
        if (value.ValueKind != JsonValueKind.String)
            throw Invalid($"MAA token claim '{name}' must be a base64url string, found {value.ValueKind}");
        try
        {
            return Base64Url.DecodeFromChars(value.GetString()!);
        }
        catch (FormatException)
        {
            throw Invalid($"MAA token claim '{name}' is not base64url");
        }
    }

    // IdentityModel messages quote the token with PII placeholders; keep the exception kind and the IDX sentence.
    private static string Brief(Exception e)
    {
        var message = e.Message;
        var cut = message.IndexOf(" '[PII", StringComparison.Ordinal);
        return $"{e.GetType().Name}: {(cut > 0 ? message[..cut] : message)}";
    }

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);

    private static EvidenceException Untrusted(string message) => new(KeyUseRefusal.EvidenceUntrusted, message);
}
