namespace Mamba4.Tasks.Forecasting;

/// <summary>A forecast in original units: rows = future steps, columns = the model's variables.</summary>
public sealed record Prediction(IReadOnlyList<string> Columns, DateTime[]? Timestamps, long FirstIndex, double[] Values)
{
    public int Steps => Values.Length / Columns.Count;
    public double this[int step, int column] => Values[step * Columns.Count + column];
}
