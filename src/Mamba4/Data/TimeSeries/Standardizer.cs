using System.Text.Json.Nodes;

namespace Mamba4.Data.TimeSeries;

/// <summary>
/// Per-column z-score with statistics of the training rows (scikit-learn's StandardScaler, as the
/// literature's loaders use it): z = (x − mean) / std, std the population standard deviation (÷ n);
/// a constant column gets std 1. Stored with the model so forecasts come back in original units.
/// </summary>
public sealed class Standardizer
{
    public Standardizer(double[] mean, double[] std)
    {
        if (mean.Length != std.Length) throw new ArgumentException($"{mean.Length} means but {std.Length} standard deviations");
        for (int i = 0; i < std.Length; i++)
            if (!(std[i] > 0) || !double.IsFinite(std[i]) || !double.IsFinite(mean[i]))
                throw new ArgumentException($"column {i}: mean {mean[i]} / std {std[i]} is not a usable normalisation");
        Mean = mean;
        Std = std;
    }

    public double[] Mean { get; }
    public double[] Std { get; }
    public int Columns => Mean.Length;

    /// <summary>Fits on rows [range.Start, range.End) of the table (two-pass, in double).</summary>
    public static Standardizer Fit(TimeSeriesTable table, RowRange range)
    {
        int c = table.ColumnCount, n = range.Length;
        if (n < 1) throw new ArgumentException($"{table.Source}: cannot fit a normaliser on no rows");
        var mean = new double[c];
        var std = new double[c];
        for (int r = range.Start; r < range.End; r++)
            for (int j = 0; j < c; j++) mean[j] += table[r, j];
        for (int j = 0; j < c; j++) mean[j] /= n;
        for (int r = range.Start; r < range.End; r++)
            for (int j = 0; j < c; j++) { double d = table[r, j] - mean[j]; std[j] += d * d; }
        for (int j = 0; j < c; j++)
        {
            std[j] = Math.Sqrt(std[j] / n);
            if (!(std[j] > 1e-12 * Math.Max(1, Math.Abs(mean[j])))) std[j] = 1;
        }
        return new Standardizer(mean, std);
    }

    public double Normalize(double x, int column) => (x - Mean[column]) / Std[column];
    public double Denormalize(double z, int column) => z * Std[column] + Mean[column];

    /// <summary>The whole table normalised, row-major float32 [rows, columns].</summary>
    public float[] Transform(TimeSeriesTable table)
    {
        if (table.ColumnCount != Columns) throw new ArgumentException($"{table.Source}: {table.ColumnCount} columns, the normaliser has {Columns}");
        var z = new float[table.Values.Length];
        for (long i = 0; i < z.Length; i++) z[i] = (float)Normalize(table.Values[i], (int)(i % Columns));
        return z;
    }

    public JsonObject ToJson() => new() { ["mean"] = new JsonArray(Mean.Select(v => (JsonNode)v).ToArray()), ["std"] = new JsonArray(Std.Select(v => (JsonNode)v).ToArray()) };

    public static Standardizer FromJson(JsonNode? node, string source)
    {
        if (node is not JsonObject o || o["mean"] is not JsonArray m || o["std"] is not JsonArray s)
            throw new InvalidDataException($"{source}: 'normalizer' must hold 'mean' and 'std' arrays");
        try
        {
            return new Standardizer(m.Select(v => v!.GetValue<double>()).ToArray(), s.Select(v => v!.GetValue<double>()).ToArray());
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException or ArgumentException)
        {
            throw new InvalidDataException($"{source}: 'normalizer': {e.Message}", e);
        }
    }
}
