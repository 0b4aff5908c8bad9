using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Inference;
using Mamba4.Tensors;
using Mamba4.Text;
using Mamba4.Training;
using Mamba4.Ops;

namespace Mamba4.Tasks.LanguageModeling;

/// <summary>Every setting of `mamba4 lm train`, with its default (the CLI's options take their defaults from here).</summary>
public sealed record LmTrainSettings
{
    /// <summary>A UTF-8 text file; null = the built-in generated corpus.</summary>
    public string? Data { get; init; }
    /// <summary>"char" (a character vocabulary built from the text) or a tokenizer.json (or a folder holding one).</summary>
    public string Tokenizer { get; init; } = "char";
    /// <summary>mamba | transformer.</summary>
    public string Model { get; init; } = "mamba";
    /// <summary>A preset of <see cref="LanguageModeling.Sizes"/>.</summary>
    public string Size { get; init; } = "small";
    public int SeqLen { get; init; } = 128;
    public int Batch { get; init; } = 16;
    public long Steps { get; init; } = 4000;
    public float LearningRate { get; init; } = 3e-3f;
    public long WarmupSteps { get; init; } = 100;
    public float WeightDecay { get; init; } = 0.1f;
    public double ClipNorm { get; init; } = 1.0;
    public long Seed { get; init; } = 1;
    public int EvalEvery { get; init; } = 250;
    public int CheckpointEvery { get; init; } = 500;
    /// <summary>Steps between printed samples (0 = never), and each sample's length in tokens.</summary>
    public int SampleEvery { get; init; } = 1000;
    public int SampleTokens { get; init; } = 160;
    /// <summary>Validation windows of the final evaluation.</summary>
    public int FinalValidationWindows { get; init; } = 512;
    /// <summary>Stop (with a checkpoint) after this wall-clock budget.</summary>
    public double? Minutes { get; init; }
    public string? OutputDirectory { get; init; }
    public bool Resume { get; init; }
    public Device Device { get; init; } = Device.Cpu;

    public string OutputOrDefault => OutputDirectory ?? Path.Combine("runs", $"lm-{Model}");

    public void Validate()
    {
        LanguageModeling.Size(Size);
        if (Model is not ("mamba" or "transformer")) throw new ArgumentException($"--model must be mamba or transformer, got '{Model}'");
        if (SeqLen is <= 1 or > Models.ModelLimits.Positions) throw new ArgumentException($"--seq-len must be in [2, {Models.ModelLimits.Positions}], got {SeqLen}");
        if (Batch <= 0) throw new ArgumentException($"--batch must be positive, got {Batch}");
        Trainer.CheckTokensPerStep(Batch, SeqLen, "--seq-len");
        if (Steps <= 0) throw new ArgumentException($"--steps must be positive, got {Steps}");
        if (!(LearningRate > 0) || !float.IsFinite(LearningRate)) throw new ArgumentException($"--lr must be positive, got {LearningRate}");
        if (WarmupSteps < 0) throw new ArgumentException($"--warmup must be ≥ 0, got {WarmupSteps}");
        if (!(WeightDecay >= 0) || !float.IsFinite(WeightDecay)) throw new ArgumentException($"--weight-decay must be ≥ 0, got {WeightDecay}");
        if (!(ClipNorm >= 0) || !double.IsFinite(ClipNorm)) throw new ArgumentException($"--clip must be ≥ 0, got {ClipNorm}");
        if (EvalEvery <= 0) throw new ArgumentException($"--eval-every must be positive, got {EvalEvery}");
        if (CheckpointEvery < 0) throw new ArgumentException($"--checkpoint-every must be ≥ 0, got {CheckpointEvery}");
        if (SampleEvery < 0) throw new ArgumentException($"--sample-every must be ≥ 0, got {SampleEvery}");
        if (Minutes is { } m && !(m > 0)) throw new ArgumentException($"--minutes must be positive, got {m}");
        if (Data is not null && !File.Exists(Data)) throw new FileNotFoundException($"--data: {Data} not found", Data);
    }
}

public sealed record LmTrainResult(string Model, string Size, long Parameters, long Steps, double ValidationLoss, double TokensPerSecond,
    double Seconds, double PeakMegabytes, string ModelPath, bool Interrupted)
{
    public string Summary =>
        $"{Model} ({Size}, {Parameters:N0} parameters): validation loss {ValidationLoss:F4} nats/token, perplexity {Math.Exp(ValidationLoss):F2}, after {Steps} steps in {Seconds:F0} s " +
        $"({TokensPerSecond / 1000:F1}k tokens/s, peak tensor memory {PeakMegabytes:F0} MB); model: {ModelPath}";

    public JsonObject ToJson() => new()
    {
        ["model"] = Model, ["size"] = Size, ["parameters"] = Parameters, ["steps"] = Steps,
        ["val_loss"] = ValidationLoss, ["val_ppl"] = Math.Exp(ValidationLoss), ["tokens_per_s"] = Math.Round(TokensPerSecond, 1), ["seconds"] = Math.Round(Seconds, 2),
        ["peak_mb"] = Math.Round(PeakMegabytes, 1),
    };
}

