using Microsoft.Data.Sqlite;

namespace Mamba4.Server.Forecast;

/// <summary>A stored series: its row count, and for a streaming forecaster the recurrent state after its last row (else empty arrays).</summary>
public sealed record SeriesState(string Id, string ModelVersion, long Rows, float[] State, float[] Hidden, string UpdatedAt);

/// <summary>
/// The growing series of the forecasting event API in SQLite (write-ahead log, synchronous commits), like the
/// users' states: a log of rows (values in original units, optional timestamp) and, per series, the state they lead to.
/// </summary>
public sealed class SeriesStore(string path) : SqliteStore(path, "series database", "--series-db", """
    CREATE TABLE IF NOT EXISTS series (
        id TEXT PRIMARY KEY, model_version TEXT NOT NULL, rows INTEGER NOT NULL,
        state BLOB NOT NULL, hidden BLOB NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS series_rows (
        series_id TEXT NOT NULL, seq INTEGER NOT NULL, vals BLOB NOT NULL, at INTEGER,
        PRIMARY KEY (series_id, seq)) WITHOUT ROWID;
    """)
{
    public SeriesState? Get(string id)
    {
        using var cmd = Db.CreateCommand();
        cmd.CommandText = "SELECT model_version, rows, state, hidden, updated_at FROM series WHERE id = $id";
        cmd.Parameters.AddWithValue("$id", id);
        using var r = cmd.ExecuteReader();
        if (!r.Read()) return null;
        return new SeriesState(id, r.GetString(0), r.GetInt64(1), Floats((byte[])r[2]), Floats((byte[])r[3]), r.GetString(4));
    }

    /// <summary>The last <paramref name="count"/> rows (all when null), oldest first: values row-major and timestamps (null when the rows have none).</summary>
    public (double[] Values, DateTime[]? Timestamps) Rows(string id, int columns, int? count = null)
    {
        using var cmd = Db.CreateCommand();
        cmd.CommandText = "SELECT vals, at FROM series_rows WHERE series_id = $id ORDER BY seq DESC" + (count is null ? "" : " LIMIT $n");
        cmd.Parameters.AddWithValue("$id", id);
        if (count is { } n) cmd.Parameters.AddWithValue("$n", n);
        using var r = cmd.ExecuteReader();
        var rows = new List<(double[] V, DateTime? T)>();
        while (r.Read())
        {
            var b = (byte[])r[0];
            var v = new double[b.Length / sizeof(double)];
            Buffer.BlockCopy(b, 0, v, 0, b.Length);
            rows.Add((v, r.IsDBNull(1) ? null : new DateTime(r.GetInt64(1))));
        }
        rows.Reverse();
        var values = new double[rows.Count * columns];
        for (int i = 0; i < rows.Count; i++) rows[i].V.AsSpan(0, columns).CopyTo(values.AsSpan(i * columns));
        var stamps = rows.Count > 0 && rows.All(x => x.T is not null) ? rows.Select(x => x.T!.Value).ToArray() : null;
        return (values, stamps);
    }

    /// <summary>Appends rows (row-major values, optional timestamps) and stores the state they lead to, in one transaction (with <paramref name="alsoInTransaction"/>'s writes).</summary>
    public void Append(SeriesState state, double[] values, int columns, DateTime[]? timestamps, Action<SqliteTransaction>? alsoInTransaction = null)
    {
        int added = values.Length / columns;
        using var tx = Db.BeginTransaction();
        using (var ins = Db.CreateCommand())
        {
            ins.Transaction = tx;
            ins.CommandText = "INSERT INTO series_rows (series_id, seq, vals, at) VALUES ($id, $s, $v, $t)";
            var pid = ins.Parameters.Add("$id", SqliteType.Text);
            var ps = ins.Parameters.Add("$s", SqliteType.Integer);
            var pv = ins.Parameters.Add("$v", SqliteType.Blob);
            var pt = ins.Parameters.Add("$t", SqliteType.Integer);
            long first = state.Rows - added;
            for (int k = 0; k < added; k++)
            {
                var b = new byte[columns * sizeof(double)];
                Buffer.BlockCopy(values, k * columns * sizeof(double), b, 0, b.Length);
                pid.Value = state.Id; ps.Value = first + k; pv.Value = b;
                pt.Value = timestamps is null ? DBNull.Value : timestamps[k].Ticks;
                ins.ExecuteNonQuery();
            }
        }
        Put(state, tx);
        alsoInTransaction?.Invoke(tx);
        tx.Commit();
    }

    public void Put(SeriesState state, SqliteTransaction? tx = null) => Run(tx, """
        INSERT INTO series (id, model_version, rows, state, hidden, updated_at) VALUES ($id, $v, $n, $s, $h, $t)
        ON CONFLICT(id) DO UPDATE SET model_version = $v, rows = $n, state = $s, hidden = $h, updated_at = $t
        """, ("$id", state.Id), ("$v", state.ModelVersion), ("$n", state.Rows), ("$s", Bytes(state.State)), ("$h", Bytes(state.Hidden)), ("$t", state.UpdatedAt));

    public bool Delete(string id) => Delete("DELETE FROM series_rows WHERE series_id = $id; DELETE FROM series WHERE id = $id;", id);
}
