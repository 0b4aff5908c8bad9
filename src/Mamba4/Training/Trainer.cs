using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.Nn;
using Mamba4.Tensors;

namespace Mamba4.Training;

public sealed record TrainerOptions
{
    public long Steps { get; init; } = 1000;
    public float LearningRate { get; init; } = 1e-3f;
    public long WarmupSteps { get; init; } = 50;
    public float MinLearningRateRatio { get; init; } = 0.1f;
    public float WeightDecay { get; init; } = 0.1f;
    /// <summary>Adam's ε (added to √v): gradients far below it take steps smaller than the learning rate.</summary>
    public float AdamEps { get; init; } = 1e-8f;
    /// <summary>Adam's β2 (the second moment's decay): lower forgets small past gradients sooner, so a sudden large
    /// gradient after many tiny ones takes a step nearer the learning rate instead of several times it.</summary>
    public float AdamBeta2 { get; init; } = 0.999f;
    public double ClipNorm { get; init; } = 1.0;
    public int GradientAccumulation { get; init; } = 1;
    public long Seed { get; init; }
    public int CheckpointEvery { get; init; } = 100;
    public int EvalEvery { get; init; } = 100;
    /// <summary>Consecutive non-finite steps after which training stops.</summary>
    public int MaxBadSteps { get; init; } = 5;
    /// <summary>Folder for checkpoint.safetensors and metrics.jsonl (null: keep nothing on disk).</summary>
    public string? OutputDirectory { get; init; }
    /// <summary>Stop (with a checkpoint) after this many steps of this invocation, as an interruption would.</summary>
    public long? StopAfter { get; init; }

    /// <summary>Every option in its range; messages name the command-line options (`mamba4 train`'s).</summary>
    public void Validate()
    {
        if (Steps <= 0) throw new ArgumentException($"--steps must be positive, got {Steps}");
        if (!(LearningRate > 0 && float.IsFinite(LearningRate))) throw new ArgumentException($"--lr must be a positive number, got {LearningRate}");
        if (WarmupSteps < 0) throw new ArgumentException($"--warmup must be 0 or more, got {WarmupSteps}");
        if (!(MinLearningRateRatio is >= 0 and <= 1)) throw new ArgumentException($"--min-lr-ratio must be from 0 to 1, got {MinLearningRateRatio}");
        if (!(WeightDecay >= 0 && float.IsFinite(WeightDecay))) throw new ArgumentException($"--weight-decay must be 0 or more, got {WeightDecay}");
        if (!(AdamEps > 0 && float.IsFinite(AdamEps))) throw new ArgumentException($"--adam-eps must be a positive number, got {AdamEps}");
        if (!(AdamBeta2 is > 0 and < 1)) throw new ArgumentException($"--adam-beta2 must be above 0 and below 1, got {AdamBeta2}");
        if (!(ClipNorm >= 0 && double.IsFinite(ClipNorm))) throw new ArgumentException($"--clip must be 0 (off) or more, got {ClipNorm}");
        if (GradientAccumulation <= 0) throw new ArgumentException($"--accumulate must be positive, got {GradientAccumulation}");
        if (CheckpointEvery < 0) throw new ArgumentException($"--checkpoint-every must be 0 (only at the end) or more, got {CheckpointEvery}");
        if (EvalEvery <= 0) throw new ArgumentException($"--eval-every must be positive, got {EvalEvery}");
        if (StopAfter is <= 0) throw new ArgumentException($"--stop-after must be positive, got {StopAfter}");
        if (MaxBadSteps <= 0) throw new ArgumentException($"the non-finite step limit must be positive, got {MaxBadSteps}");
    }
}

/// <summary>What one optimizer step did.</summary>
public sealed record StepReport(long Step, double Loss, float LearningRate, double GradNorm, bool Skipped, double TokensPerSecond, double Seconds);

public sealed record TrainResult(long Step, bool Completed, bool Interrupted, double Seconds, double LastLoss, IReadOnlyDictionary<string, double> Metrics);

