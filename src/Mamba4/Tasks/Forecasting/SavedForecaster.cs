using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Data.TimeSeries;
using Mamba4.IO;
using Mamba4.Models;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// A trained forecaster as a folder: forecaster.json (the model configuration, the columns it reads, the
/// z-score statistics of its training rows, the series step) and model.safetensors (the weights).
/// Everything a forecast in original units needs travels with the model.
/// </summary>
public sealed class SavedForecaster : IDisposable
{
    public const string ConfigFile = "forecaster.json";
    public const string WeightsFile = "model.safetensors";
    private const string Format = "mamba4-forecaster";

    private SavedForecaster(Forecaster model, IReadOnlyList<string> columns, string? dateColumn, Standardizer normalizer, TimeSpan? step, JsonObject info)
    {
        (Model, Columns, DateColumn, Normalizer, Step, Info) = (model, columns, dateColumn, normalizer, step, info);
    }

    public Forecaster Model { get; }
    public IReadOnlyList<string> Columns { get; }
    public string? DateColumn { get; }
    public Standardizer Normalizer { get; }
    /// <summary>The training series' step (future timestamps are spaced by it when the input has none of its own).</summary>
    public TimeSpan? Step { get; }
    /// <summary>Everything else that was stored (data source, split, test metrics, …).</summary>
    public JsonObject Info { get; }
    public ForecasterConfig Config => Model.Config;

    /// <summary>True when the model can read a series through its recurrent state, O(1) per observation.</summary>
    public bool CanStream => (Model as MambaForecaster)?.CanStream == true;

    /// <summary>What streaming needs, for error messages: "needs a Mamba forecaster trained with … (this one: …)".</summary>
    public string StreamRequirement =>
        $"needs a Mamba forecaster trained with --embedding temporal --revin false (this one: {Config.Model}, embedding {Config.Embedding}, revin {Config.RevIn.ToString().ToLowerInvariant()})";

