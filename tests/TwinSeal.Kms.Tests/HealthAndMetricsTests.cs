using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Npgsql;
using TwinSeal.Kms.Http;
using TwinSeal.Party;

namespace TwinSeal.Kms.Tests;

/// <summary>
/// The unsigned operational surface of the standalone KMS: liveness, readiness against a store that answers or does not,
/// and the Prometheus metrics of key use. Each test has its own KMS, because metrics count everything one KMS saw.
/// </summary>
public sealed class HealthAndMetricsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Healthz_Answers200_WithoutASignature()
    {
        await using var bed = await KmsTestBed.StartAsync();
        using var http = RobustnessKms.PinnedClient(bed.Server.Endpoint);

        using var response = await http.GetAsync(HealthEndpoints.LivenessPath, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("ok", (await JsonAsync(response)).GetProperty("status").GetString());
        Assert.True(response.Headers.CacheControl?.NoStore);
    }

    [Fact]
    public async Task Readyz_Answers200_NamingTheStoreAndTheKekRoot()
    {
        await using var bed = await KmsTestBed.StartAsync();
        using var http = RobustnessKms.PinnedClient(bed.Server.Endpoint);

        using var response = await http.GetAsync(HealthEndpoints.ReadinessPath, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await JsonAsync(response);
        Assert.Equal("ready", body.GetProperty("status").GetString());
        Assert.Equal(bed.Server.Service.RootDescription, body.GetProperty("kekRoot").GetString());
        Assert.Equal("master key file", body.GetProperty("kekRoot").GetString());
        Assert.Equal(bed.Server.Service.Database.Description, body.GetProperty("store").GetString());
        Assert.True(body.GetProperty("simulatedEvidence").GetBoolean());
        Assert.True(response.Headers.CacheControl?.NoStore);
    }

    [Fact]
    public async Task Readyz_Answers503Problem_WhenTheSqliteStoreIsGone_WhileHealthzStaysUp()
    {
        await using var bed = await KmsTestBed.StartAsync();
        using var http = RobustnessKms.PinnedClient(bed.Server.Endpoint);

        TakeSqliteStoreAway(bed);
        using var ready = await http.GetAsync(HealthEndpoints.ReadinessPath, Ct);
        using var live = await http.GetAsync(HealthEndpoints.LivenessPath, Ct);

        var problem = await AssertProblemAsync(ready, HttpStatusCode.ServiceUnavailable, "store-unavailable");
        Assert.Contains(bed.Server.Service.Database.Description, problem.GetProperty("detail").GetString());
        Assert.Equal("master key file", problem.GetProperty("kekRoot").GetString());
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
    }

    [Fact]
    public async Task Readyz_Answers503_WhilePostgresIsUnreachable_AndReadyAgainOnceItIsBack()
    {
        var cs = new NpgsqlConnectionStringBuilder(await TestServices.NewPostgresDatabaseAsync(ct: TestContext.Current.CancellationToken));
        await using var proxy = new TcpFaultProxy(cs.Host!, cs.Port);
        cs.Host = "127.0.0.1";
        cs.Port = proxy.Port;
        await using var bed = await KmsTestBed.StartAsync(postgres: cs.ConnectionString);
        using var http = RobustnessKms.PinnedClient(bed.Server.Endpoint);

        using var before = await http.GetAsync(HealthEndpoints.ReadinessPath, Ct);
        proxy.Cut();
        using var during = await http.GetAsync(HealthEndpoints.ReadinessPath, Ct);
        proxy.Restore();
        using var after = await http.GetAsync(HealthEndpoints.ReadinessPath, Ct);

        Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        Assert.StartsWith("PostgreSQL 127.0.0.1:", (await JsonAsync(before)).GetProperty("store").GetString());
        var problem = await AssertProblemAsync(during, HttpStatusCode.ServiceUnavailable, "store-unavailable");
        Assert.StartsWith("PostgreSQL 127.0.0.1:", problem.GetProperty("store").GetString());
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task Metrics_AfterOneReleaseAndOneRefusal_CountEachWithItsReason_InPrometheusText()
    {
        await using var bed = await KmsTestBed.StartAsync();
        using var http = RobustnessKms.PinnedClient(bed.Server.Endpoint);

        using (await bed.RequestKeyAsync(bed.Party1)) { }
        await KmsTestBed.AssertRefusedAsync("measurement-mismatch",
            () => bed.RequestKeyAsync(bed.Party2, measurement: KmsTestBed.TamperedMeasurement));
        var metrics = await ScrapeAsync(http);

        Assert.Equal(1, metrics.Value("twinseal_kms_key_releases_total"));
        Assert.Equal(1, metrics.Value("twinseal_kms_key_refusals_total", ("reason", "measurement-mismatch")));
        Assert.Null(metrics.Value("twinseal_kms_key_refusals_total", ("reason", "nonce-reused")));
        Assert.Equal(1, metrics.Value("twinseal_kms_key_use_duration_seconds_count", ("outcome", "released")));
        Assert.Equal(1, metrics.Value("twinseal_kms_key_use_duration_seconds_count", ("outcome", "refused")));
        Assert.Contains("# TYPE twinseal_kms_key_releases_total counter", metrics.Text);
        Assert.Contains("# TYPE twinseal_kms_key_use_duration_seconds histogram", metrics.Text);
    }

    [Fact]
    public async Task Metrics_KeyUseDuration_HasMillisecondScaleBuckets()
    {
        await using var bed = await KmsTestBed.StartAsync();
        using var http = RobustnessKms.PinnedClient(bed.Server.Endpoint);

        using (await bed.RequestKeyAsync(bed.Party1)) { }
        var metrics = await ScrapeAsync(http);

        var bounds = metrics.Samples("twinseal_kms_key_use_duration_seconds_bucket")
            .Where(s => s.Labels.GetValueOrDefault("outcome") == "released")
            .Select(s => s.Labels["le"])
            .ToList();
        Assert.Equal([.. KmsMetrics.KeyUseDurationBuckets.Select(b => b.ToString(CultureInfo.InvariantCulture)), "+Inf"], bounds);
        var sum = metrics.Value("twinseal_kms_key_use_duration_seconds_sum", ("outcome", "released"));
        Assert.InRange(sum!.Value, double.Epsilon, 30);
    }

    [Fact]
    public async Task Metrics_OfOneKms_DoNotCountKeyUseAtAnotherKmsInTheSameProcess()
    {
        await using var busy = await KmsTestBed.StartAsync();
        await using var idle = await KmsTestBed.StartAsync();
        using var idleHttp = RobustnessKms.PinnedClient(idle.Server.Endpoint);

        using (await busy.RequestKeyAsync(busy.Party1)) { }
        var metrics = await ScrapeAsync(idleHttp);

        Assert.Null(metrics.Value("twinseal_kms_key_releases_total"));
        Assert.Empty(metrics.Samples("twinseal_kms_key_use_duration_seconds_count"));
    }

    [Fact]
    public async Task StoreUnavailableResponses_AreCountedByRoute_AndKeyUseIsTimedAsStoreUnavailable()
    {
        await using var bed = await KmsTestBed.StartAsync();
        using var http = RobustnessKms.PinnedClient(bed.Server.Endpoint);
        var nonce = await bed.NonceAsync();
        using var enclave = new Crypto.EphemeralKeyPair();
        var request = new Protocol.KeyUseRequest(bed.KeyId, nonce, bed.Attest(nonce, enclave.PublicKey), enclave.PublicKey);

        TakeSqliteStoreAway(bed);
        var keyUse = await Assert.ThrowsAsync<RemoteProblemException>(() => KmsTestBed.SendKeyUseAsync(bed.Party1, request));
        var keyRead = await Assert.ThrowsAsync<RemoteProblemException>(() => bed.Party1.Client.GetKeyAsync(bed.KeyId));
        using var probe = await http.GetAsync(HealthEndpoints.ReadinessPath, Ct);
        var metrics = await ScrapeAsync(http);

        Assert.Equal((503, "store-unavailable"), (keyUse.Status, keyUse.Code));
        Assert.Equal((503, "store-unavailable"), (keyRead.Status, keyRead.Code));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, probe.StatusCode);
        Assert.Equal(1, metrics.Value("twinseal_kms_store_unavailable_total", ("route", KmsEndpoints.Prefix + "/key-use")));
        Assert.Equal(1, metrics.Value("twinseal_kms_store_unavailable_total", ("route", KmsEndpoints.Prefix + "/keys/{keyId}")));
        // The failing readiness probe is not a failed request; counting probes would drown the signal.
        Assert.Equal(2, metrics.Samples("twinseal_kms_store_unavailable_total").Sum(s => s.Value));
        Assert.Equal(1, metrics.Value("twinseal_kms_key_use_duration_seconds_count", ("outcome", "store-unavailable")));
        Assert.Null(metrics.Value("twinseal_kms_key_releases_total"));
    }

    [Fact]
    public async Task ProbesAndMetrics_NeedNoSignature_WhileTheAdminApiStillDoes()
    {
        await using var bed = await KmsTestBed.StartAsync();
        using var http = RobustnessKms.PinnedClient(bed.Server.Endpoint);

        using var live = await http.GetAsync(HealthEndpoints.LivenessPath, Ct);
        using var ready = await http.GetAsync(HealthEndpoints.ReadinessPath, Ct);
        using var metrics = await http.GetAsync("/metrics", Ct);
        using var createKey = await http.PostAsync($"{KmsEndpoints.Prefix}/keys", Json("{\"label\":\"unsigned\"}"), Ct);
        using var rotate = await http.PostAsync($"{KmsEndpoints.Prefix}/keys/{bed.KeyId}/rotate", null, Ct);
        using var nonce = await http.PostAsync($"{KmsEndpoints.Prefix}/nonces", null, Ct);

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK), (live.StatusCode, ready.StatusCode, metrics.StatusCode));
        Assert.Equal("text/plain", metrics.Content.Headers.ContentType?.MediaType);
        foreach (var refused in new[] { createKey, rotate, nonce })
            await AssertProblemAsync(refused, HttpStatusCode.Unauthorized, "unsigned-request");
        Assert.Equal(1, (await bed.Party1.Client.GetKeyAsync(bed.KeyId)).KeyVersion);
    }

    [Fact]
    public async Task OpsListener_ServesReadinessAndMetrics_WhichTheMainPortThenDoesNot_WhileHealthzStaysOpenOnBoth()
    {
        await using var bed = await KmsTestBed.StartAsync(opsListen: new IPEndPoint(IPAddress.Loopback, 0));
        using var main = RobustnessKms.PinnedClient(bed.Server.Endpoint);
        using var ops = RobustnessKms.PinnedClient(bed.Server.OpsEndpoint!);
        using (await bed.RequestKeyAsync(bed.Party1)) { }

        using var mainMetrics = await main.GetAsync(KmsServer.MetricsPath, Ct);
        using var mainReady = await main.GetAsync(HealthEndpoints.ReadinessPath, Ct);
        using var mainLive = await main.GetAsync(HealthEndpoints.LivenessPath, Ct);
        using var opsReady = await ops.GetAsync(HealthEndpoints.ReadinessPath, Ct);
        using var opsLive = await ops.GetAsync(HealthEndpoints.LivenessPath, Ct);
        using var opsApi = await ops.GetAsync($"{KmsEndpoints.Prefix}/keys/{bed.KeyId}", Ct);
        using var opsOpenApi = await ops.GetAsync("/openapi/v1.json", Ct);
        var metrics = await ScrapeAsync(ops);

        Assert.NotEqual(new Uri(bed.Server.Endpoint.Url).Port, new Uri(bed.Server.OpsEndpoint!.Url).Port);
        await AssertProblemAsync(mainMetrics, HttpStatusCode.NotFound, "not-found");
        await AssertProblemAsync(mainReady, HttpStatusCode.NotFound, "not-found");
        await AssertProblemAsync(opsApi, HttpStatusCode.NotFound, "not-found");
        await AssertProblemAsync(opsOpenApi, HttpStatusCode.NotFound, "not-found");
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK), (mainLive.StatusCode, opsLive.StatusCode, opsReady.StatusCode));
        Assert.Equal(1, metrics.Value("twinseal_kms_key_releases_total"));
        // The API itself still answers on the main port.
        Assert.Equal(bed.KeyId, (await bed.Party1.Client.GetKeyAsync(bed.KeyId)).KeyId);
    }

    /// <summary>
    /// Moves the SQLite store's folder away and drops pooled connections, so the next connection the KMS opens fails
    /// the way a lost disk does. The master key was loaded at start, so only the store is affected.
    /// </summary>
    private static void TakeSqliteStoreAway(KmsTestBed bed)
    {
        Directory.Move(bed.DataDirectory, bed.DataDirectory + ".gone");
        SqliteConnection.ClearAllPools();
    }

    private static StringContent Json(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    private static async Task<JsonElement> JsonAsync(HttpResponseMessage response)
        => JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.Clone();

    private static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await JsonAsync(response);
        Assert.Equal(code, problem.GetProperty("code").GetString());
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        return problem;
    }

    private static async Task<PrometheusText> ScrapeAsync(HttpClient http)
    {
        using var response = await http.GetAsync("/metrics", Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return PrometheusText.Parse(await response.Content.ReadAsStringAsync(Ct));
    }

    /// <summary>One sample line of the Prometheus text format: <c>name{label="value",…} value [timestamp]</c>.</summary>
    private sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    /// <summary>A parsed scrape (the sample lines of the Prometheus text format; comments only through <see cref="Text"/>).</summary>
    private sealed class PrometheusText(string text, IReadOnlyList<Sample> samples)
    {
        public string Text { get; } = text;

        public IEnumerable<Sample> Samples(string name) => samples.Where(s => s.Name == name);

        /// <summary>The value of the one sample of <paramref name="name"/> carrying <paramref name="labels"/> (others allowed), or null if none.</summary>
        public double? Value(string name, params (string Key, string Value)[] labels)
            => Samples(name).SingleOrDefault(s => labels.All(l => s.Labels.GetValueOrDefault(l.Key) == l.Value))?.Value;

        public static PrometheusText Parse(string text)
        {
            var samples = new List<Sample>();
            foreach (var raw in text.Split('\n'))
            {
                var line = raw.Trim();
                if (line.Length == 0 || line.StartsWith('#')) continue;
                var i = 0;
                while (i < line.Length && line[i] is not ('{' or ' ')) i++;
                var name = line[..i];
                var labels = new Dictionary<string, string>(StringComparer.Ordinal);
                if (i < line.Length && line[i] == '{')
                {
                    i++;
                    while (line[i] != '}')
                    {
                        var eq = line.IndexOf('=', i);
                        var key = line[i..eq];
                        // Values are quoted and may hold '{', '}' and ',' (route patterns do); escapes are backslash-prefixed.
                        var value = new System.Text.StringBuilder();
                        var j = eq + 2;
                        for (; line[j] != '"'; j++)
                        {
                            if (line[j] == '\\') j++;
                            value.Append(line[j]);
                        }
                        labels[key] = value.ToString();
                        i = j + 1;
                        if (line[i] == ',') i++;
                    }
                    i++;
                }
                var number = line[i..].Trim().Split(' ')[0];
                samples.Add(new Sample(name, labels, number switch
                {
                    "+Inf" => double.PositiveInfinity,
                    "-Inf" => double.NegativeInfinity,
                    _ => double.Parse(number, CultureInfo.InvariantCulture),
                }));
            }
            return new PrometheusText(text, samples);
        }
    }
}
