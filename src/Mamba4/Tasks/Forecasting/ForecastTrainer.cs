using System.Diagnostics;
using System.Text.Json.Nodes;
using Mamba4.Data.TimeSeries;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// Trains one forecaster on <see cref="ForecastData"/> with the generic <see cref="Trainer"/> (AdamW,
/// warm-up + cosine, clipping, checkpoints, exact resume): the batch of step s is a function of (seed, s)
/// — epoch e = s / stepsPerEpoch draws its own permutation of the training windows, and a last partial
/// batch is dropped in training, as the reference loaders do. After every epoch the validation MSE is
/// measured; the best weights are kept (best.safetensors) and training stops after <c>Patience</c> epochs
/// without improvement. The test metrics come from the best weights, over every test window.
/// </summary>
public sealed class ForecastTrainer : IDisposable
{
    public const string BestFile = "best.safetensors";
    private readonly ForecastData _data;
    private readonly ForecastTrainOptions _o;
    private readonly string? _dir;
    private readonly Trainer _trainer;
    private readonly List<EpochReport> _epochs = new();
    private float[][]? _best;
    private double _bestMse = double.PositiveInfinity;
    private int _bad;
    private bool _stopEarly;
    private readonly Stopwatch _trainClock = new();

    /// <param name="outputDirectory">checkpoints, metrics.jsonl and best.safetensors (null: none are written).</param>
    /// <param name="device">where the model is trained.</param>
    public ForecastTrainer(ForecastData data, ForecasterConfig config, ForecastTrainOptions options, string? outputDirectory, Device device)
    {
        options.Validate();
        if (config.Variables != data.Variables) throw new ArgumentException($"the model takes {config.Variables} variables, the data has {data.Variables}");
        if (config.TimeFeatures != data.MarkFeatures) throw new ArgumentException($"the model takes {config.TimeFeatures} time features, the data has {data.MarkFeatures}");
        (_data, _o, _dir) = (data, options, outputDirectory);
        StepsPerEpoch = data.Train.Count / options.Batch;
        if (StepsPerEpoch < 1)
            throw new ArgumentException($"{data.Table.Source}: {data.Train.Count} training windows do not fill one batch of {options.Batch}; lower --batch");
        Model = Forecaster.Create(config, (int)options.Seed);
        Model.To(device);
        RunConfig = new JsonObject
        {
            ["data"] = data.Table.Source == SyntheticSeries.Name ? SyntheticSeries.Name : Path.GetFullPath(data.Table.Source), ["columns"] = new JsonArray(data.Table.Columns.Select(c => (JsonNode)c).ToArray()),
            ["split"] = data.Splits.Description, ["model"] = config.ToJson(), ["epochs"] = options.Epochs, ["batch"] = options.Batch,
            ["lr"] = options.LearningRate, ["warmup"] = options.WarmupSteps, ["weight_decay"] = options.WeightDecay,
            ["clip"] = options.ClipNorm, ["patience"] = options.Patience, ["seed"] = options.Seed,
        };
        var trainerOptions = new TrainerOptions
        {
            Steps = (long)options.Epochs * StepsPerEpoch, LearningRate = options.LearningRate, WarmupSteps = options.WarmupSteps,
            WeightDecay = options.WeightDecay, ClipNorm = options.ClipNorm, Seed = options.Seed,
            CheckpointEvery = StepsPerEpoch, EvalEvery = StepsPerEpoch, OutputDirectory = outputDirectory, StopAfter = options.StopAfter,
        };
        _trainer = new Trainer(Model, trainerOptions, RunConfig, (step, _) => StepLoss(step), EndOfEpoch);
    }

    public Forecaster Model { get; }
    public Trainer Trainer => _trainer;
    public JsonObject RunConfig { get; }
    public int StepsPerEpoch { get; }
    public long TotalSteps => (long)_o.Epochs * StepsPerEpoch;
    public IReadOnlyList<EpochReport> Epochs => _epochs;
    public event Action<EpochReport>? EpochDone;

    private int[]? _epochPerm;
    private long _epochPermOf = -1;

    /// <summary>The loss of training step <paramref name="step"/>: slice step % stepsPerEpoch of epoch (step / stepsPerEpoch)'s permutation.</summary>
    private (Tensor Loss, long Tokens) StepLoss(long step)
    {
        _trainClock.Start();
        long epoch = step / StepsPerEpoch;
        if (_epochPermOf != epoch)
        {
            _epochPerm = Enumerable.Range(0, _data.Train.Count).ToArray();
            var rng = SplitMixRandom.ForStep(_o.Seed, epoch, stream: 5);
            for (int i = _epochPerm.Length - 1; i > 0; i--)
            {
                int j = rng.Next(i + 1);
                (_epochPerm[i], _epochPerm[j]) = (_epochPerm[j], _epochPerm[i]);
            }
            _epochPermOf = epoch;
        }
        int index = (int)(step % StepsPerEpoch);
        var batch = _data.Train.Batch(_epochPerm.AsSpan(index * _o.Batch, _o.Batch));
        return (Model.Loss(batch), batch.Size);
    }