/// <summary>
/// `mamba4 lm train`: 90% of the text (in tokens) for training, the last 10% for validation; validation every
/// EvalEvery steps, a sample every SampleEvery, checkpoints, metrics.jsonl, report.html and model/ (HF layout + tokenizer).
/// </summary>
public static class LmTrainingRun
{
    public static LmTrainResult Run(LmTrainSettings s, IRunProgress progress, StopSignal stop, TextWriter log)
    {
        s.Validate();
        var dir = RunDirectory.Open(s.OutputOrDefault, s.Resume, log);
        string text = s.Data is null ? LanguageModeling.SyntheticCorpus() : File.ReadAllText(s.Data);
        ITokenizer tok = s.Tokenizer == "char" ? CharTokenizer.FromText(text) : Text.Tokenizer.Load(s.Tokenizer);
        var stream = new TokenStream(tok.Encode(text));
        var net = LanguageModeling.Create(s.Model, s.Size, tok.VocabSize, s.SeqLen, (int)s.Seed);
        try
        {
            net.AsModule.To(s.Device);
            var options = new TrainerOptions
            {
                Steps = s.Steps, LearningRate = s.LearningRate, WarmupSteps = s.WarmupSteps, WeightDecay = s.WeightDecay, ClipNorm = s.ClipNorm,
                Seed = s.Seed, OutputDirectory = dir.Path, CheckpointEvery = s.CheckpointEvery, EvalEvery = s.EvalEvery,
            };
            var config = new JsonObject
            {
                ["data"] = s.Data is null ? "built-in" : Path.GetFullPath(s.Data), ["tokenizer"] = s.Tokenizer, ["vocab"] = tok.VocabSize,
                ["model"] = s.Model, ["size"] = s.Size, ["seq_len"] = s.SeqLen, ["batch"] = s.Batch, ["steps"] = s.Steps, ["lr"] = s.LearningRate, ["seed"] = s.Seed,
                ["warmup"] = s.WarmupSteps, ["weight_decay"] = s.WeightDecay, ["clip"] = s.ClipNorm,
            };
            double lastVal = double.NaN;
            using var trainer = new Trainer(net.AsModule, options, config,
                (step, _) =>
                {
                    var (x, y) = stream.Batch(s.Seed, step, s.Batch, s.SeqLen);
                    return (F.CrossEntropy(net.Logits(Tensor.From(x, s.Batch, s.SeqLen)), Tensor.From(y, s.Batch, s.SeqLen)), (long)s.Batch * s.SeqLen);
                },
                () =>
                {
                    lastVal = stream.ValidationLoss(net, s.SeqLen);
                    return new Dictionary<string, double> { ["val_loss"] = lastVal, ["val_ppl"] = Math.Exp(lastVal) };
                });
            if (s.Resume)
            {
                trainer.Resume();
                log.WriteLine($"resuming at step {trainer.Step}");
            }
            dir.WriteRunJson(config, s.Device, Backends.Backend.Settings);
            if (s.SampleEvery > 0)
                trainer.Evaluated += (step, _) =>
                {
                    if (step % s.SampleEvery != 0) return;
                    var prompt = stream.Validation.Take(16).Select(i => (long)i).ToArray();
                    var sample = LanguageModeling.Sample(net, prompt, s.SampleTokens, new SamplingOptions { Temperature = 0.8f, Seed = (int)step }).ToArray();
                    log.WriteLine($"--- sample at step {step} ---\n{tok.Decode([.. prompt, .. sample])}\n---");
                };
            log.WriteLine($"{s.Model} ({s.Size}): {net.AsModule.ParameterCount:N0} parameters, vocabulary {tok.VocabSize}, {stream.Train.Length:N0} training / {stream.Validation.Length:N0} validation tokens");
            var clock = Stopwatch.StartNew();
            Backends.Backend.ResetPeak(s.Device);
            var result = progress.Follow(s.Model, trainer, options.Steps,
                () => trainer.Run(() => stop.Requested || (s.Minutes is { } m && clock.Elapsed.TotalMinutes >= m)),
                r => $"loss {r.Loss:F3}  val {(double.IsNaN(lastVal) ? "-" : lastVal.ToString("F3", CultureInfo.InvariantCulture))}  {r.TokensPerSecond / 1000:F1}k tok/s");
            double tokensPerSecond = result.Step * (double)s.Batch * s.SeqLen / Math.Max(result.Seconds, 1e-9);
            if (stop.Requested)
            {
                log.WriteLine($"stopped at step {result.Step}; checkpoint written. Continue with --resume.");
                return new LmTrainResult(s.Model, s.Size, net.AsModule.ParameterCount, result.Step, double.NaN, tokensPerSecond, result.Seconds, 0, dir.ModelPath, Interrupted: true);
            }
            double peakMb = Backends.Backend.PeakBytesInUse(s.Device) / 1e6;   // weights, gradients, AdamW moments and activations
            double val = stream.ValidationLoss(net, s.SeqLen, maxWindows: s.FinalValidationWindows);
            LanguageModelFiles.Save(net, tok, dir.ModelPath, s.Tokenizer == "char" ? null : s.Tokenizer);
            WriteReport(dir, s.Model);
            return new LmTrainResult(s.Model, s.Size, net.AsModule.ParameterCount, result.Step, val, tokensPerSecond, result.Seconds, peakMb, dir.ModelPath, Interrupted: false);
        }
        finally { net.AsModule.Dispose(); }
    }

    private static void WriteReport(RunDirectory dir, string name)
    {
        var lines = dir.ReadMetrics();
        var train = lines.Where(l => l.ContainsKey("loss")).Select(l => (l["step"]!.GetValue<double>(), l["loss"]!.GetValue<double>())).ToList();
        var val = lines.Where(l => l.ContainsKey("eval")).Select(l => (l["eval"]!["step"]!.GetValue<double>(), l["eval"]!["val_loss"]!.GetValue<double>())).ToList();
        new HtmlReport($"Mamba4 language model: {name}")
            .Chart("Loss", "step", "nats per token", [("train", train), ("validation", val)])
            .Save(dir.ReportPath);
    }
}
