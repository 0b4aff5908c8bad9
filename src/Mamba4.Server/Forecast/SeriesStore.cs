namespace Mamba4.Server.Forecast;

/// <summary>A stored series: its row count, and for a streaming forecaster the recurrent state after its last row (else empty arrays).</summary>
public sealed record SeriesState(string Id, string ModelVersion, long Rows, float[] State, float[] Hidden, string UpdatedAt);

/// <summary>
/// The growing series of the forecasting event API in a <see cref="StateDb"/> (SQLite file or PostgreSQL URL), like
/// the users' states: a log of rows (values in original units, optional timestamp) and, per series, the state they lead to.
/// </summary>
public sealed class SeriesStore(string target) : IDisposable
{
    public StateDb Db { get; } = StateDb.Open(target, "series database", "--series-db", """
        CREATE TABLE IF NOT EXISTS series (
            id TEXT PRIMARY KEY, model_version TEXT NOT NULL, rows INTEGER NOT NULL,
            state BLOB NOT NULL, hidden BLOB NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS series_rows (
            series_id TEXT NOT NULL, seq INTEGER NOT NULL, vals BLOB NOT NULL, at INTEGER,
            PRIMARY KEY (series_id, seq)) WITHOUT ROWID;
        """);

    /// <summary>Runs <paramref name="work"/> in one transaction holding the series' write lock (see <see cref="StateDb.Locked{T}"/>).</summary>
    public T Locked<T>(string id, Func<T> work) => Db.Locked("series/" + id, work);

    public SeriesState? Get(string id) => Db.Query(
        "SELECT model_version, rows, state, hidden, updated_at FROM series WHERE id = @id",
        r => new SeriesState(id, r.GetString(0), r.GetInt64(1), StateDb.Floats((byte[])r[2]), StateDb.Floats((byte[])r[3]), r.GetString(4)),
        ("@id", id)).SingleOrDefault();

    /// <summary>The last <paramref name="count"/> rows (all when null), oldest first: values row-major and timestamps (null when the rows have none).</summary>
    public (double[] Values, DateTime[]? Timestamps) Rows(string id, int columns, int? count = null)
    {
        var rows = Db.Query("SELECT vals, at FROM series_rows WHERE series_id = @id ORDER BY seq DESC" + (count is null ? "" : " LIMIT @n"), r =>
        {
            var b = (byte[])r[0];
            var v = new double[b.Length / sizeof(double)];
            Buffer.BlockCopy(b, 0, v, 0, b.Length);
            return (V: v, T: r.IsDBNull(1) ? (DateTime?)null : new DateTime(r.GetInt64(1)));
        }, count is { } n ? [("@id", id), ("@n", (long)n)] : [("@id", id)]);
        rows.Reverse();
        var values = new double[rows.Count * columns];
        for (int i = 0; i < rows.Count; i++) rows[i].V.AsSpan(0, columns).CopyTo(values.AsSpan(i * columns));
        var stamps = rows.Count > 0 && rows.All(x => x.T is not null) ? rows.Select(x => x.T!.Value).ToArray() : null;
        return (values, stamps);
    }

    /// <summary>Appends rows (row-major values, optional timestamps) and stores the state they lead to, in one transaction (with <paramref name="alsoInTransaction"/>'s writes).</summary>
    public void Append(SeriesState state, double[] values, int columns, DateTime[]? timestamps, Action? alsoInTransaction = null) => Locked(state.Id, () =>
    {
        int added = values.Length / columns;
        long first = state.Rows - added;
        Db.Insert("series_rows", ["series_id", "seq", "vals", "at"], [.. Enumerable.Range(0, added).Select(k =>
        {
            var b = new byte[columns * sizeof(double)];
            Buffer.BlockCopy(values, k * columns * sizeof(double), b, 0, b.Length);
            return new object?[] { state.Id, first + k, b, timestamps?[k].Ticks };
        })]);
        Put(state);
        alsoInTransaction?.Invoke();
        return 0;
    });

    public void Put(SeriesState state) => Db.Run("""
        INSERT INTO series (id, model_version, rows, state, hidden, updated_at) VALUES (@id, @v, @n, @s, @h, @t)
        ON CONFLICT(id) DO UPDATE SET model_version = @v, rows = @n, state = @s, hidden = @h, updated_at = @t
        """, ("@id", state.Id), ("@v", state.ModelVersion), ("@n", state.Rows), ("@s", StateDb.Bytes(state.State)), ("@h", StateDb.Bytes(state.Hidden)), ("@t", state.UpdatedAt));

    /// <summary>Forgets the series' rows and state; whether it had a state.</summary>
    public bool Delete(string id) => Locked(id, () =>
    {
        Db.Run("DELETE FROM series_rows WHERE series_id = @id", ("@id", id));
        return Db.Run("DELETE FROM series WHERE id = @id", ("@id", id)) > 0;
    });

    public void Dispose() => Db.Dispose();
}
