namespace Mamba4.Data.TimeSeries;

/// <summary>
/// A multivariate time series as read from a file: one row per time step (in time order), one column per
/// variable, optional timestamps. Values are row-major: <c>Values[row · Columns.Count + column]</c>.
/// </summary>
public sealed class TimeSeriesTable
{
    public TimeSeriesTable(string source, IReadOnlyList<string> columns, double[] values, DateTime[]? timestamps, string? dateColumn = null)
    {
        if (columns.Count == 0) throw new ArgumentException($"{source}: a time series needs at least one column");
        if (values.Length % columns.Count != 0)
            throw new ArgumentException($"{source}: {values.Length} values do not fill rows of {columns.Count} columns");
        int rows = values.Length / columns.Count;
        if (timestamps is not null && timestamps.Length != rows)
            throw new ArgumentException($"{source}: {timestamps.Length} timestamps for {rows} rows");
        Source = source;
        Columns = columns;
        Values = values;
        Timestamps = timestamps;
        DateColumn = dateColumn;
    }

    /// <summary>Where the data came from (a path, or a description of generated data).</summary>
    public string Source { get; }
    public IReadOnlyList<string> Columns { get; }
    public double[] Values { get; }
    /// <summary>One timestamp per row, strictly increasing; null when the file has no date column.</summary>
    public DateTime[]? Timestamps { get; }
    /// <summary>The name of the date column in the file (null: none).</summary>
    public string? DateColumn { get; }
    /// <summary>The file line of each row (1-based, the header is line 1); null when the rows do not come from a file.</summary>
    public int[]? Lines { get; init; }
    public int Rows => Values.Length / Columns.Count;
    public int ColumnCount => Columns.Count;

    public double this[int row, int column] => Values[(long)row * Columns.Count + column];

    /// <summary>Where a row is, for messages: "FILE:LINE" when the table knows its lines, else "SOURCE: row R" (0-based).</summary>
    public string Where(int row) => Lines is { } lines ? $"{Source}:{lines[row]}" : $"{Source}: row {row}";

    /// <summary>The index of a column by name (exact match first, then case-insensitive); −1 when absent.</summary>
    public int IndexOf(string name)
    {
        for (int i = 0; i < Columns.Count; i++) if (Columns[i] == name) return i;
        for (int i = 0; i < Columns.Count; i++) if (string.Equals(Columns[i], name, StringComparison.OrdinalIgnoreCase)) return i;
        return -1;
    }

    /// <summary>The most common spacing between consecutive timestamps (the series' step); null without timestamps or with one row.</summary>
    public TimeSpan? Step
    {
        get
        {
            if (Timestamps is not { Length: > 1 } t) return null;
            var counts = new Dictionary<long, int>();
            for (int i = 1; i < t.Length; i++)
            {
                long d = (t[i] - t[i - 1]).Ticks;
                counts[d] = counts.GetValueOrDefault(d) + 1;
            }
            return TimeSpan.FromTicks(counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).First().Key);
        }
    }

    /// <summary>The first <paramref name="rows"/> rows (a growing series seen up to a point).</summary>
    public TimeSeriesTable Head(int rows)
    {
        if (rows < 0 || rows > Rows) throw new ArgumentOutOfRangeException(nameof(rows), $"{Source}: asked for {rows} of {Rows} rows");
        return new TimeSeriesTable(Source, Columns, Values[..(rows * Columns.Count)], Timestamps?[..rows], DateColumn) { Lines = Lines?[..rows] };
    }
}
