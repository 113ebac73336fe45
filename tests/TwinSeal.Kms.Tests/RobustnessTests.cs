using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using TwinSeal.Kms.Http;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>The shared bed plus a pending proposal, so every route under test names things that exist.</summary>
public sealed class RobustnessKms : IAsyncLifetime
{
    /// <summary>Small, so oversized bodies stay cheap to send.</summary>
    public const long MaxBody = 32 * 1024;

    public KmsTestBed Bed { get; private set; } = null!;
    public ProposalStatus Pending { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Bed = await KmsTestBed.StartAsync(maxRequestBodyBytes: MaxBody);
        Pending = await Bed.Party1.Client.ProposeAsync(Bed.KeyId, new ChangeProposal(1, KmsTestBed.Policy(measurement: KmsTestBed.TamperedMeasurement)));
        Http = PinnedClient(Bed.Server.Endpoint);
    }

    /// <summary>A raw client that trusts exactly the KMS's certificate (SHA-256 pinned), nothing else.</summary>
    public static HttpClient PinnedClient(ServiceEndpoint endpoint)
    {
        var handler = new SocketsHttpHandler
        {
            SslOptions =
            {
                RemoteCertificateValidationCallback = (_, cert, _, _) =>
                    cert is not null && Convert.ToHexStringLower(SHA256.HashData(cert.GetRawCertData())) == endpoint.Fingerprint.ToLowerInvariant(),
            },
        };
        return new HttpClient(handler) { BaseAddress = new Uri(endpoint.Url), Timeout = TimeSpan.FromSeconds(30) };
    }

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        if (Bed is not null) await Bed.DisposeAsync();
    }
}

/// <summary>Malformed input anywhere gets a clear problem (never a stack trace), and the service keeps serving.</summary>
public sealed class RobustnessTests(RobustnessKms kms) : IClassFixture<RobustnessKms>
{
    private const string P = KmsEndpoints.Prefix;
    private KmsTestBed Bed => kms.Bed;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Every KMS endpoint that takes a request body, by name.</summary>
    public static TheoryData<string> BodyEndpoints => new()
    {
        "POST /parties", "POST /keys", "DELETE /keys/{id}", "POST /keys/{id}/proposals",
        "POST /keys/{id}/proposals/{pid}/approvals", "POST /keys/{id}/rotate", "POST /nonces", "POST /key-use",
    };

    /// <summary>Bodies that no endpoint may accept.</summary>
    public static readonly IReadOnlyDictionary<string, byte[]> MalformedBodies = new Dictionary<string, byte[]>
    {
        ["truncated"] = "{\"label\":"u8.ToArray(),
        ["not-json"] = "this is not json"u8.ToArray(),
        ["array"] = "[1,2,3]"u8.ToArray(),
        ["null"] = "null"u8.ToArray(),
        ["unknown-member"] = "{\"surprise\":true}"u8.ToArray(),
        ["wrong-types"] = "{\"partyId\":1,\"publicKey\":2,\"label\":3,\"baseVersion\":\"x\",\"policy\":4,\"proposalHash\":5,\"keyId\":6,\"nonce\":7,\"evidence\":8,\"enclavePublicKey\":9}"u8.ToArray(),
        ["bad-base64url"] = "{\"partyId\":\"p\",\"publicKey\":\"***\",\"keyId\":\"k\",\"nonce\":\"***\",\"evidence\":{\"platform\":\"sim\",\"document\":\"***\"},\"enclavePublicKey\":\"***\"}"u8.ToArray(),
        ["invalid-utf8"] = [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D],
        ["too-deep"] = Encoding.ASCII.GetBytes(new string('[', 200) + new string(']', 200)),
    };

