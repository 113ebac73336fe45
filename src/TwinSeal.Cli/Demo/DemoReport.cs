using Spectre.Console;

namespace TwinSeal.Cli.Demo;

/// <summary>Prints the demo summary for people.</summary>
public static class DemoReport
{
    /// <summary>Prints result, refusals and stage timings.</summary>
    public static void Print(DemoSummary s)
    {
        AnsiConsole.WriteLine();
        if (s.Failure is not null) AnsiConsole.MarkupLine($"[red]The demo failed:[/] {Markup.Escape(s.Failure)}");
        if (!s.Success && s.WorkDirectory is not null) AnsiConsole.MarkupLine($"[bold]Logs, stores and data of this run:[/] {Markup.Escape(s.WorkDirectory)}");
        var verdict = s.Matched == s.Expected ? "[green]equal[/]" : "[red]DIFFERENT[/]";
        AnsiConsole.MarkupLine($"[bold]Matched rows:[/] {s.Matched:N0}   [bold]expected:[/] {s.Expected:N0}   ({verdict})   KMS {Markup.Escape(s.KmsIn)}, {s.Rows:N0} rows per party");
        if (s.JoinedRowsPath is not null) AnsiConsole.MarkupLine($"[bold]Joined rows for party 2:[/] {Markup.Escape(s.JoinedRowsPath)}");
        var attacks = new Table().Title("Attacks").AddColumn("attack").AddColumn("outcome").AddColumn("reason");
        foreach (var r in s.Refusals)
            attacks.AddRow(Markup.Escape(r.Attack), r.Refused ? "[green]refused[/]" : "[red]NOT REFUSED[/]", Markup.Escape($"{r.Code}: {r.Reason}"));
        AnsiConsole.Write(attacks);
        var stages = new Table().Title("Time per stage").AddColumn("stage").AddColumn(new TableColumn("ms").RightAligned());
        foreach (var (k, v) in s.StageMilliseconds) stages.AddRow(Markup.Escape(k), v.ToString("N1", System.Globalization.CultureInfo.InvariantCulture));
        AnsiConsole.Write(stages);
        AnsiConsole.MarkupLine(s.Audit.Valid ? $"[bold]Audit log:[/] hash chain of {s.Audit.Records} records verifies" : $"[red]Audit log:[/] {Markup.Escape(s.Audit.Problem ?? "not verified")}");
        AnsiConsole.MarkupLine(s.Success ? "[green bold]Everything behaved.[/]" : "[red bold]Something did not behave; see above.[/]");
    }
}
