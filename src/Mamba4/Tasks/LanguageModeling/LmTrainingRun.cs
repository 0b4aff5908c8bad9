using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Inference;
using Mamba4.Tensors;
using Mamba4.Text;
using Mamba4.Training;
using Mamba4.Ops;

namespace Mamba4.Tasks.LanguageModeling;

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
        string text = s.Data is null ? LanguageModeling.SyntheticCorpus() : IO.DataFile.ReadAllText(s.Data);
        ITokenizer tok = s.Tokenizer == "char" ? CharTokenizer.FromText(text) : Text.Tokenizer.Load(s.Tokenizer);
        var stream = new TokenStream(tok.Encode(text));
        var net = LanguageModeling.Create(s.Model, s.Size, tok.VocabSize, s.SeqLen, (int)s.Seed, s.Mixer, s.HeadDim);
        try
        {
            net.AsModule.To(s.Device);
            if (net is Models.MambaLM mamba) mamba.Recompute = s.Recompute;
            var options = s.Trainer with { OutputDirectory = dir.Path };
            var config = new JsonObject
            {
                ["data"] = s.Data is null ? "built-in" : Path.GetFullPath(s.Data), ["tokenizer"] = s.Tokenizer, ["vocab"] = tok.VocabSize,
                ["model"] = s.Model, ["mixer"] = s.Model == "mamba" ? s.Mixer : null, ["size"] = s.Size, ["seq_len"] = s.SeqLen, ["batch"] = s.Batch, ["steps"] = s.Steps, ["lr"] = s.LearningRate, ["seed"] = s.Seed,
                ["warmup"] = s.WarmupSteps, ["weight_decay"] = s.WeightDecay, ["clip"] = s.ClipNorm,
            };
            double lastVal = double.NaN;
            using var trainer = new Trainer(net.AsModule, options, config,
                (step, _) =>
                {
                    var (x, y) = stream.Batch(s.Seed, step, s.Batch, s.SeqLen);
                    return (net.CrossEntropy(Tensor.From(x, s.Batch, s.SeqLen), Tensor.From(y, s.Batch, s.SeqLen)), (long)s.Batch * s.SeqLen);
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
            // Recompute changes memory and time, not the numbers: in run.json, but a checkpoint resumes with or without it.
            var runJson = (JsonObject)config.DeepClone();
            runJson["recompute"] = s.Recompute;
            dir.WriteRunJson(runJson, s.Device, Backends.Backend.Settings);
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
        var (train, val) = dir.Curves("val_loss");
        new HtmlReport($"Mamba4 language model: {name}")
            .Chart("Loss", "step", "nats per token", [("train", train), ("validation", val)])
            .Save(dir.ReportPath);
    }
}
