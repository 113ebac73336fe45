using System.Diagnostics;
using Spectre.Console;

namespace TwinSeal.Cli.Demo;

/// <summary>How the demo shows its steps.</summary>
public interface IDemoProgress
{
    /// <summary>Runs a named step, showing it while it runs and its time when done.</summary>
    Task<T> RunAsync<T>(string name, string what, Func<Task<T>> run);

    /// <summary>Shows a line of detail under the current step.</summary>
    void Line(string label, string text);
}

/// <summary>Plain lines, for logs, pipes and <c>--json</c> (then on stderr).</summary>
public sealed class PlainProgress(TextWriter output) : IDemoProgress
{
    /// <inheritdoc />
    public async Task<T> RunAsync<T>(string name, string what, Func<Task<T>> run)
    {
        output.WriteLine($"[{DateTime.Now:HH:mm:ss}] {name}: {what}");
        var sw = Stopwatch.StartNew();
        var r = await run();
        output.WriteLine($"[{DateTime.Now:HH:mm:ss}] {name}: done in {sw.Elapsed.TotalMilliseconds:N0} ms");
        return r;
    }

    /// <inheritdoc />
    public void Line(string label, string text) => output.WriteLine(label.Length == 0 ? $"    {text}" : $"[{DateTime.Now:HH:mm:ss}] {label}: {text}");
}

/// <summary>A Spectre.Console progress bar per step (running while the step's processes work), for a terminal.</summary>
public sealed class ConsoleProgress : IDemoProgress
{
    /// <inheritdoc />
    public async Task<T> RunAsync<T>(string name, string what, Func<Task<T>> run)
    {
        var sw = Stopwatch.StartNew();
        var r = await AnsiConsole.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                // The work of a step happens in other processes and reports no fraction done, so the bar runs until it ends.
                var task = ctx.AddTask($"[bold]{Markup.Escape(name)}[/]", maxValue: 1);
                task.IsIndeterminate = true;
                var result = await run();
                task.IsIndeterminate = false;
                task.Value = 1;
                return result;
            });
        AnsiConsole.MarkupLine($"[green]✓[/] [bold]{Markup.Escape(name)}[/] [grey]({sw.Elapsed.TotalMilliseconds:N0} ms)[/] {Markup.Escape(what)}");
        return r;
    }

    /// <inheritdoc />
    public void Line(string label, string text) => AnsiConsole.MarkupLine(label.Length == 0 ? $"    [grey]{Markup.Escape(text)}[/]" : $"[green]✓[/] [bold]{Markup.Escape(label)}[/] {Markup.Escape(text)}");
}