    private IReadOnlyDictionary<string, double> EndOfEpoch()
    {
        _trainClock.Stop();
        int epoch = (int)(_trainer.Step / StepsPerEpoch);
        var (mse, mae) = ForecastEvaluation.Evaluate(Model, _data.Validation, _o.EvalBatch);
        bool improved = Track(mse);
        if (improved)
        {
            _best = Model.Parameters().Select(p => p.ToFloatArray()).ToArray();
            if (_dir is not null) Model.SaveSafetensors(Path.Combine(_dir, BestFile), new Dictionary<string, string> { ["format"] = "pt", ["epoch"] = epoch.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        }
        if (_o.Patience > 0 && _bad >= _o.Patience) _stopEarly = true;
        var report = new EpochReport(epoch, mse, mae, improved, _trainClock.Elapsed.TotalSeconds);
        _trainClock.Reset();
        _epochs.Add(report);
        EpochDone?.Invoke(report);
        return new Dictionary<string, double> { ["epoch"] = epoch, ["val_mse"] = mse, ["val_mae"] = mae, ["train_seconds"] = report.TrainSeconds };
    }

    /// <summary>Early stopping's count: a validation MSE below the best so far becomes the best and resets it, else it grows.</summary>
    private bool Track(double mse)
    {
        bool improved = mse < _bestMse;
        if (improved) { _bestMse = mse; _bad = 0; } else _bad++;
        return improved;
    }

    /// <summary>
    /// Continues from the checkpoint in the output folder when there is one (see <see cref="Trainer.Resume"/>),
    /// restoring the early-stopping state from metrics.jsonl and the best weights from best.safetensors.
    /// </summary>
    public bool Resume()
    {
        if (!_trainer.Resume()) return false;
        var metrics = Path.Combine(_dir!, "metrics.jsonl");
        if (File.Exists(metrics))
            foreach (var line in File.ReadLines(metrics))
            {
                if (JsonNode.Parse(line)?["eval"] is not JsonObject e || e["val_mse"] is null) continue;
                double mse = e["val_mse"]!.GetValue<double>();
                bool improved = Track(mse);
                _epochs.Add(new EpochReport((int)e["epoch"]!.GetValue<double>(), mse, e["val_mae"]!.GetValue<double>(), improved, e["train_seconds"]?.GetValue<double>() ?? double.NaN));
            }
        if (_o.Patience > 0 && _bad >= _o.Patience) _stopEarly = true;
        var best = Path.Combine(_dir!, BestFile);
        if (_epochs.Count > 0)
        {
            if (!File.Exists(best)) throw new InvalidDataException($"{best} is missing: the run's best weights cannot be restored");
            var all = SafetensorsFile.LoadAll(best, DType.F32);
            try
            {
                _best = Model.NamedParameters().Select(p => all.TryGetValue(p.Name, out var t) && t.Shape == p.Tensor.Shape ? t.ToFloatArray()
                    : throw new InvalidDataException($"{best}: tensor '{p.Name}' is missing or mis-shaped")).ToArray();
            }
            finally { foreach (var t in all.Values) t.Dispose(); }
        }
        return true;
    }

    /// <summary>Trains (until the epochs are done, early stopping, or <paramref name="stopRequested"/>), then tests the best weights.</summary>
    public ForecastResult Run(Func<bool>? stopRequested = null)
    {
        int epochsBefore = _epochs.Count;
        var result = _trainer.Run(() => _stopEarly || stopRequested?.Invoke() == true);
        bool interrupted = result.Interrupted && !_stopEarly;
        if (interrupted)
            return new ForecastResult(double.NaN, double.NaN, double.NaN, double.NaN, _epochs.Count, -1, double.NaN, result.Seconds, Model.ParameterCount, false, true);
        RestoreBest();
        var (valMse, valMae) = ForecastEvaluation.Evaluate(Model, _data.Validation, _o.EvalBatch);
        var (mse, mae) = ForecastEvaluation.Evaluate(Model, _data.Test, _o.EvalBatch);
        var timed = _epochs.Skip(epochsBefore).Where(e => double.IsFinite(e.TrainSeconds)).ToList();
        double perEpoch = timed.Count > 0 ? timed.Average(e => e.TrainSeconds) : double.NaN;
        int bestEpoch = _epochs.Count == 0 ? 0 : _epochs.OrderBy(e => e.Mse).ThenBy(e => e.Epoch).First().Epoch;
        return new ForecastResult(mse, mae, valMse, valMae, _epochs.Count, bestEpoch, perEpoch, result.Seconds, Model.ParameterCount, _stopEarly, false);
    }

    private void RestoreBest()
    {
        if (_best is null) return;
        int i = 0;
        foreach (var p in Model.Parameters())
        {
            using var best = Tensor.From(_best[i++], p.Shape.ToArray());
            p.CopyFrom(best);   // host or device parameter alike
        }
    }

    public void Dispose()
    {
        _trainer.Dispose();
        Model.Dispose();
    }
}