    public static TheoryData<string, string> MalformedCases
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var endpoint in BodyEndpoints) foreach (var body in MalformedBodies.Keys) data.Add(endpoint, body);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(MalformedCases))]
    public async Task MalformedJson_GetsAProblem_AndTheKmsKeepsServing(string endpoint, string body)
    {
        using var response = await SendSignedAsync(endpoint, new ByteArrayContent(MalformedBodies[body]));

        await AssertProblemAsync(response, HttpStatusCode.BadRequest, "malformed-request");
        await AssertHealthyAsync();
        Assert.Equal("active", (await Bed.Party1.Client.GetKeyAsync(Bed.KeyId)).State);
    }

    [Theory]
    [MemberData(nameof(BodyEndpoints))]
    public async Task OversizedBody_GetsBodyTooLarge_AndTheKmsKeepsServing(string endpoint)
    {
        using var response = await SendSignedAsync(endpoint, new ByteArrayContent(OversizedJson()));

        await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, "body-too-large");
        await AssertHealthyAsync();
    }

    [Theory]
    [MemberData(nameof(BodyEndpoints))]
    public async Task OversizedChunkedBody_WithoutContentLength_GetsBodyTooLarge_AndTheKmsKeepsServing(string endpoint)
    {
        var content = new StreamContent(new MemoryStream(OversizedJson()));
        content.Headers.ContentLength = null;
        using var response = await SendSignedAsync(endpoint, content, chunked: true);

        await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, "body-too-large");
        await AssertHealthyAsync();
    }

    public static TheoryData<string, string> BadIdGets
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var bad in new[] { "nope", "key-00000000000000000000", "%01", "..%2F..%2Fetc%2Fpasswd", "'%20OR%201%3D1%20--", "%F0%9F%94%91", new string('x', 2000) })
            {
                data.Add($"/parties/{bad}", "party-not-found");
                data.Add($"/keys/{bad}", "key-not-found");
                data.Add($"/keys/{bad}/authority", "key-not-found");
                data.Add($"/keys/{{key}}/proposals/{bad}", "proposal-not-found");
                data.Add($"/keys/{bad}/proposals/{{pid}}", "key-not-found");
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(BadIdGets))]
    public async Task GetWithABadId_GetsNotFound_AndTheKmsKeepsServing(string route, string code)
    {
        using var response = await SendSignedGetAsync(P + Fill(route));

        await AssertProblemAsync(response, HttpStatusCode.NotFound, code);
        await AssertHealthyAsync();
    }

    [Theory]
    [InlineData("/audit?after=abc")]
    [InlineData("/audit?limit=many")]
    [InlineData("/no-such-endpoint")]
    public async Task GetWithBadParameters_GetsAProblem_AndTheKmsKeepsServing(string route)
    {
        using var response = await SendSignedGetAsync(P + route);

        await AssertProblemAsync(response, null, null);
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task WrongMethodOnAnEndpoint_GetsAProblem()
    {
        using var response = await kms.Http.PutAsync(P + "/keys", new ByteArrayContent("{}"u8.ToArray()), Ct);

        await AssertProblemAsync(response, HttpStatusCode.MethodNotAllowed, null);
    }

    [Fact]
    public async Task KmsKeepsServing_AfterABarrageOfConcurrentMalformedRequests()
    {
        var sends = new List<Task<HttpResponseMessage>>();
        foreach (var endpoint in BodyEndpoints)
        {
            foreach (var body in MalformedBodies.Values) sends.Add(SendSignedAsync(endpoint, new ByteArrayContent(body)));
            // Over HTTP/2, so refusing a body early resets only its stream. (Over HTTP/1.1 the server must close the
            // connection with the body unread, and under load the client can lose the 413 to the TCP reset.)
            sends.Add(SendSignedAsync(endpoint, new ByteArrayContent(OversizedJson()), version: HttpVersion.Version20));
        }

        var responses = await Task.WhenAll(sends);

        try
        {
            foreach (var r in responses) await AssertProblemAsync(r, null, null);
        }
        finally
        {
            foreach (var r in responses) r.Dispose();
        }
        await AssertHealthyAsync();
        (await Bed.RequestKeyAsync(Bed.Party1)).Dispose();
    }

    [Fact]
    public async Task OpenApiDocument_IsServed_AndDescribesTheKmsApi()
    {
        using var response = await kms.Http.GetAsync("/openapi/v1.json", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct));
        Assert.StartsWith("3.", doc.RootElement.GetProperty("openapi").GetString());
        var paths = doc.RootElement.GetProperty("paths");
        foreach (var path in new[] { "/kms/v1/parties", "/kms/v1/keys", "/kms/v1/keys/{keyId}", "/kms/v1/keys/{keyId}/proposals", "/kms/v1/nonces", "/kms/v1/key-use", "/kms/v1/audit/verify" })
            Assert.True(paths.TryGetProperty(path, out _), $"OpenAPI document lacks {path}");
    }

    private string Fill(string route) => route.Replace("{id}", Bed.KeyId, StringComparison.Ordinal)
        .Replace("{key}", Bed.KeyId, StringComparison.Ordinal)
        .Replace("{pid}", kms.Pending.ProposalId, StringComparison.Ordinal);

    /// <summary>Sends <paramref name="content"/> to the endpoint, signed by party1 over exactly those bytes, so the body is what gets judged.</summary>
    private async Task<HttpResponseMessage> SendSignedAsync(string endpoint, HttpContent content, bool chunked = false, Version? version = null)
    {
        var space = endpoint.IndexOf(' ', StringComparison.Ordinal);
        var method = new HttpMethod(endpoint[..space]);
        var path = P + Fill(endpoint[(space + 1)..]);
        var bytes = await content.ReadAsByteArrayAsync(Ct);
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (version is not null)
        {
            request.Version = version;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }
        if (chunked)
        {
            request.Headers.TransferEncodingChunked = true;
            content.Headers.ContentLength = null;
        }
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        RemoteClient.Sign(request, path, bytes, Bed.Party1.Id, Bed.Party1.Key);
        return await kms.Http.SendAsync(request, Ct);
    }

    /// <summary>
    /// A GET signed by party1 over the path in the percent-encoded form ASP.NET Core rebuilds (docs/format.md, "Signing
    /// input"), so a hostile id reaches the route rather than stopping at the signature check.
    /// </summary>
    private async Task<HttpResponseMessage> SendSignedGetAsync(string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        var query = path.IndexOf('?', StringComparison.Ordinal);
        var signed = query < 0 ? Microsoft.AspNetCore.Http.PathString.FromUriComponent(path).ToUriComponent()
            : Microsoft.AspNetCore.Http.PathString.FromUriComponent(path[..query]).ToUriComponent() + path[query..];
        RemoteClient.Sign(request, signed, [], Bed.Party1.Id, Bed.Party1.Key);
        return await kms.Http.SendAsync(request, Ct);
    }

    private static byte[] OversizedJson()
        => Encoding.ASCII.GetBytes("{\"label\":\"" + new string('a', (int)RobustnessKms.MaxBody + 1) + "\"}");

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode? status, string? code)
    {
        var text = await response.Content.ReadAsStringAsync(Ct);
        if (status is { } s) Assert.True(s == response.StatusCode, $"expected {(int)s}, got {(int)response.StatusCode}: {text}");
        Assert.InRange((int)response.StatusCode, 400, 499);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", text, StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(text);
        var actual = doc.RootElement.GetProperty("code").GetString();
        Assert.False(string.IsNullOrEmpty(actual));
        if (code is not null) Assert.Equal(code, actual);
    }

    private async Task AssertHealthyAsync()
    {
        using var health = await kms.Http.GetAsync(P + "/health", Ct);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }
}
