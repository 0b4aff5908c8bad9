using System.Diagnostics;
using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.Data.Recommendation;
using Mamba4.Evaluation;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Tensors;
using Mamba4.Training;
using Mamba4.Ops;

namespace Mamba4.Tasks.Recommendation;

/// <summary>
/// Epoch-based training of a sequential recommender over the <see cref="Trainer"/> (one Trainer step = one batch;
/// the epoch is step / steps-per-epoch, each epoch's order a seeded permutation, so a resumed run is exact): AdamW
/// at a constant rate (by default Adam: no weight decay, no clipping), validation with full ranking after every epoch, early
/// stopping on validation ndcg@10, the best model kept in <c>out/model</c>, test metrics of that model at the end.
/// </summary>
public sealed class RecExperiment : IDisposable
{
    public const string Criterion = "ndcg@10";
    private readonly LeaveOneOutSplit _split;
    private readonly ISequentialRecommender _model;
    private readonly RecTrainOptions _o;
    private readonly int _maxLen;
    private readonly SeqWindow[] _windows;
    private readonly SeqSample[] _samples;
    private readonly Trainer _trainer;
    private int _permEpoch = -1;
    private int[] _perm = [];
    private double _best = double.NegativeInfinity, _epochLoss;
    private int _bestEpoch, _bad, _epochSteps;
    private double _evalSeconds;
    private int _epochsThisRun;
    private IReadOnlyDictionary<string, double> _bestValid = new Dictionary<string, double>();
    private readonly Stopwatch _epochClock = new();

    public RecExperiment(LeaveOneOutSplit split, ISequentialRecommender model, int maxLen, RecTrainOptions options, JsonObject runConfig)
    {
        options.Validate();
        if (split.Valid.Length == 0) throw new InvalidDataException($"{split.Data.Source}: no user has the 3 items a validation sample needs");
        (_split, _model, _o, _maxLen) = (split, model, options, maxLen);
        _windows = options.Objective == RecObjective.AllPositions ? split.TrainWindows(maxLen) : [];
        _samples = options.Objective == RecObjective.RecBole ? split.Train : [];
        int units = UnitsPerEpoch = options.Objective == RecObjective.AllPositions ? _windows.Length : _samples.Length;
        if (units == 0) throw new InvalidDataException($"{split.Data.Source}: no training samples (every user's history is held out)");
        // The batch counts training targets under both objectives, so an epoch takes as many optimizer steps as
        // RecBole's: all-positions packs about Batch targets' worth of windows into each step.
        long targets = _windows.Sum(w => (long)w.Length);
        UnitsPerStep = options.Objective == RecObjective.RecBole ? options.Batch
            : (int)Math.Clamp(Math.Round(options.Batch * (double)units / targets), 1, units);
        StepsPerEpoch = (units + UnitsPerStep - 1) / UnitsPerStep;
        _trainer = new Trainer((Module)model, new TrainerOptions
        {
            Steps = (long)StepsPerEpoch * options.Epochs, LearningRate = options.LearningRate, WarmupSteps = 0, MinLearningRateRatio = 1f,
            WeightDecay = options.WeightDecay, ClipNorm = options.ClipNorm, Seed = options.Seed, CheckpointEvery = StepsPerEpoch, EvalEvery = StepsPerEpoch,
            OutputDirectory = options.OutputDirectory, StopAfter = options.StopAfter, MaxBadSteps = 5,
        }, runConfig, Loss, Validate);
        _trainer.StepDone += r => { _epochLoss += r.Loss; _epochSteps++; };
        _trainer.Evaluated += OnEpoch;
    }

    public int StepsPerEpoch { get; }
    /// <summary>Samples (RecBole objective) or user windows (all positions) in an epoch.</summary>
    public int UnitsPerEpoch { get; }
    /// <summary>Samples (RecBole objective) or user windows (all positions) per step.</summary>
    public int UnitsPerStep { get; }
    public string ModelDirectory => Path.Combine(_o.OutputDirectory, "model");
    public Trainer Trainer => _trainer;
    /// <summary>Raised after each epoch's validation.</summary>
    public event Action<RecEpochReport>? EpochDone;
    /// <summary>The item tokens written beside the best model.</summary>
    public IReadOnlyList<string>? ItemTokens { get; init; }