public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>
/// The training loop: gradient accumulation, global-norm clipping, AdamW with warm-up + cosine
/// schedule, NaN/Inf steps skipped and reported, periodic evaluation and atomic checkpoints, exact
/// resume. Data and dropout are functions of (seed, step), so an interrupted and resumed run ends
/// with the same weights as an uninterrupted one.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly Module _model;
    private readonly TrainerOptions _o;
    private readonly JsonObject _runConfig;
    private readonly Func<long, int, (Tensor Loss, long Tokens)> _loss;
    private readonly Func<IReadOnlyDictionary<string, double>>? _evaluate;
    private readonly AdamW _optimizer;
    private readonly WarmupCosine _schedule;
    private int _consecutiveBad;
    private double _elapsedBefore;

    /// <param name="loss">(step, micro-batch) → the scalar loss of that micro-batch and how many tokens it covered.</param>
    /// <param name="runConfig">Everything that defines the run (task, sizes, options); a checkpoint resumes only into the same configuration.</param>
    /// <param name="absentMeans">Run-configuration keys added after older checkpoints were written, with the value a
    /// checkpoint without the key stands for (e.g. a new option's default), so those checkpoints still resume.</param>
    public Trainer(Module model, TrainerOptions options, JsonObject runConfig, Func<long, int, (Tensor Loss, long Tokens)> loss,
        Func<IReadOnlyDictionary<string, double>>? evaluate = null, JsonObject? absentMeans = null)
    {
        options.Validate();
        (_model, _o, _runConfig, _loss, _evaluate, _absentMeans) = (model, options, runConfig, loss, evaluate, absentMeans);
        _optimizer = new AdamW(model, options.LearningRate, beta2: options.AdamBeta2, eps: options.AdamEps, weightDecay: options.WeightDecay);
        _schedule = new WarmupCosine(options.LearningRate, Math.Min(options.WarmupSteps, options.Steps), options.Steps, options.MinLearningRateRatio);
    }

    /// <summary>The most tokens (sequences × length) one optimizer step takes; a larger batch goes through gradient accumulation.</summary>
    public const long MaxTokensPerStep = 1 << 20;

    /// <summary>Refuses a batch of <paramref name="batch"/> sequences of <paramref name="length"/> tokens beyond <see cref="MaxTokensPerStep"/>
    /// (computed in 64 bits: the product of two valid options can overflow an int).</summary>
    public static void CheckTokensPerStep(int batch, int length, string lengthName)
    {
        long tokens = (long)batch * length;
        if (tokens > MaxTokensPerStep)
            throw new ArgumentException($"--batch {batch} × {lengthName} {length} = {tokens:N0} tokens per step, more than the {MaxTokensPerStep:N0} a step may take");
    }

    public long Step { get; private set; }
    public AdamW Optimizer => _optimizer;
    public event Action<StepReport>? StepDone;
    public event Action<long, IReadOnlyDictionary<string, double>>? Evaluated;

    private readonly JsonObject? _absentMeans;
    private string? CheckpointPath => _o.OutputDirectory is null ? null : Path.Combine(_o.OutputDirectory, Checkpoint.FileName);
    private string? MetricsPath => _o.OutputDirectory is null ? null : Path.Combine(_o.OutputDirectory, "metrics.jsonl");

    /// <summary>
    /// Continues from the checkpoint in the output folder when there is one. Throws (touching nothing) when
    /// the checkpoint is unreadable or was written by a run with a different configuration.
    /// </summary>
    public bool Resume()
    {
        if (CheckpointPath is not { } path || !File.Exists(path)) return false;
        var saved = Checkpoint.ReadState(path);
        var savedConfig = saved["config"] as JsonObject ?? throw new InvalidDataException($"{path}: trainer state has no 'config'");
        foreach (var (key, value) in _runConfig)
        {
            bool absent = !savedConfig.ContainsKey(key);
            var other = absent ? _absentMeans?[key] : savedConfig[key];
            if (!JsonNode.DeepEquals(value, other))
            {
                string there = !absent ? other?.ToJsonString() ?? "null" : other is null ? "absent" : $"absent (standing for {other.ToJsonString()})";
                throw new InvalidDataException($"{path}: the checkpoint was written by a different run: '{key}' is {there} there, {value?.ToJsonString() ?? "null"} now");
            }
        }
        foreach (var (key, _) in savedConfig)
            if (!_runConfig.ContainsKey(key)) throw new InvalidDataException($"{path}: the checkpoint was written by a different run: it has '{key}', this run does not");
        var state = Checkpoint.Load(path, _model, _optimizer);
        Step = state["step"]!.GetValue<long>();
        _optimizer.Steps = state["optimizer_steps"]!.GetValue<long>();
        _consecutiveBad = state["consecutive_bad_steps"]?.GetValue<int>() ?? 0;
        _elapsedBefore = state["seconds"]?.GetValue<double>() ?? 0;
        TruncateMetrics(Step);
        return true;
    }

    public TrainResult Run(Func<bool>? stopRequested = null)
    {
        if (_o.OutputDirectory is { } dir) Directory.CreateDirectory(dir);
        var sw = Stopwatch.StartNew();
        long startStep = Step;
        double lastLoss = double.NaN;
        IReadOnlyDictionary<string, double> metrics = new Dictionary<string, double>();
        bool interrupted = false;
        while (Step < _o.Steps)
        {
            if (stopRequested?.Invoke() == true || (_o.StopAfter is { } n && Step - startStep >= n)) { interrupted = true; break; }
            var report = OneStep();
            lastLoss = report.Loss;
            Log(new JsonObject
            {
                ["step"] = report.Step, ["loss"] = report.Loss, ["lr"] = report.LearningRate, ["grad_norm"] = report.GradNorm,
                ["skipped"] = report.Skipped, ["tokens_per_s"] = report.TokensPerSecond, ["seconds"] = _elapsedBefore + sw.Elapsed.TotalSeconds,
            });
            StepDone?.Invoke(report with { Seconds = _elapsedBefore + sw.Elapsed.TotalSeconds });
            if (_evaluate is not null && (Step % _o.EvalEvery == 0 || Step == _o.Steps))
            {
                metrics = _evaluate();
                var m = new JsonObject { ["step"] = Step };
                foreach (var (k, v) in metrics) m[k] = v;
                Log(new JsonObject { ["eval"] = m });
                Evaluated?.Invoke(Step, metrics);
            }
            if (_o.CheckpointEvery > 0 && Step % _o.CheckpointEvery == 0) SaveCheckpoint(sw.Elapsed.TotalSeconds);
        }
        if (Step > startStep || interrupted) SaveCheckpoint(sw.Elapsed.TotalSeconds);
        return new TrainResult(Step, Step >= _o.Steps, interrupted, _elapsedBefore + sw.Elapsed.TotalSeconds, lastLoss, metrics);
    }

    private StepReport OneStep()
    {
        var t0 = Stopwatch.GetTimestamp();
        _model.Train();
        _model.ZeroGrad();
        double lossSum = 0;
        long tokens = 0;
        for (int micro = 0; micro < _o.GradientAccumulation; micro++)
        {
            _model.DropoutSeed = (ulong)SplitMixRandom.ForStep(_o.Seed, Step, 1000 + micro).NextUInt64();
            using var scope = new TensorScope();
            var (loss, count) = _loss(Step, micro);
            tokens += count;
            var value = loss.Item();
            lossSum += value;
            if (!double.IsFinite(value)) continue;
            (_o.GradientAccumulation == 1 ? loss : Ops.F.Scale(loss, 1f / _o.GradientAccumulation)).Backward();
        }
        Tape.Clear();
        double meanLoss = lossSum / _o.GradientAccumulation;
        float lr = _schedule.At(Step);
        var (norm, clipScale) = Gradients.ClipFactor(_model, _o.ClipNorm);
        bool skipped = !double.IsFinite(meanLoss) || !double.IsFinite(norm);
        if (skipped)
        {
            _model.ZeroGrad();
            if (++_consecutiveBad >= _o.MaxBadSteps)
                throw new TrainingDivergedException($"step {Step}: loss or gradients were not finite for {_consecutiveBad} steps in a row (loss {meanLoss}, gradient norm {norm}); stopping. The last checkpoint is unchanged.");
        }
        else
        {
            _consecutiveBad = 0;
            _optimizer.LearningRate = lr;
            _optimizer.Step(clipScale);
        }
        Step++;
        double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        return new StepReport(Step, meanLoss, lr, norm, skipped, tokens / Math.Max(seconds, 1e-9), seconds);
    }

    private void SaveCheckpoint(double seconds)
    {
        if (CheckpointPath is not { } path) return;
        var state = new JsonObject
        {
            ["step"] = Step, ["optimizer_steps"] = _optimizer.Steps, ["consecutive_bad_steps"] = _consecutiveBad,
            ["seed"] = _o.Seed, ["data_position"] = Step, ["seconds"] = _elapsedBefore + seconds, ["config"] = _runConfig.DeepClone(), ["numerics"] = Backends.Backend.Settings.ToJson(),
        };
        Checkpoint.Save(path, _model, _optimizer, state);
    }

    private void Log(JsonObject line)
    {
        if (MetricsPath is { } path) File.AppendAllText(path, line.ToJsonString() + "\n");
    }

    /// <summary>Drops metric lines written after the checkpoint we resume from (they will be written again).</summary>
    private void TruncateMetrics(long step)
    {
        if (MetricsPath is not { } path || !File.Exists(path)) return;
        var keep = File.ReadAllLines(path).Where(l =>
        {
            var o = JsonNode.Parse(l) as JsonObject;
            var s = (o?["step"] ?? o?["eval"]?["step"])?.GetValue<long>();
            return s is null || s <= step;
        }).ToList();
        IO.AtomicFile.WriteAllLines(path, keep);
    }

    public void Dispose() => _optimizer.Dispose();

    internal static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
