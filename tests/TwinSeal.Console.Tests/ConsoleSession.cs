using System.Text.Json;
using Microsoft.Playwright;
using TwinSeal.Protocol;

namespace TwinSeal.Console.Tests;

/// <summary>One approver at one party's console: a browser context with its own cookies, and the steps a person takes.</summary>
public sealed class ConsoleSession(ConsoleFixture fixture, string party, IBrowserContext context, IPage page) : IAsyncDisposable
{
    public IPage Page { get; } = page;
    public IBrowserContext Context { get; } = context;
    public string Party { get; } = party;

    /// <summary>Signs in with the control token from the party folder, as an approver pastes it.</summary>
    public async Task<IResponse?> SignInAsync(string? token = null)
    {
        await Page.GotoAsync("/console/sign-in");
        await Page.GetByLabel("Control token").FillAsync(token ?? fixture.Token(Party));
        return await Page.RunAndWaitForResponseAsync(() => Page.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync(),
            r => r.Url.EndsWith("/console/sign-in", StringComparison.Ordinal) && r.Request.Method == "POST");
    }

    /// <summary>Creates a key on the keys page; returns its id, read from the page.</summary>
    public async Task<string> CreateKeyAsync(string label)
    {
        await Page.GotoAsync("/console/keys");
        await Page.GetByLabel("Label (for people, at most 200 characters)").FillAsync(label);
        await Page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        // Read only once the new page says so: the page the click left may still show an earlier notice (the sign-in's,
        // when its redirect was cut short by the next navigation), and on a busy machine the creation takes seconds.
        var status = Page.GetByRole(AriaRole.Status);
        await Assertions.Expect(status).ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"\bkey-"), new() { Timeout = 30_000 });
        var notice = await status.TextContentAsync() ?? "";
        var id = notice.Split(' ', StringSplitOptions.RemoveEmptyEntries).Single(w => w.StartsWith("key-", StringComparison.Ordinal)).TrimEnd('.');
        return id;
    }

    /// <summary>Proposes <paramref name="policy"/> on the key's page; returns the proposal id from the page it lands on.</summary>
    public async Task<string> ProposeAsync(string keyId, AuthorityPolicy policy)
    {
        await Page.GotoAsync($"/console/keys/{Uri.EscapeDataString(keyId)}");
        await Page.GetByLabel("Policy document", new() { Exact = false }).FillAsync(JsonSerializer.Serialize(policy, ProtocolJson.Indented));
        await Page.GetByRole(AriaRole.Button, new() { Name = "Propose", Exact = true }).ClickAsync();
        await Page.WaitForURLAsync("**/proposals/**");
        return Uri.UnescapeDataString(new Uri(Page.Url).Segments[^1]);
    }

    /// <summary>Saves a full-page screenshot as docs/console/<paramref name="name"/>.png when screenshots are asked for.</summary>
    public async Task ScreenshotAsync(string name)
    {
        if (ConsoleFixture.ScreenshotDirectory is not { } dir) return;
        Directory.CreateDirectory(dir);
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(dir, name + ".png"), FullPage = true });
    }

    public async ValueTask DisposeAsync() => await Context.DisposeAsync();
}
