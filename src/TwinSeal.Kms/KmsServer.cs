using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using TwinSeal.Crypto;
using TwinSeal.Kms.Http;
using TwinSeal.Protocol;

namespace TwinSeal.Kms;

/// <summary>
/// The standalone KMS process: the KMS API over HTTPS (loopback unless <see cref="KmsOptions.ListenAddress"/> says otherwise), with its OpenAPI document at <c>/openapi/v1.json</c>,
/// probes at <c>/healthz</c> and <c>/readyz</c> and Prometheus metrics at <c>/metrics</c> (none of these three is signed).
/// With <see cref="KmsOptions.OpsListen"/>, <c>/readyz</c> and <c>/metrics</c> move to a second listener that serves
/// nothing else but <c>/healthz</c>, so they can be reached from a monitoring network that never reaches the API.
/// </summary>
public sealed class KmsServer : IAsyncDisposable
{
    /// <summary>Path of the Prometheus scrape endpoint.</summary>
    public const string MetricsPath = "/metrics";

    // Marks the connections accepted by the ops listener (Kestrel connection items are visible to every request on them).
    private const string OpsConnection = "twinseal.ops-listener";

    private readonly WebApplication _app;
    private readonly KmsService _kms;

    private KmsServer(WebApplication app, KmsService kms, ServiceEndpoint endpoint, ServiceEndpoint? opsEndpoint)
    {
        _app = app;
        _kms = kms;
        Endpoint = endpoint;
        OpsEndpoint = opsEndpoint;
    }

    /// <summary>Where clients reach this KMS.</summary>
    public ServiceEndpoint Endpoint { get; }

    /// <summary>Where <c>/readyz</c> and <c>/metrics</c> are served when <see cref="KmsOptions.OpsListen"/> is set; null otherwise.</summary>
    public ServiceEndpoint? OpsEndpoint { get; }

    /// <summary>The KMS behind the API (tests use it to inspect state).</summary>
    public KmsService Service => _kms;

    /// <summary>Starts a KMS on <see cref="KmsOptions.ListenAddress"/> (loopback unless set), port <paramref name="port"/> (0 picks a free port).</summary>
    public static async Task<KmsServer> StartAsync(KmsOptions options, int port = 0, TimeProvider? clock = null)
    {
        ProtocolJson.WarmInBackground();
        if (options.OpsListen is { Port: > 0 } sharedPort && sharedPort.Port == port)
            throw new InvalidOperationException($"The ops listener ({sharedPort}) must use another port than the API ({port}).");
        var kms = new KmsService(options, clock);
        var cert = TlsIdentity.LoadOrCreate(options.DataDirectory, "TwinSeal KMS");
        var builder = HttpsLoopbackHost.CreateBuilder(cert, port, options.MaxRequestBodyBytes, address: options.ListenAddress);
        ListenOptions? ops = null;
        if (options.OpsListen is { } opsListen)
        {
            builder.WebHost.ConfigureKestrel(k => k.Listen(opsListen, l =>
            {
                ops = l;
                l.Protocols = HttpProtocols.Http1AndHttp2;
                l.UseHttps(cert);
                l.Use(next => connection =>
                {
                    connection.Items[OpsConnection] = true;
                    return next(connection);
                });
            }));
        }
        builder.Services.AddOpenApi();
        builder.Services.AddSingleton<KmsMetrics>();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("twinseal-kms"))
            .WithMetrics(m => m
                .AddMeter(KmsMetrics.MeterName)
                // Built into ASP.NET Core and .NET: request durations by route and status, connections and TLS handshakes, GC and thread pool.
                .AddMeter("Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Runtime")
                // Every scrape shows the requests before it; the KMS has few series, so rendering each scrape costs little.
                .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));
        // OpenTelemetry selects meters by name across the whole process, and another host in it (a second KMS, a party
        // host with a hosted KMS, a test) has meters of the same names from its own factory: count only this host's.
        builder.Services.ConfigureOpenTelemetryMeterProvider((services, m) =>
        {
            var own = services.GetRequiredService<IMeterFactory>();
            m.AddView(i => i.Meter.Scope is IMeterFactory other && !ReferenceEquals(other, own) ? MetricStreamConfiguration.Drop : null);
        });
        var app = builder.Build();
        CountStoreUnavailable(app, app.Services.GetRequiredService<KmsMetrics>());
        app.UseProblemResponses();
        if (options.OpsListen is not null) app.Use(KeepOpsApart);
        app.MapOpenApi();
        app.MapKms(kms);
        app.MapKmsHealth(kms, app.Logger);
        app.MapPrometheusScrapingEndpoint(MetricsPath);
        await app.StartAsync().ConfigureAwait(false);
        // Kestrel writes the bound endpoint back into the listen options, so a port of 0 reads as the one it picked.
        var opsEndpoint = ops?.IPEndPoint is { } bound
            ? new ServiceEndpoint($"https://{(bound.Address.Equals(IPAddress.Any) ? IPAddress.Loopback : bound.Address)}:{bound.Port}", TlsIdentity.Fingerprint(cert))
            : null;
        var endpoint = HttpsLoopbackHost.Endpoint(app, cert, ops?.IPEndPoint?.Port, options.ListenAddress, options.AdvertiseUrl) with { HeadKey = System.Buffers.Text.Base64Url.EncodeToString(kms.Heads.PublicKey.SubjectPublicKeyInfo) };
        return new KmsServer(app, kms, endpoint, opsEndpoint);
    }

    // With an ops listener, readiness and metrics answer only there and the ops listener answers nothing but them and
    // liveness: each port shows a 404 for the other's paths, as for any path that does not exist.
    private static Task KeepOpsApart(HttpContext ctx, RequestDelegate next)
    {
        var path = ctx.Request.Path;
        if (path == HealthEndpoints.LivenessPath) return next(ctx);
        var onOps = ctx.Features.Get<IConnectionItemsFeature>()?.Items.ContainsKey(OpsConnection) == true;
        var opsPath = path == MetricsPath || path == HealthEndpoints.ReadinessPath;
        if (onOps == opsPath) return next(ctx);
        ctx.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }

    // Outside the problem middleware, so it sees the status every failure finally got. Readiness is left out: an
    // orchestrator polling /readyz while the store is down would otherwise swamp the count of requests that failed.
    private static void CountStoreUnavailable(WebApplication app, KmsMetrics metrics) => app.Use(async (ctx, next) =>
    {
        await next(ctx).ConfigureAwait(false);
        if (ctx.Response.StatusCode == StatusCodes.Status503ServiceUnavailable && ctx.Request.Path != HealthEndpoints.ReadinessPath)
            metrics.StoreUnavailableResponse((ctx.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(unmatched)");
    });

    /// <summary>Runs until the process is asked to stop.</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _kms.Dispose();
    }
}
