using System.Text.Json.Nodes;
using Mamba4.Data.TimeSeries;
using Mamba4.Models;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// Test metrics of forecasters: MSE and MAE on the normalised scale over every window of a split, windowed or
/// streamed; and `mamba4 forecast eval`, which scores a saved run on its validation and test splits.
/// </summary>
public static class ForecastEvaluation
{
    /// <summary>Windows per forward pass when nothing else is asked for.</summary>
    public const int DefaultBatch = 256;

    /// <summary>MSE and MAE on the normalised scale over every window of <paramref name="windows"/> (the last, partial batch included).</summary>
    public static (double Mse, double Mae) Evaluate(Forecaster model, WindowSet windows, int batch = DefaultBatch)
    {
        var m = new ForecastMetrics();
        for (int first = 0; first < windows.Count; first += batch)
        {
            var b = windows.Batch(first, Math.Min(batch, windows.Count - first));
            m.Add(model.Predict(b), b.Targets);
        }
        return (m.Mse, m.Mae);
    }

    /// <summary>
    /// The same windows as <see cref="Evaluate"/>, forecast by a streaming model that has read the whole series from
    /// row 0 through its recurrent state (not just each window's input rows): values [rows, N] and marks [rows, F]
    /// normalised; the forecast issued after row r is compared with rows r+1 … r+H, for every window origin in <paramref name="range"/>.
    /// </summary>
    public static (double Mse, double Mae) EvaluateStreaming(MambaForecaster model, float[] values, float[]? marks, RowRange range)
    {
        var c = model.Config;
        int n = c.Variables, f = c.TimeFeatures, l = c.InputLength, h = c.Horizon;
        var m = new ForecastMetrics();
        using var stream = model.Stream();
        for (int r = 0; r + h < range.End; r++)
        {
            stream.Observe(values.AsSpan(r * n, n), marks is null ? default : marks.AsSpan(r * f, f));
            if (r < range.Start + l - 1) continue;
            m.Add(stream.Forecast(), values.AsSpan((r + 1) * n, h * n));
        }
        return (m.Mse, m.Mae);
    }

    /// <summary>
    /// `mamba4 forecast eval`: the saved model of run <see cref="ForecastEvalSettings.Run"/> on the validation and test
    /// windows of the split, with its stored training statistics; one line per split (and per streamed split) on
    /// <paramref name="output"/>. Returns the metrics as one JSON object.
    /// </summary>
    public static JsonObject Run(ForecastEvalSettings s, TextWriter output)
    {
        s.Validate();
        using var saved = SavedForecaster.Load(Path.Combine(s.Run, RunDirectory.ModelFolder), s.Load with { Device = s.Device });
        if (s.Stream && !saved.CanStream) throw new ArgumentException($"{s.Run}: --stream {saved.StreamRequirement}");
        var table = saved.ReadSeries(s.Data, s.Fill, s.Run);
        saved.CheckColumns(table);
        var spec = s.Split ?? saved.Info["split_spec"]?.GetValue<string>() ?? "auto";
        var c = saved.Config;
        var splits = Splits.Resolve(spec, table.Source, table.Rows, c.InputLength, c.Horizon);
        var z = saved.Normalize(table);
        var marks = saved.Marks(table);
        var result = new JsonObject { ["run"] = s.Run, ["data"] = table.Source, ["model"] = c.Model, ["input_len"] = c.InputLength, ["horizon"] = c.Horizon };
        foreach (var (name, range) in new[] { ("val", splits.Validation), ("test", splits.Test) })
        {
            var windows = new WindowSet(z, c.Variables, marks, c.TimeFeatures, range, c.InputLength, c.Horizon);
            var (mse, mae) = Evaluate(saved.Model, windows, s.EvalBatch);
            output.WriteLine($"{name,-4} rows {range}: {windows.Count} windows, MSE {mse:F4}, MAE {mae:F4}");
            if (name == "test") { result["mse"] = mse; result["mae"] = mae; result["windows"] = windows.Count; }
            else { result["val_mse"] = mse; result["val_mae"] = mae; }
            if (!s.Stream) continue;
            var (smse, smae) = EvaluateStreaming((MambaForecaster)saved.Model, z, marks, range);
            output.WriteLine($"{name,-4} streaming from row 0: MSE {smse:F4}, MAE {smae:F4}");
            result[name == "test" ? "stream_mse" : "val_stream_mse"] = smse;
            result[name == "test" ? "stream_mae" : "val_stream_mae"] = smae;
        }
        return result;
    }
}