    /// <summary>Continues from the checkpoint in the output folder, restoring the early-stopping state from metrics.jsonl.</summary>
    public bool Resume()
    {
        if (!_trainer.Resume()) return false;
        var metrics = Path.Combine(_o.OutputDirectory, "metrics.jsonl");
        if (File.Exists(metrics))
            foreach (var line in File.ReadLines(metrics))
                if (JsonNode.Parse(line) is JsonObject { } o && o["eval"] is JsonObject e)
                {
                    var valid = e.Where(kv => kv.Key.StartsWith("valid_", StringComparison.Ordinal))
                        .ToDictionary(kv => kv.Key["valid_".Length..], kv => kv.Value!.GetValue<double>());
                    Track((int)(e["step"]!.GetValue<long>() / StepsPerEpoch), valid, save: false);
                }
        return true;
    }

    public bool EarlyStopped => _bad >= _o.Patience;

    private void Permutation(int epoch)
    {
        if (_permEpoch == epoch) return;
        int n = _o.Objective == RecObjective.AllPositions ? _windows.Length : _samples.Length;
        _perm = Enumerable.Range(0, n).ToArray();
        new Random(unchecked((int)(_o.Seed * 1_000_003 + epoch * 7919 + 17))).Shuffle(_perm);
        _permEpoch = epoch;
    }

    private (Tensor Loss, long Tokens) Loss(long step, int micro)
    {
        int epoch = (int)(step / StepsPerEpoch), index = (int)(step % StepsPerEpoch);
        Permutation(epoch);
        int start = index * UnitsPerStep, count = Math.Min(UnitsPerStep, _perm.Length - start);
        if (_o.Objective == RecObjective.RecBole)
        {
            var chunk = new SeqSample[count];
            for (int i = 0; i < count; i++) chunk[i] = _samples[_perm[start + i]];
            var b = SequenceBatcher.FromSamples(_split.Data, chunk, _maxLen);
            if (_model is BERT4Rec bert) return bert.ClozeLoss(b.ItemSeq, ClozeRandom(_o.Seed, epoch, index));
            return (_model.NextItem(b.ItemSeq, b.ItemSeqLen, b.PosItems!), count);
        }
        var windows = new SeqWindow[count];
        for (int i = 0; i < count; i++) windows[i] = _windows[_perm[start + i]];
        var batch = SequenceBatcher.FromWindows(_split.Data, windows, _maxLen);
        if (_model is BERT4Rec cloze) return cloze.ClozeLoss(batch.ItemSeq, ClozeRandom(_o.Seed, epoch, index));
        return AllPositionsLoss(_model, batch.ItemSeq, batch.Targets!);
    }

    /// <summary>BERT4Rec's masks: a generator seeded by (seed, epoch, batch), so a resumed run masks exactly as the uninterrupted one.</summary>
    public static Random ClozeRandom(long seed, int epoch, int batch) =>
        new(unchecked((int)(((seed * 1_000_003L + epoch) * 7_919L + batch) * 31L + 5)));

    /// <summary>
    /// The all-positions loss over the counted positions only: h = SequenceOutput(seq) [b, L, d], the rows with a
    /// target gathered before the item scores (so the [positions, n_items] logits never include padding), mean
    /// cross-entropy over them — the same value as <see cref="SequentialRecommenderLoss.AllPositions"/>.
    /// </summary>
    public static (Tensor Loss, long Positions) AllPositionsLoss(ISequentialRecommender model, Tensor itemSeq, Tensor targets)
    {
        int b = itemSeq.Shape[0], l = itemSeq.Shape[1];
        var t = targets.ToInt64Array();
        var rows = new List<long>(t.Length);
        var tgt = new List<long>(t.Length);
        for (int i = 0; i < t.Length; i++)
            if (t[i] != SequenceBatcher.IgnoreIndex) { rows.Add(i); tgt.Add(t[i]); }
        var h = model.SequenceOutput(itemSeq);
        int d = h.Shape[2];
        var picked = F.Embedding(h.Reshape(b * l, d), Tensor.From(rows.ToArray(), rows.Count));
        return (F.CrossEntropy(model.Scores(picked), Tensor.From(tgt.ToArray(), tgt.Count)), rows.Count);
    }

    private IReadOnlyDictionary<string, double> Validate()
    {
        var sw = Stopwatch.StartNew();
        var m = Evaluate(_model, _split.Data, _split.Valid, _maxLen, _o.EvalBatch);
        _evalSeconds += sw.Elapsed.TotalSeconds;
        return m.ToDictionary(kv => "valid_" + kv.Key, kv => kv.Value);
    }

