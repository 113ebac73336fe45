namespace TwinSeal.Apps.Engine;

/// <summary>
/// The own table read into a fresh engine on a worker thread (<see cref="IsolatedDatabase.Start"/>) while the other
/// party's dataset is still arriving. A computation takes the database when it was read with the columns and order it
/// needs (<see cref="Take"/>) and reads the other party's table into it; otherwise it is dropped unused.
/// </summary>
internal sealed class OwnTableRead : IDisposable
{
    private readonly Task<IsolatedDatabase> _reading;
    private readonly IReadOnlySet<int> _columns;
    private readonly bool _ordered;
    private bool _taken;

    private OwnTableRead(Task<IsolatedDatabase> reading, IReadOnlySet<int> columns, bool ordered)
    {
        _reading = reading;
        _columns = columns;
        _ordered = ordered;
    }

    /// <summary>Starts reading <paramref name="own"/>'s <paramref name="columns"/>, in file order when <paramref name="ordered"/>.</summary>
    public static OwnTableRead Start(Protocol.Apps.Table own, IReadOnlySet<int> columns, bool ordered)
        => new(Task.Run(() => IsolatedDatabase.Start([new EngineTable(EngineTables.Own, own, columns)], ordered)), columns, ordered);

    /// <summary>Whether a computation took the database.</summary>
    public bool Taken => _taken;

    /// <summary>
    /// The database holding the own table, once read, when it keeps at least <paramref name="columns"/> in the order asked
    /// for; the caller then owns it. Null otherwise. A read that failed throws here, as reading it now would have.
    /// </summary>
    public IsolatedDatabase? Take(IReadOnlySet<int> columns, bool ordered)
    {
        if (_taken || ordered != _ordered || !_columns.IsSupersetOf(columns)) return null;
        _taken = true;
        return _reading.GetAwaiter().GetResult();
    }

    /// <summary>Drops a database no computation took, once its read is over (a connection is not closed under a running query).</summary>
    public void Dispose()
    {
        if (_taken) return;
        _taken = true;
        try
        {
            _reading.GetAwaiter().GetResult().Dispose();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Not taken, so its failure reaches no one: the computation read the table again, or never got that far.
        }
    }
}
