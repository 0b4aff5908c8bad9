using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Models;
using Mamba4.IO;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

/// <summary>
/// `mamba4 train`: trains a Mamba on a synthetic task of the Mamba paper (and by default its time-invariant twin), each
/// in its own sub-folder with checkpoints, metrics and an HF-layout model, then a report comparing them. Everything is
/// checked (and checkpoints read) before anything is trained; a stop request writes a checkpoint and returns.
/// </summary>
public static class SyntheticRun
{
    public static string RunName(SyntheticOptions o) => o.Transformer ? "transformer" : o.Selective ? "selective" : "time-invariant";

    /// <summary>What defines one model's run; a checkpoint resumes only into the same configuration.</summary>
    public static JsonObject RunConfig(SyntheticOptions o, TrainerOptions t) => new()
    {
        ["task"] = o.Task, ["length"] = SyntheticTraining.CreateTask(o.Task, o.Length, o.Trigger) switch { SelectiveCopying copying => copying.RegionLength, var other => other.Length }, ["d_model"] = o.DModel, ["layers"] = o.Layers,
        ["d_state"] = o.DState, ["d_conv"] = o.DConv, ["expand"] = o.Expand, ["selective"] = o.Selective, ["transformer"] = o.Transformer, ["batch"] = o.Batch,
        ["dt_min"] = o.DtMin, ["dt_max"] = o.DtMax, ["trigger"] = InductionTriggers.Name(o.Trigger), ["state_passing"] = o.StatePassing, ["hold"] = o.Hold,
        ["steps"] = t.Steps, ["lr"] = t.LearningRate, ["warmup"] = t.WarmupSteps, ["min_lr_ratio"] = t.MinLearningRateRatio, ["weight_decay"] = t.WeightDecay,
        ["adam_eps"] = t.AdamEps, ["adam_beta2"] = t.AdamBeta2, ["clip"] = t.ClipNorm, ["accumulate"] = t.GradientAccumulation, ["seed"] = t.Seed,
    };

    /// <summary>What a checkpoint written before these keys existed stands for: the options' defaults.</summary>
    public static JsonObject RunConfigAbsentMeans() => new()
    {
        ["dt_min"] = new SyntheticOptions().DtMin, ["dt_max"] = new SyntheticOptions().DtMax,
        ["trigger"] = InductionTriggers.Name(InductionTrigger.Uniform), ["state_passing"] = 0.0, ["hold"] = 0.0, ["adam_eps"] = new TrainerOptions().AdamEps,
        ["adam_beta2"] = new TrainerOptions().AdamBeta2,
    };

    /// <summary>The runs of a settings record: the model, then its time-invariant twin and the Transformer where asked.</summary>
    public static List<SyntheticOptions> Runs(SyntheticRunSettings s)
    {
        var runs = new List<SyntheticOptions> { s.Model };
        if (s.Model is { Selective: true, Transformer: false } && s.Ablation) runs.Add(s.Model with { Selective = false });
        if (!s.Model.Transformer && (s.TransformerBaseline ?? s.Model.Task == "induction-heads")) runs.Add(s.Model with { Transformer = true, StatePassing = 0, Hold = 0 });
        return runs;
    }

