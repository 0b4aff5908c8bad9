using Mamba4.Data.TimeSeries;
using Mamba4.Training;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// The built-in series used when no file is given: hourly, from 2024-01-01, three variables that are
/// sums of daily and weekly seasonalities with different phases, a slow trend and AR(1) noise (seeded).
/// </summary>
public static class SyntheticSeries
{
    public const string Name = "synthetic";

    public static TimeSeriesTable Generate(int rows = 4000, long seed = 1)
    {
        string[] names = ["load", "temperature", "price"];
        int n = names.Length;
        var rng = new SplitMixRandom((ulong)seed * 0x9E3779B97F4A7C15UL + 17);
        double Gaussian() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var values = new double[rows * n];
        var stamps = new DateTime[rows];
        var noise = new double[n];
        var start = new DateTime(2024, 1, 1, 0, 0, 0, DateTimeKind.Unspecified);
        for (int t = 0; t < rows; t++)
        {
            stamps[t] = start.AddHours(t);
            double day = 2 * Math.PI * t / 24, week = 2 * Math.PI * t / 168;
            for (int v = 0; v < n; v++)
            {
                noise[v] = 0.8 * noise[v] + 0.25 * Gaussian();
                double level = v switch
                {
                    0 => 10 + 3 * Math.Sin(day) + 1.5 * Math.Sin(2 * day + 0.5) + 2 * Math.Sin(week),
                    1 => 20 + 4 * Math.Sin(day - 1.2) - 1 * Math.Cos(week) + 0.0005 * t,
                    _ => 50 + 5 * Math.Sin(day + 2) * (1 + 0.3 * Math.Sin(week)) + 2 * Math.Cos(3 * day),
                };
                values[t * n + v] = level + noise[v] * (v + 1);
            }
        }
        return new TimeSeriesTable(Name, names, values, stamps, "date");
    }
}