    /// <summary>Full-ranking metrics (padding excluded, ties pessimistic) of the samples' targets.</summary>
    public static IReadOnlyDictionary<string, double> Evaluate(ISequentialRecommender model, SequenceDataset data, IReadOnlyList<SeqSample> samples, int maxLen, int batch = 1024)
        => RankingAccumulator.Of(Ranks(model, data, samples, maxLen, batch));

    /// <summary>Each sample's full-ranking rank of its target (1 = first; padding excluded, ties pessimistic), in sample order.</summary>
    public static int[] Ranks(ISequentialRecommender model, SequenceDataset data, IReadOnlyList<SeqSample> samples, int maxLen, int batch = 1024)
    {
        var module = (Module)model;
        bool wasTraining = module.Training;
        module.Eval();
        var ranks = new List<int>(samples.Count);
        using (GradMode.NoGrad())
            foreach (var b in SequenceBatcher.Samples(data, samples, maxLen, batch))
            {
                using var scope = new TensorScope();
                using (b) ranks.AddRange(RankingMetrics.Ranks(model.Scores(model.Forward(b.ItemSeq, b.ItemSeqLen)), b.PosItems!.ToInt64Array()));
            }
        module.Train(wasTraining);
        return ranks.ToArray();
    }

    private void OnEpoch(long step, IReadOnlyDictionary<string, double> metrics)
    {
        int epoch = (int)(step / StepsPerEpoch);
        var valid = metrics.ToDictionary(kv => kv.Key["valid_".Length..], kv => kv.Value);
        Track(epoch, valid, save: true);
        _epochsThisRun++;
        double secs = _epochClock.Elapsed.TotalSeconds;
        _epochClock.Restart();
        double loss = _epochSteps == 0 ? double.NaN : _epochLoss / _epochSteps;
        _epochLoss = 0;
        _epochSteps = 0;
        EpochDone?.Invoke(new RecEpochReport(epoch, _o.Epochs, loss, valid, _best, _bestEpoch, _bad, secs, _runClock.Elapsed.TotalSeconds / _epochsThisRun));
    }

    private readonly Stopwatch _runClock = new();

    private void Track(int epoch, IReadOnlyDictionary<string, double> valid, bool save)
    {
        double v = valid.TryGetValue(Criterion, out var x) ? x : double.NaN;
        if (v > _best)
        {
            _best = v;
            _bestEpoch = epoch;
            _bad = 0;
            _bestValid = valid;
            if (save) RecModels.Save(_model, _maxLen, ItemTokens, ModelDirectory);
        }
        else _bad++;
    }

    /// <summary>Trains until the epochs run out, early stopping, or <paramref name="stop"/>; then tests the best model.</summary>
    public RecTrainResult Run(Func<bool>? stop = null)
    {
        bool interrupted = false;
        var device = ((Nn.Module)_model).Parameters().First().Device;
        Backends.Backend.ResetPeak(device); // this run's peak on the model's device, not the process's (compare trains several models in one process)
        _runClock.Restart();
        _epochClock.Restart();
        var result = _trainer.Run(() =>
        {
            if (EarlyStopped) return true;
            if (stop?.Invoke() == true) { interrupted = true; return true; }
            return false;
        });
        interrupted |= result.Interrupted && !EarlyStopped;
        double total = _runClock.Elapsed.TotalSeconds;
        int epochs = (int)(_trainer.Step / StepsPerEpoch);
        double perEpoch = _epochsThisRun == 0 ? double.NaN : total / _epochsThisRun;
        double trainPerEpoch = _epochsThisRun == 0 ? double.NaN : (total - _evalSeconds) / _epochsThisRun;
        IReadOnlyDictionary<string, double> test = new Dictionary<string, double>();
        double msPerBatch = double.NaN;
        if (!interrupted)
        {
            if (!Directory.Exists(ModelDirectory)) throw new InvalidDataException($"{ModelDirectory}: the best model is missing");
            using var best = RecModels.Load(ModelDirectory, options: IO.ModelLoadOptions.Default with { Device = device });
            var sw = Stopwatch.StartNew();
            test = Evaluate(best.Model, _split.Data, _split.Test, _maxLen, _o.EvalBatch);
            msPerBatch = sw.Elapsed.TotalMilliseconds / Math.Max(1, (_split.Test.Length + _o.EvalBatch - 1) / _o.EvalBatch);
        }
        return new RecTrainResult(epochs, _bestEpoch, EarlyStopped, interrupted, total, perEpoch, trainPerEpoch, _bestValid, test,
            Backends.Backend.PeakBytesInUse(device), msPerBatch);
    }

    public void Dispose() => _trainer.Dispose();
}
