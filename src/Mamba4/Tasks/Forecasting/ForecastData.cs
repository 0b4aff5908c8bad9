using Mamba4.Data.TimeSeries;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// A series made ready for the forecasting protocol: the splits, the z-score fitted on the training rows,
/// the normalised values, optional calendar features, and every window of each split (stride 1).
/// </summary>
public sealed class ForecastData
{
    private ForecastData(TimeSeriesTable table, DataSplits splits, Standardizer normalizer, float[] normalized, float[]? marks, int markFeatures, int inputLength, int horizon)
    {
        (Table, Splits, Normalizer, Normalized, Marks, MarkFeatures) = (table, splits, normalizer, normalized, marks, markFeatures);
        int n = table.ColumnCount;
        Train = new WindowSet(normalized, n, marks, markFeatures, splits.Train, inputLength, horizon);
        Validation = new WindowSet(normalized, n, marks, markFeatures, splits.Validation, inputLength, horizon);
        Test = new WindowSet(normalized, n, marks, markFeatures, splits.Test, inputLength, horizon);
    }

    public TimeSeriesTable Table { get; }
    public DataSplits Splits { get; }
    public Standardizer Normalizer { get; }
    /// <summary>Every row normalised, [rows, N].</summary>
    public float[] Normalized { get; }
    /// <summary>Calendar features of every row, [rows, F]; null when F = 0.</summary>
    public float[]? Marks { get; }
    public int MarkFeatures { get; }
    public WindowSet Train { get; }
    public WindowSet Validation { get; }
    public WindowSet Test { get; }
    public int Variables => Table.ColumnCount;

    /// <param name="split">see <see cref="Data.TimeSeries.Splits.Resolve"/>.</param>
    /// <param name="timeFeatures">feed calendar features (needs timestamps).</param>
    public static ForecastData Prepare(TimeSeriesTable table, string split, int inputLength, int horizon, bool timeFeatures)
    {
        var splits = Data.TimeSeries.Splits.Resolve(split, table.Source, table.Rows, inputLength, horizon);
        var normalizer = Standardizer.Fit(table, splits.Fit);
        int f = 0;
        if (timeFeatures)
        {
            if (table.Timestamps is null) throw new ArgumentException($"{table.Source}: --time-features needs a date column");
            f = TimeFeatures.Count(table.Step);
        }
        return new ForecastData(table, splits, normalizer, normalizer.Transform(table), TimeFeatures.ForTable(table, f), f, inputLength, horizon);
    }
}
