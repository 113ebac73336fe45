using System.Net;
using System.Net.Sockets;
using TwinSeal.Cli.Demo;

namespace TwinSeal.EndToEnd.Tests;

/// <summary>
/// A service takes its settings from its command line only: what lies in the folder it is started from, or in its
/// environment, opens no other port and watches no folder.
/// </summary>
public sealed class ServiceConfigurationTests : IAsyncLifetime
{
    private readonly string _work = Path.Combine(Path.GetTempPath(), "twinseal-config-" + Guid.NewGuid().ToString("N")[..8]);
    private ServiceProcess? _kms;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_kms is not null) await _kms.DisposeAsync();
        try { Directory.Delete(_work, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task A_stray_appsettings_json_and_ASPNETCORE_variables_open_no_plain_http_port_beside_the_KMSs_tls_one()
    {
        var started = Directory.CreateDirectory(Path.Combine(_work, "started-here")).FullName;
        int[] ports = [FreePort(), FreePort(), FreePort()];
        var settings = new { Kestrel = new { Endpoints = new { Plain = new { Url = $"http://127.0.0.1:{ports[0]}" } } }, Logging = new { LogLevel = new { Default = "Trace" } } };
        await File.WriteAllTextAsync(Path.Combine(started, "appsettings.json"), System.Text.Json.JsonSerializer.Serialize(settings), TestContext.Current.CancellationToken);
        var kmsDir = Path.Combine(_work, "kms");
        _kms = await ServiceProcess.StartAsync("kms", CliUnderTest.Launch, ["kms", "serve", "--data-dir", kmsDir, "--port", "0"], kmsDir, Path.Combine(_work, "logs"),
            environment: new Dictionary<string, string>
            {
                ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{ports[1]}",
                ["Kestrel__Endpoints__FromEnvironment__Url"] = $"http://127.0.0.1:{ports[2]}",
            },
            workingDirectory: started);

        Assert.StartsWith("https://127.0.0.1:", _kms.Endpoint.Url, StringComparison.Ordinal);
        foreach (var port in ports)
            await Assert.ThrowsAsync<SocketException>(async () => await ConnectAsync(port));
        var log = await File.ReadAllTextAsync(Path.Combine(_work, "logs", "kms.log"), TestContext.Current.CancellationToken);
        // Nor does the file's log level apply (its Trace would print Kestrel's debug lines).
        Assert.DoesNotContain("dbug:", log, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("appsettings.json")]
    [InlineData("appsettings.Production.json")]
    [InlineData("ASPNETCORE_")]
    [InlineData("DOTNET_")]
    public async Task Hosting_urls_preferred_from_a_file_or_the_environment_do_not_turn_the_KMSs_tls_listener_into_plain_http(string source)
    {
        var started = Directory.CreateDirectory(Path.Combine(_work, "started-here")).FullName;
        var plain = FreePort();
        var environment = new Dictionary<string, string>();
        if (source.EndsWith(".json", StringComparison.Ordinal))
            await File.WriteAllTextAsync(Path.Combine(started, source), $$"""{"urls": "http://127.0.0.1:{{plain}}", "preferHostingUrls": true}""", TestContext.Current.CancellationToken);
        else
        {
            environment[source + "URLS"] = $"http://127.0.0.1:{plain}";
            environment[source + "PREFERHOSTINGURLS"] = "true";
        }
        var kmsDir = Path.Combine(_work, "kms");
        _kms = await ServiceProcess.StartAsync("kms", CliUnderTest.Launch, ["kms", "serve", "--data-dir", kmsDir, "--port", "0"], kmsDir, Path.Combine(_work, "logs"),
            environment: environment, workingDirectory: started);

        // The endpoint it announces answers over TLS with its pinned certificate, and the preferred address is not open.
        using var client = TwoPartyFixture.PinnedClient(_kms.Endpoint);
        var health = await client.GetAsync(_kms.Endpoint.Url + "/healthz", TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
        await Assert.ThrowsAsync<SocketException>(async () => await ConnectAsync(plain));
    }

    [Fact]
    public async Task A_service_watches_no_folder_for_changed_settings()
    {
        var kmsDir = Path.Combine(_work, "kms");
        _kms = await ServiceProcess.StartAsync("kms", CliUnderTest.Launch, ["kms", "serve", "--data-dir", kmsDir, "--port", "0"], kmsDir, Path.Combine(_work, "logs"),
            workingDirectory: _work);

        // An inotify instance is how a folder is watched on Linux; none is open once the service is up.
        var descriptors = Directory.GetFiles($"/proc/{_kms.ProcessId}/fd").Select(fd =>
        {
            try { return new FileInfo(fd).LinkTarget ?? ""; } catch (IOException) { return ""; }
        }).ToList();
        Assert.NotEmpty(descriptors);
        Assert.DoesNotContain("anon_inode:inotify", descriptors);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task ConnectAsync(int port)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port, TestContext.Current.CancellationToken);
    }
}
