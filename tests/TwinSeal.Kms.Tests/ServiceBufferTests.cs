using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using TwinSeal.Crypto;
using TwinSeal.Kms.Http;

namespace TwinSeal.Kms.Tests;

/// <summary>The buffers a service's connections read into: whole 64 KiB blocks, reused, with a bounded reserve.</summary>
public sealed class ServiceBufferTests
{
    [Fact]
    public async Task A_connection_of_a_service_receives_into_64_KiB_blocks()
    {
        var dir = Directory.CreateTempSubdirectory("twinseal-buffers-").FullName;
        try
        {
            var certificate = TlsIdentity.LoadOrCreate(dir, "TwinSeal buffer test");
            var builder = HttpsLoopbackHost.CreateBuilder(certificate, 0, 1 << 20);
            await using var app = builder.Build();
            app.MapGet("/block", (HttpContext ctx) => ctx.Features.GetRequiredFeature<IMemoryPoolFeature>().MemoryPool.MaxBufferSize);
            await app.StartAsync(TestContext.Current.CancellationToken);
            var url = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
            using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, c, _, _) => c?.Thumbprint == certificate.Thumbprint };
            using var client = new HttpClient(handler);

            var block = await client.GetFromJsonAsync<int>(url + "/block", TestContext.Current.CancellationToken);

            Assert.Equal(64 * 1024, block);
            await app.StopAsync(TestContext.Current.CancellationToken);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Connections_that_send_nothing_hold_no_receive_block()
    {
        var dir = Directory.CreateTempSubdirectory("twinseal-buffers-").FullName;
        var idle = new List<System.Net.Sockets.TcpClient>();
        try
        {
            await using var app = HttpsLoopbackHost.CreateBuilder(TlsIdentity.LoadOrCreate(dir, "TwinSeal buffer test"), 0, 1 << 20).Build();
            await app.StartAsync(TestContext.Current.CancellationToken);
            var port = new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single()).Port;
            var pools = (LargeBlockMemoryPoolFactory)app.Services.GetRequiredService<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>>();

            // Anyone who reaches the port can open connections and send nothing: 64 KiB held for each would add up.
            for (var i = 0; i < 50; i++)
            {
                var client = new System.Net.Sockets.TcpClient();
                idle.Add(client);
                await client.ConnectAsync(System.Net.IPAddress.Loopback, port, TestContext.Current.CancellationToken);
            }
            await Task.Delay(500, TestContext.Current.CancellationToken);

            Assert.True(pools.Lent < 10, $"{pools.Lent} blocks lent to 50 idle connections");
            foreach (var c in idle) c.Dispose();
            await app.StopAsync(TestContext.Current.CancellationToken);
        }
        finally
        {
            foreach (var c in idle) c.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_rented_block_is_a_whole_block_whatever_the_size_asked_for()
    {
        using var pool = new LargeBlockMemoryPool();
        using var small = pool.Rent(1);
        using var any = pool.Rent();

        Assert.Equal(LargeBlockMemoryPool.BlockSize, small.Memory.Length);
        Assert.Equal(LargeBlockMemoryPool.BlockSize, any.Memory.Length);
    }

    [Fact]
    public void A_block_larger_than_the_pools_blocks_is_refused()
    {
        using var pool = new LargeBlockMemoryPool();
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(LargeBlockMemoryPool.BlockSize + 1));
    }

    [Fact]
    public void A_returned_block_is_lent_again_and_a_second_return_changes_nothing()
    {
        using var pool = new LargeBlockMemoryPool();
        var first = pool.Rent();
        first.Memory.Span[0] = 42;
        var memory = first.Memory;
        first.Dispose();
        first.Dispose();

        using var second = pool.Rent();
        using var third = pool.Rent();

        Assert.True(second.Memory.Span.Overlaps(memory.Span));
        Assert.False(third.Memory.Span.Overlaps(memory.Span));
        Assert.Throws<ObjectDisposedException>(() => first.Memory);
    }

    [Fact]
    public void The_pool_keeps_at_most_its_reserve_of_free_blocks()
    {
        using var pool = new LargeBlockMemoryPool();
        var lent = Enumerable.Range(0, LargeBlockMemoryPool.MaxPooledBlocks + 10).Select(_ => pool.Rent()).ToList();
        var arrays = lent.Select(b => b.Memory).ToList();
        foreach (var b in lent) b.Dispose();

        // Renting the reserve again gets back only blocks returned before; the next is a new one.
        var again = Enumerable.Range(0, LargeBlockMemoryPool.MaxPooledBlocks + 1).Select(_ => pool.Rent()).ToList();
        var reused = again.Count(b => arrays.Exists(a => a.Span.Overlaps(b.Memory.Span)));

        Assert.Equal(LargeBlockMemoryPool.MaxPooledBlocks, reused);
        foreach (var b in again) b.Dispose();
    }
}
