using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.DependencyInjection;
using TwinSeal.Crypto;
using TwinSeal.Kms.Http;
using TwinSeal.Protocol;

namespace TwinSeal.Kms;

/// <summary>The standalone KMS process: the KMS API over loopback HTTPS, with its OpenAPI document at <c>/openapi/v1.json</c>.</summary>
public sealed class KmsServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly KmsService _kms;

    private KmsServer(WebApplication app, KmsService kms, ServiceEndpoint endpoint)
    {
        _app = app;
        _kms = kms;
        Endpoint = endpoint;
    }

    /// <summary>Where clients reach this KMS.</summary>
    public ServiceEndpoint Endpoint { get; }

    /// <summary>The KMS behind the API (tests use it to inspect state).</summary>
    public KmsService Service => _kms;

    /// <summary>Starts a KMS on 127.0.0.1:<paramref name="port"/> (0 picks a free port).</summary>
    public static async Task<KmsServer> StartAsync(KmsOptions options, int port = 0, TimeProvider? clock = null)
    {
        var kms = new KmsService(options, clock);
        var cert = TlsIdentity.LoadOrCreate(options.DataDirectory, "TwinSeal KMS");
        var builder = HttpsLoopbackHost.CreateBuilder(cert, port, options.MaxRequestBodyBytes);
        builder.Services.AddOpenApi();
        var app = builder.Build();
        app.UseProblemResponses();
        app.MapOpenApi();
        app.MapKms(kms);
        await app.StartAsync().ConfigureAwait(false);
        return new KmsServer(app, kms, HttpsLoopbackHost.Endpoint(app, cert));
    }

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