    public static void Save(string directory, Forecaster model, ForecastData data, JsonObject? info = null)
    {
        Directory.CreateDirectory(directory);
        var o = new JsonObject
        {
            ["format"] = Format,
            ["model"] = model.Config.ToJson(),
            ["columns"] = new JsonArray(data.Table.Columns.Select(c => (JsonNode)c).ToArray()),
            ["date_column"] = data.Table.DateColumn,
            ["step_seconds"] = data.Table.Step?.TotalSeconds,
            ["normalizer"] = data.Normalizer.ToJson(),
            ["info"] = info?.DeepClone() ?? new JsonObject(),
        };
        model.SaveSafetensors(Path.Combine(directory, WeightsFile), new Dictionary<string, string> { ["format"] = "pt", ["mamba4"] = Format });
        AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Loads a model folder; the configuration is checked against the weights and the memory it needs before the model is built (<see cref="ModelFiles.Load{T}"/>).</summary>
    public static SavedForecaster Load(string directory, ModelLoadOptions? options = null)
    {
        var path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found: expected a model folder written by `mamba4 forecast train` (forecaster.json + model.safetensors)", path);
        var r = ConfigReader.Load(path);
        if (r.String("format") != Format) throw r.Error($"not a Mamba4 forecaster (field 'format' is not \"{Format}\")");
        var config = ForecasterConfig.FromConfig(r.Section("model"));
        var columns = r.Strings("columns");
        if (columns.Length != config.Variables) throw r.Error($"{columns.Length} columns for a model of {config.Variables} variables");
        var normalizer = Standardizer.FromJson(r.Node("normalizer"), path);
        if (normalizer.Columns != columns.Length) throw r.Error($"the normaliser has {normalizer.Columns} columns, the model {columns.Length}");
        double? stepSeconds = r.Positive("step_seconds");
        string? dateColumn = r.String("date_column");
        var info = r.Node("info") as JsonObject ?? new JsonObject();
        var model = ModelFiles.Load([Path.Combine(directory, WeightsFile)], Forecaster.Shapes(config), () => Forecaster.Create(config), (options ?? ModelLoadOptions.Default) with { WeightDType = Tensors.DType.F32 }, (options ?? ModelLoadOptions.Default).Device);
        return new SavedForecaster(model, columns, dateColumn, normalizer, stepSeconds is { } s ? TimeSpan.FromSeconds(s) : null, info);
    }

    /// <summary>Reads a CSV with this model's columns (and date column).</summary>
    public TimeSeriesTable ReadCsv(string path, FillMethod fill = FillMethod.None) =>
        TimeSeriesCsv.Read(path, new TimeSeriesCsvOptions { Columns = Columns, DateColumn = DateColumn, Fill = fill });

    /// <summary>
    /// The largest |z| = |x − mean| / std (distance from the training mean in training standard deviations) of a value
    /// the model reads. The model computes in float32 and its recurrent state grows about as the cube of its input
    /// (input × step × B in the selective scan): at 10⁶ it stays many orders below float's 3.4·10³⁸, where 10⁸–10¹⁰
    /// already overflow; no real reading is a million standard deviations from the training data.
    /// </summary>
    public const double MaxAbsNormalized = 1e6;

    /// <summary>Null when the model can read <paramref name="x"/> as a value of column <paramref name="column"/>; else what is wrong with it.</summary>
    public string? ValueProblem(double x, int column)
    {
        if (!double.IsFinite(x)) return $"{x} is not a finite number";
        double z = Math.Abs(Normalizer.Normalize(x, column));
        if (z <= MaxAbsNormalized) return null;
        var c = CultureInfo.InvariantCulture;
        return string.Create(c, $"{x:G6} is {z:G3} standard deviations from the training mean {Normalizer.Mean[column]:G6} (std {Normalizer.Std[column]:G6}); the model reads values within {MaxAbsNormalized:0e0} of it (|x − mean| / std)");
    }

    /// <summary>The series normalised for the model, [rows, N] float32; InvalidDataException naming the first value it cannot read (FILE:LINE when the rows come from a file).</summary>
    public float[] Normalize(TimeSeriesTable series)
    {
        CheckColumns(series);
        int n = Columns.Count;
        for (int i = 0; i < series.Values.Length; i++)
            if (ValueProblem(series.Values[i], i % n) is { } problem)
                throw new InvalidDataException($"{series.Where(i / n)}: column '{Columns[i % n]}': {problem}");
        return Normalizer.Transform(series);
    }

    /// <summary>
    /// The series at <paramref name="path"/> or, when it is null, the one the model was trained on (the built-in
    /// synthetic series or its CSV, as stored in <see cref="Info"/>); <paramref name="run"/> names the run in the
    /// error when it names no data.
    /// </summary>
    public TimeSeriesTable ReadSeries(string? path, FillMethod fill, string run)
    {
        var source = path ?? Info["data"]?.GetValue<string>() ?? throw new ArgumentException($"{run}: the run does not name its data; pass --data");
        return source == SyntheticSeries.Name ? SyntheticSeries.Generate() : ReadCsv(source, fill);
    }

    /// <summary>
    /// The next H steps after the end of <paramref name="series"/>, in original units. Windowed (default): from its
    /// last input-length rows. <paramref name="stream"/>: a streaming model reads the whole series through its
    /// recurrent state, one observation at a time.
    /// </summary>
    public Prediction Forecast(TimeSeriesTable series, bool stream = false)
    {
        int n = Columns.Count, l = Config.InputLength, f = Config.TimeFeatures;
        var z = Normalize(series);
        var marks = Marks(series);
        float[] forecast;
        if (stream)
        {
            if (Model is not MambaForecaster m) throw new InvalidOperationException($"streaming forecasts need a Mamba forecaster; this one is {Config.Model}");
            using var s = m.Stream();
            for (int r = 0; r < series.Rows; r++) s.Observe(z.AsSpan(r * n, n), marks is null ? default : marks.AsSpan(r * f, f));
            forecast = s.Forecast();
        }
        else
        {
            if (series.Rows < l) throw new InvalidDataException($"{series.Source}: {series.Rows} rows, the model needs the last {l} (its input length)");
            int start = series.Rows - l;
            var batch = new ForecastBatch(1, l, Config.Horizon, n, f, z[(start * n)..], marks?[(start * f)..], null);
            forecast = Model.Predict(batch);
        }
        return ToPrediction(series, forecast);
    }

    /// <summary>Normalised forecast [H, N] → original units with future timestamps; InvalidDataException when it is not finite (the model overflowed).</summary>
    public Prediction ToPrediction(TimeSeriesTable series, float[] forecast)
    {
        int n = Columns.Count, h = Config.Horizon;
        var values = new double[h * n];
        for (int i = 0; i < values.Length; i++) values[i] = Normalizer.Denormalize(forecast[i], i % n);
        if (!values.All(double.IsFinite))
            throw new InvalidDataException($"{series.Source}: the forecast is not finite: the model's float32 computation overflowed on these values");
        DateTime[]? stamps = null;
        if (series.Timestamps is { Length: > 0 } ts && (series.Step ?? Step) is { } step)
            stamps = Enumerable.Range(1, h).Select(k => ts[^1] + k * step).ToArray();
        return new Prediction(Columns, stamps, series.Rows, values);
    }

    public float[]? Marks(TimeSeriesTable series)
    {
        if (Config.TimeFeatures == 0) return null;
        if (series.Timestamps is null) throw new InvalidDataException($"{series.Source}: the model uses time features; the data needs its date column '{DateColumn}'");
        return TimeFeatures.ForTable(series, Config.TimeFeatures);
    }

    public void CheckColumns(TimeSeriesTable series)
    {
        if (!series.Columns.SequenceEqual(Columns))
            throw new InvalidDataException($"{series.Source}: columns {string.Join(", ", series.Columns)}; the model was trained on {string.Join(", ", Columns)}");
    }

    public void Dispose() => Model.Dispose();
}
