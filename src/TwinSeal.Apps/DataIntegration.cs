using TwinSeal.Apps.Engine;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Apps;

/// <summary>
/// <c>data-integration</c>: a left join (every own row, with the other party's columns where the key matched) or a full
/// outer join (also every unmatched row of the other party, after the own rows, with the own key columns filled from
/// its key and the other own columns empty). Releases the joined rows, limited to the released columns, and no count:
/// how many rows matched is not released, since the released columns may not show it.
/// </summary>
internal static class DataIntegration
{
    public static AppOutput Run(AppInput input)
    {
        var join = JoinSetup.Create(input);
        var released = join.Schema.Project(input.Policy.ReleasedColumns);
        using var db = EngineTables.Open(input, join, released, ordered: true, releasePeer: true);
        var query = new JoinQuery(db, join);
        var skipped = query.Skipped();
        var rows = query.Rows(released, input.Policy.JoinKind == JoinKind.FullOuter ? JoinKind.FullOuter : JoinKind.Left);
        return new AppOutput(rows, null, skipped, PeerRowCount.Released(input));
    }

    /// <summary>The own table read as <see cref="Run"/> reads it (key and released own columns, in order), started early.</summary>
    public static IDisposable Begin(AppStart start) => EngineTables.Begin(start.Own, JoinSetup.OwnColumns(start, releasesRows: true), ordered: true);
}
