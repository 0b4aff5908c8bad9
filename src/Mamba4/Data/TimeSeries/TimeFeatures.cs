namespace Mamba4.Data.TimeSeries;

/// <summary>
/// Calendar covariates of a timestamp, each scaled to [−0.5, 0.5] (the literature's "timeF" encoding):
/// minute of hour (series finer than an hour), hour of day (finer than a day), day of week (Monday = 0),
/// day of month, day of year. Which ones depends on the series' step; a series without timestamps has none.
/// </summary>
public static class TimeFeatures
{
    /// <summary>How many features a series with this step gets (0 without timestamps).</summary>
    public static int Count(TimeSpan? step) => step switch
    {
        null => 0,
        { } s when s < TimeSpan.FromHours(1) => 5,
        { } s when s < TimeSpan.FromDays(1) => 4,
        _ => 3,
    };

    public static void Encode(DateTime t, int count, Span<float> dest)
    {
        int i = 0;
        if (count >= 5) dest[i++] = t.Minute / 59f - 0.5f;
        if (count >= 4) dest[i++] = t.Hour / 23f - 0.5f;
        if (count >= 3)
        {
            dest[i++] = ((int)t.DayOfWeek + 6) % 7 / 6f - 0.5f;
            dest[i++] = (t.Day - 1) / 30f - 0.5f;
            dest[i++] = (t.DayOfYear - 1) / 365f - 0.5f;
        }
    }

    /// <summary>Features of every row, row-major [rows, count]; null when count is 0.</summary>
    public static float[]? ForTable(TimeSeriesTable table, int count)
    {
        if (count == 0) return null;
        if (table.Timestamps is not { } ts) throw new ArgumentException($"{table.Source}: time features need a date column");
        var f = new float[ts.Length * count];
        for (int r = 0; r < ts.Length; r++) Encode(ts[r], count, f.AsSpan(r * count, count));
        return f;
    }
}