    public static SyntheticRunResult Run(SyntheticRunSettings s, IRunProgress progress, StopSignal stop, TextWriter log)
    {
        s.Model.Validate();
        var runs = Runs(s);
        if (s.Model.StatePassing > 0 && s.Trainer.GradientAccumulation > 1)
            throw new ArgumentException("--state-passing carries each row's state from one step to the next: use it with --accumulate 1");
        var root = RunDirectory.Open(s.OutputDirectory, runs.Select(RunName).ToList(), s.Resume, log);
        var prepared = new List<(SyntheticOptions Options, TrainerOptions Training, ISequenceTask Task, ICausalLanguageModel Model, Trainer Trainer, RunDirectory Dir)>();
        var passings = new List<StatePassing>();
        try
        {
            foreach (var o in runs)
            {
                var dir = root.Child(RunName(o));
                var task = SyntheticTraining.CreateTask(o.Task, o.Length, o.Trigger);
                var model = SyntheticTraining.CreateModel(o, task, seed: (int)s.Trainer.Seed);
                model.AsModule.To(s.Device);
                var options = SyntheticTraining.TrainerFor(o, s.Trainer);
                var passing = o.StatePassing > 0 && model is MambaLM mamba ? new StatePassing(mamba, o.Batch, o.StatePassing, o.Hold) : null;
                if (passing is not null) passings.Add(passing);
                var trainer = new Trainer(model.AsModule, options with { OutputDirectory = dir.Path }, RunConfig(o, options),
                    (step, micro) => SyntheticTraining.Loss(model, task, s.Trainer.Seed, SyntheticTraining.BatchIndex(step, micro, options.GradientAccumulation), o.Batch, passing),
                    () =>
                    {
                        double accuracy = SyntheticTraining.Accuracy(model, task, s.Trainer.Seed);
                        if (passing is { Hold: > 0, Holding: false } && accuracy >= 0.99)
                        {
                            passing.Holding = true;
                            log.WriteLine($"{RunName(o)}: {accuracy:P1} at the training length: sequences hold and recall from here on (--hold {o.Hold:G3})");
                        }
                        return new Dictionary<string, double> { ["accuracy"] = accuracy };
                    },
                    RunConfigAbsentMeans());
                prepared.Add((o, options, task, model, trainer, dir));
                if (s.Resume && trainer.Resume())
                    log.WriteLine($"{RunName(o)}: resuming at step {trainer.Step} from {dir.CheckpointPath}" + (passing is null ? "" : " (the passed states start from zero again)"));
            }

            var results = new List<SyntheticModelResult>();
            foreach (var (o, options, task, model, trainer, dir) in prepared)
            {
                string name = RunName(o);
                dir.WriteRunJson(RunConfig(o, options), s.Device, Backends.Backend.Settings);
                log.WriteLine($"{name}: {o.Task}, length {task.Length}, d_model {o.DModel}, {o.Layers} layers{(o.Transformer ? "" : $", d_state {o.DState}")}, {model.AsModule.ParameterCount:N0} parameters, {options.Steps} steps × {o.Batch} sequences, lr {options.LearningRate:G3}"
                    + (task is InductionHeads ih ? $", trigger {InductionTriggers.Name(ih.Trigger)}" : "") + (o.StatePassing > 0 && !o.Transformer ? $", state passing {o.StatePassing:G3}" + (o.Hold > 0 ? $", hold {o.Hold:G3} once learnt" : "") : ""));
                double lastAccuracy = double.NaN;
                trainer.Evaluated += (_, m) => lastAccuracy = m.TryGetValue("accuracy", out var a) ? a : double.NaN;
                var result = progress.Follow(name, trainer, s.Trainer.Steps, () => trainer.Run(() => stop.Requested),
                    r => $"loss {r.Loss:F4}  acc {(double.IsNaN(lastAccuracy) ? "-" : lastAccuracy.ToString("P1", CultureInfo.InvariantCulture))}  {r.TokensPerSecond / 1000:F1}k tok/s");
                if (result.Interrupted)
                {
                    log.WriteLine($"{name}: stopped at step {result.Step}; checkpoint written to {dir.CheckpointPath}. Continue with --resume.");
                    return new SyntheticRunResult(results, Interrupted: true, root.Path);
                }
                SaveModel(model, dir.ModelPath);
                var final = new Dictionary<string, double>();
                var byLength = new SortedDictionary<long, LengthAccuracy>();
                if (task is InductionHeads induction)
                {
                    foreach (var row in InductionEvaluation.ByLength(model, induction, s.Trainer.Seed, s.Lengths ?? InductionEvaluation.PaperLengths, s.Samples))
                    {
                        byLength[row.Length] = row;
                        log.WriteLine($"{name}: length {row.Length,7}: {row}");
                    }
                    final["accuracy"] = byLength.TryGetValue(task.Length, out var atTraining) ? atTraining.Accuracy
                        : InductionEvaluation.Accuracy(model, induction, s.Trainer.Seed, task.Length, InductionEvaluation.SamplesFor(task.Length));
                }
                else final["accuracy"] = SyntheticTraining.Accuracy(model, task, s.Trainer.Seed, samples: s.FinalSamples);
                results.Add(new SyntheticModelResult(name, o, result, final, byLength));
                log.WriteLine($"{name}: " + string.Join(", ", final.Select(kv => $"{kv.Key} {kv.Value.ToString("P1", CultureInfo.InvariantCulture)}")) + $" ({result.Seconds:F0} s training)");
            }
            WriteReport(root, results);
            return new SyntheticRunResult(results, Interrupted: false, root.Path);
        }
        finally
        {
            foreach (var p in passings) p.Dispose();
            foreach (var p in prepared) { p.Trainer.Dispose(); p.Model.AsModule.Dispose(); }
        }
    }

    private static void SaveModel(ICausalLanguageModel model, string dir)
    {
        Directory.CreateDirectory(dir);
        model.AsModule.SaveSafetensors(Path.Combine(dir, "model.safetensors"));
        AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), model switch
        {
            MambaLM m => m.Config.ToJson(),
            GptLM g => g.Config.ToJson().ToJsonString(),
            _ => throw new NotSupportedException(model.GetType().Name),
        });
    }

    private static void WriteReport(RunDirectory root, List<SyntheticModelResult> results)
    {
        var loss = new List<(string, IReadOnlyList<(double, double)>)>();
        var accuracy = new List<(string, IReadOnlyList<(double, double)>)>();
        foreach (var r in results)
        {
            var (trainLoss, heldOutAccuracy) = root.Child(r.Name).Curves("accuracy");
            loss.Add((r.Name, trainLoss));
            accuracy.Add((r.Name, heldOutAccuracy));
        }
        var keys = results.SelectMany(f => f.Final.Keys).Distinct().ToArray();
        var lengths = results.SelectMany(f => f.ByLength.Keys).Distinct().Order().ToArray();
        var report = new HtmlReport("Mamba4 training report")
            .Paragraph($"Output folder: {Path.GetFullPath(root.Path)} — written {DateTime.UtcNow:u}")
            .Table(["run", .. keys], results.Select(f => new[] { f.Name }.Concat(keys.Select(k => f.Final.TryGetValue(k, out var v) ? v.ToString("P2", CultureInfo.InvariantCulture) : "-")).ToArray()));
        if (lengths.Length > 0)
            report.Paragraph("Accuracy by test length (held-out sequences; '-' not run):")
                .Table(["run", .. lengths.Select(l => l.ToString(CultureInfo.InvariantCulture))],
                    results.Select(f => new[] { f.Name }.Concat(lengths.Select(l => f.ByLength.TryGetValue(l, out var r) ? r.Accuracy.ToString("P1", CultureInfo.InvariantCulture) : "-")).ToArray()));
        report
            .Chart("Training loss", "step", "cross-entropy (log scale)", loss, logY: true)
            .Chart("Held-out accuracy", "step", "token accuracy", accuracy)
            .Save(root.ReportPath);
    }
}
