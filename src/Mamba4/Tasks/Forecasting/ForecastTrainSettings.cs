using Mamba4.Data.TimeSeries;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// Every setting of `mamba4 forecast train` (and of each run of `forecast compare`). The model's sizes and the
/// training hyper-parameters left null take the defaults of the model kind (<see cref="ForecastDefaults"/>, chosen on
/// ETTh1's validation split); the CLI's options take their other defaults from here.
/// </summary>
public sealed record ForecastTrainSettings
{
    // ---- the series ----
    /// <summary>A CSV with a date column and numeric columns; null = the built-in synthetic series.</summary>
    public string? Data { get; init; }
    /// <summary>The columns to read and forecast; null = every column but the date.</summary>
    public IReadOnlyList<string>? Targets { get; init; }
    /// <summary>The timestamp column; null = date, datetime, timestamp or time when present.</summary>
    public string? DateColumn { get; init; }
    public FillMethod Fill { get; init; } = FillMethod.None;
    /// <summary>See <see cref="Splits.Resolve"/>.</summary>
    public string Split { get; init; } = "auto";
    public int InputLength { get; init; } = 96;
    public int Horizon { get; init; } = 96;
    /// <summary>Feed calendar features (hour, weekday, day of month/year) beside the values.</summary>
    public bool TimeFeatures { get; init; }

    // ---- the model (null: the kind's default) ----
    /// <summary>One of <see cref="ForecasterConfig.Models"/>.</summary>
    public string Model { get; init; } = "mamba";
    public string? Embedding { get; init; }
    public bool? RevIn { get; init; }
    public int? DModel { get; init; }
    public int? Layers { get; init; }
    public int? DState { get; init; }
    public int? DConv { get; init; }
    public int? Expand { get; init; }
    public int? DFf { get; init; }
    public int? Heads { get; init; }
    public float? Dropout { get; init; }
    public bool? Bidirectional { get; init; }
    /// <summary>mamba1 or mamba2 (the mamba model's mixer), and Mamba-2's head width (null: the default).</summary>
    public string? Mixer { get; init; }
    public int? HeadDim { get; init; }

    // ---- training (null: the kind's default) ----
    public int? Epochs { get; init; }
    public int? Batch { get; init; }
    public float? LearningRate { get; init; }
    public long? WarmupSteps { get; init; }
    public float? WeightDecay { get; init; }
    public double? ClipNorm { get; init; }
    public int? Patience { get; init; }
    public int? EvalBatch { get; init; }
    public long Seed { get; init; } = 1;
    /// <summary>Stop with a checkpoint after this many steps of this invocation (as a stop request would).</summary>
    public long? StopAfter { get; init; }

    public string? OutputDirectory { get; init; }
    public bool Resume { get; init; }
    public Device Device { get; init; } = Device.Cpu;

    /// <summary>The series' short name: "synthetic" or the CSV's file name without extension.</summary>
    public string DataName => Data is null ? SyntheticSeries.Name : Path.GetFileNameWithoutExtension(Data);

    public string OutputOrDefault => OutputDirectory ?? Path.Combine("runs", "forecast", $"{DataName}-{Model}-{InputLength}-{Horizon}");

    /// <summary>What can be checked before the series is read: the model kind and the training options.</summary>
    public void Validate()
    {
        if (!ForecasterConfig.Models.Contains(Model)) throw new ArgumentException($"unknown model '{Model}' (expected one of: {string.Join(", ", ForecasterConfig.Models)})");
        Training();
    }

    /// <summary>The training options: the kind's defaults with this record's values over them, checked.</summary>
    public ForecastTrainOptions Training()
    {
        var d = ForecastDefaults.Training(Model);
        var o = d with
        {
            Epochs = Epochs ?? d.Epochs, Batch = Batch ?? d.Batch, LearningRate = LearningRate ?? d.LearningRate, WarmupSteps = WarmupSteps ?? d.WarmupSteps,
            WeightDecay = WeightDecay ?? d.WeightDecay, ClipNorm = ClipNorm ?? d.ClipNorm, Patience = Patience ?? d.Patience, EvalBatch = EvalBatch ?? d.EvalBatch,
            Seed = Seed, StopAfter = StopAfter,
        };
        o.Validate();
        return o;
    }

    /// <summary>The model: the kind's defaults for this data's variables and time features, this record's values over them, checked.</summary>
    public ForecasterConfig Config(ForecastData data)
    {
        var d = ForecastDefaults.Config(Model, InputLength, Horizon, data.Variables, data.MarkFeatures);
        var c = d with
        {
            Embedding = Embedding ?? d.Embedding, RevIn = RevIn ?? d.RevIn, DModel = DModel ?? d.DModel, Layers = Layers ?? d.Layers,
            DState = DState ?? d.DState, DConv = DConv ?? d.DConv, Expand = Expand ?? d.Expand, DFf = DFf ?? d.DFf, Heads = Heads ?? d.Heads,
            Dropout = Dropout ?? d.Dropout, Bidirectional = Bidirectional ?? d.Bidirectional, Mixer = Mixer ?? d.Mixer, HeadDim = HeadDim ?? d.HeadDim,
        };
        if (Model == "linear" && data.MarkFeatures > 0) throw new ArgumentException("--time-features: the linear model (DLinear) takes none");
        c.Validate();
        return c;
    }

    /// <summary>The series: the CSV's columns (or the synthetic series' chosen ones).</summary>
    public TimeSeriesTable ReadTable()
    {
        if (Data is not null) return TimeSeriesCsv.Read(Data, new TimeSeriesCsvOptions { Columns = Targets, DateColumn = DateColumn, Fill = Fill });
        var t = SyntheticSeries.Generate();
        if (Targets is null) return t;
        var idx = Targets.Select(c => t.IndexOf(c) is var i and >= 0 ? i : throw new ArgumentException($"the synthetic series has no column '{c}' (it has: {string.Join(", ", t.Columns)})")).ToArray();
        var v = new double[t.Rows * idx.Length];
        for (int r = 0; r < t.Rows; r++) for (int k = 0; k < idx.Length; k++) v[r * idx.Length + k] = t[r, idx[k]];
        return new TimeSeriesTable(t.Source, idx.Select(i => t.Columns[i]).ToArray(), v, t.Timestamps, t.DateColumn);
    }

    /// <summary>The series made ready for the protocol: splits, normalisation and windows for this input length and horizon.</summary>
    public ForecastData Prepare(TimeSeriesTable table) => ForecastData.Prepare(table, Split, InputLength, Horizon, TimeFeatures);
}
