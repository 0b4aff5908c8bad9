using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tasks.Synthetic;
using Mamba4.Training;
using Spectre.Console;

namespace Mamba4.Cli;

/// <summary>`mamba4 train`: the synthetic tasks of the Mamba paper, selective model beside its time-invariant ablation.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var task = new Option<string>("--task") { Description = $"task: {string.Join(" | ", SyntheticTraining.Tasks)}", DefaultValueFactory = _ => "selective-copying" };
        var length = new Option<int>("--length") { Description = "region length (selective copying, default 32) or sequence length (induction heads, default 64)" };
        var dModel = new Option<int>("--d-model") { Description = "model width", DefaultValueFactory = _ => 64 };
        var layers = new Option<int>("--layers") { Description = "Mamba layers", DefaultValueFactory = _ => 2 };
        var dState = new Option<int>("--d-state") { Description = "SSM state size per channel", DefaultValueFactory = _ => 16 };
        var selective = new Option<bool>("--selective") { Description = "input-dependent B, C, Δ (false: the time-invariant S4-style ablation)", DefaultValueFactory = _ => true };
        var ablation = new Option<bool>("--ablation") { Description = "also train the time-invariant twin and compare", DefaultValueFactory = _ => true };
        var steps = new Option<long>("--steps") { Description = "optimizer steps", DefaultValueFactory = _ => 2000 };
        var batch = new Option<int>("--batch") { Description = "sequences per step", DefaultValueFactory = _ => 32 };
        var lr = new Option<float>("--lr") { Description = "peak learning rate (warm-up, then cosine)", DefaultValueFactory = _ => 5e-3f };
        var warmup = new Option<long>("--warmup") { Description = "warm-up steps", DefaultValueFactory = _ => 50 };
        var weightDecay = new Option<float>("--weight-decay") { Description = "AdamW weight decay", DefaultValueFactory = _ => 0.1f };
        var clip = new Option<double>("--clip") { Description = "gradient clipping by global norm (0 = off)", DefaultValueFactory = _ => 1.0 };
        var accumulate = new Option<int>("--accumulate") { Description = "micro-batches per step (gradient accumulation)", DefaultValueFactory = _ => 1 };
        var seed = new Option<long>("--seed") { Description = "seed for weights, data and dropout", DefaultValueFactory = _ => 1 };
        var device = DeviceOption.Create();
        var output = new Option<string?>("--out") { Description = "output folder (default runs/<task>)" };
        var resume = new Option<bool>("--resume") { Description = "continue from the checkpoints in the output folder" };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "steps between checkpoints", DefaultValueFactory = _ => 100 };
        var evalEvery = new Option<int>("--eval-every") { Description = "steps between evaluations", DefaultValueFactory = _ => 100 };
        var stopAfter = new Option<long?>("--stop-after") { Description = "stop with a checkpoint after this many steps of this invocation (as Ctrl-C would)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var cmd = new Command("train", """
            Train a Mamba model on a synthetic task of the Mamba paper, generated on the fly, and evaluate it.
            By default the selective model and its time-invariant ablation (same size, same budget) are
            trained one after the other and their accuracies printed side by side. Ctrl-C writes a
            checkpoint; --resume continues exactly where it stopped.
            Writes to the output folder: <run>/checkpoint.safetensors, <run>/metrics.jsonl,
            <run>/model/ (config.json + model.safetensors, loadable by `mamba4 generate`) and report.html.

            Examples:
              mamba4 train
              mamba4 train --task induction-heads --steps 1500
              mamba4 train --selective false --out runs/lti
              mamba4 train --resume --out runs/selective-copying
            """);
        foreach (var o in new Option[] { task, length, dModel, layers, dState, selective, ablation, steps, batch, lr, warmup, weightDecay, clip, accumulate, seed, device, output, resume, checkpointEvery, evalEvery, stopAfter, json })
            cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var options = new SyntheticOptions
            {
                Task = parse.GetValue(task)!, Length = parse.GetValue(length), DModel = parse.GetValue(dModel), Layers = parse.GetValue(layers),
                DState = parse.GetValue(dState), Batch = parse.GetValue(batch), Selective = parse.GetValue(selective),
            };
            options.Validate();
            DeviceOption.Use(parse, device);
            var trainer = new TrainerOptions
            {
                Steps = parse.GetValue(steps), LearningRate = parse.GetValue(lr), WarmupSteps = parse.GetValue(warmup),
                WeightDecay = parse.GetValue(weightDecay), ClipNorm = parse.GetValue(clip), GradientAccumulation = parse.GetValue(accumulate),
                Seed = parse.GetValue(seed), CheckpointEvery = parse.GetValue(checkpointEvery), EvalEvery = parse.GetValue(evalEvery),
                StopAfter = parse.GetValue(stopAfter),
            };
            trainer.Validate();
            var outDir = parse.GetValue(output) ?? Path.Combine("runs", options.Task);
            var runs = new List<SyntheticOptions> { options };
            if (options.Selective && parse.GetValue(ablation)) runs.Add(options with { Selective = false });
            return SyntheticRunner.Run(runs, trainer, outDir, parse.GetValue(resume), parse.GetValue(json));
        });
        return cmd;
    }
}

/// <summary>Runs one or more synthetic-task trainings with progress, checkpoints, a report and a summary.</summary>
internal static class SyntheticRunner
{
    public static string RunName(SyntheticOptions o) => o.Selective ? "selective" : "time-invariant";

    public static JsonObject RunConfig(SyntheticOptions o, TrainerOptions t) => new()
    {
        ["task"] = o.Task, ["length"] = SyntheticTraining.CreateTask(o.Task, o.Length) switch { SelectiveCopying copying => copying.RegionLength, var other => other.Length }, ["d_model"] = o.DModel, ["layers"] = o.Layers,
        ["d_state"] = o.DState, ["d_conv"] = o.DConv, ["expand"] = o.Expand, ["selective"] = o.Selective, ["batch"] = o.Batch,
        ["steps"] = t.Steps, ["lr"] = t.LearningRate, ["warmup"] = t.WarmupSteps, ["weight_decay"] = t.WeightDecay,
        ["clip"] = t.ClipNorm, ["accumulate"] = t.GradientAccumulation, ["seed"] = t.Seed,
    };

    public static int Run(List<SyntheticOptions> runs, TrainerOptions trainerOptions, string outDir, bool resume, bool json)
    {
        RunFolder.Prepare(outDir, resume, Console.Error.WriteLine, runs.Select(o => Path.Combine(outDir, RunName(o))).ToArray());
        var prepared = new List<(SyntheticOptions Options, ISequenceTask Task, MambaLM Model, Trainer Trainer, string Dir)>();
        try
        {
            // Everything is checked (and checkpoints read) before anything is trained or written.
            foreach (var o in runs)
            {
                var dir = Path.Combine(outDir, RunName(o));
                var task = SyntheticTraining.CreateTask(o.Task, o.Length);
                var model = new MambaLM(SyntheticTraining.ModelConfig(o, task), seed: (int)trainerOptions.Seed);
                var config = RunConfig(o, trainerOptions);
                var trainer = new Trainer(model, trainerOptions with { OutputDirectory = dir }, config,
                    (step, _) => SyntheticTraining.Loss(model, task, trainerOptions.Seed, step, o.Batch),
                    () => new Dictionary<string, double> { ["accuracy"] = SyntheticTraining.Accuracy(model, task, trainerOptions.Seed) });
                prepared.Add((o, task, model, trainer, dir));
                if (resume && trainer.Resume())
                    Console.Error.WriteLine($"{RunName(o)}: resuming at step {trainer.Step} from {Path.Combine(dir, Checkpoint.FileName)}");
            }

            bool stop = false;
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop = true; });
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop = true; });
            var results = new List<(SyntheticOptions Options, TrainResult Result, Dictionary<string, double> Final)>();
            foreach (var (o, task, model, trainer, dir) in prepared)
            {
                Directory.CreateDirectory(dir);
                File.WriteAllText(Path.Combine(dir, "run.json"), RunConfig(o, trainerOptions).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                Console.Error.WriteLine($"{RunName(o)}: {o.Task}, length {task.Length}, d_model {o.DModel}, {o.Layers} layers, d_state {o.DState}, {model.ParameterCount:N0} parameters, {trainerOptions.Steps} steps × {o.Batch} sequences");
                double lastAccuracy = double.NaN;
                trainer.Evaluated += (_, m) => lastAccuracy = m.TryGetValue("accuracy", out var a) ? a : double.NaN;
                var result = TrainingProgress.Run(RunName(o), trainer, trainerOptions.Steps, () => stop,
                    r => $"loss {r.Loss:F4}  acc {(double.IsNaN(lastAccuracy) ? "-" : lastAccuracy.ToString("P1", CultureInfo.InvariantCulture))}");
                if (result.Interrupted)
                {
                    Console.Error.WriteLine($"{RunName(o)}: stopped at step {result.Step}; checkpoint written to {Path.Combine(dir, Checkpoint.FileName)}. Continue with --resume.");
                    return 130;
                }
                var final = new Dictionary<string, double>();
                foreach (int scale in task is InductionHeads ? new[] { 1, 4, 16, 64 } : new[] { 1 })
                    final[scale == 1 ? "accuracy" : $"accuracy_{scale}x"] = SyntheticTraining.Accuracy(model, task, trainerOptions.Seed, scale, samples: scale == 1 ? 512 : 128);
                SaveModel(model, Path.Combine(dir, "model"));
                results.Add((o, result, final));
                Console.Error.WriteLine($"{RunName(o)}: " + string.Join(", ", final.Select(kv => $"{kv.Key} {kv.Value:P1}")) + $" ({result.Seconds:F0} s)");
            }
            WriteReport(outDir, results.Select(r => (RunName(r.Options), r.Final)).ToList());
            PrintSummary(results, outDir, json);
            return 0;
        }
        finally
        {
            foreach (var p in prepared) { p.Trainer.Dispose(); p.Model.Dispose(); }
        }
    }

    private static void SaveModel(MambaLM model, string dir)
    {
        Directory.CreateDirectory(dir);
        model.SaveSafetensors(Path.Combine(dir, "model.safetensors"));
        AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), model.Config.ToJson());
    }

    private static void WriteReport(string outDir, List<(string Name, Dictionary<string, double> Final)> finals)
    {
        var loss = new List<(string, IReadOnlyList<(double, double)>)>();
        var accuracy = new List<(string, IReadOnlyList<(double, double)>)>();
        foreach (var (name, _) in finals)
        {
            var lines = File.ReadAllLines(Path.Combine(outDir, name, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
            loss.Add((name, lines.Where(l => l.ContainsKey("loss")).Select(l => (l["step"]!.GetValue<double>(), l["loss"]!.GetValue<double>())).ToList()));
            accuracy.Add((name, lines.Where(l => l.ContainsKey("eval")).Select(l => (l["eval"]!["step"]!.GetValue<double>(), l["eval"]!["accuracy"]!.GetValue<double>())).ToList()));
        }
        var keys = finals.SelectMany(f => f.Final.Keys).Distinct().ToArray();
        new HtmlReport("Mamba4 training report")
            .Paragraph($"Output folder: {Path.GetFullPath(outDir)} — written {DateTime.UtcNow:u}")
            .Table(["run", .. keys], finals.Select(f => new[] { f.Name }.Concat(keys.Select(k => f.Final.TryGetValue(k, out var v) ? v.ToString("P2", CultureInfo.InvariantCulture) : "-")).ToArray()))
            .Chart("Training loss", "step", "cross-entropy (log scale)", loss, logY: true)
            .Chart("Held-out accuracy", "step", "token accuracy", accuracy)
            .Save(Path.Combine(outDir, "report.html"));
    }

    private static void PrintSummary(List<(SyntheticOptions Options, TrainResult Result, Dictionary<string, double> Final)> results, string outDir, bool json)
    {
        var first = results[0];
        string line = $"{first.Options.Task}: " + string.Join(" vs ", results.Select(r => $"{RunName(r.Options)} {r.Final["accuracy"]:P1}")) +
            $" token accuracy after {first.Result.Step} steps ({results.Sum(r => r.Result.Seconds):F0} s); report: {Path.Combine(outDir, "report.html")}";
        Console.WriteLine(line);
        if (!json) return;
        var o = new JsonObject
        {
            ["task"] = first.Options.Task,
            ["model"] = new JsonObject { ["d_model"] = first.Options.DModel, ["layers"] = first.Options.Layers, ["d_state"] = first.Options.DState, ["selective"] = first.Options.Selective },
            ["steps"] = first.Result.Step,
            ["seconds"] = Math.Round(results.Sum(r => r.Result.Seconds), 2),
        };
        foreach (var (k, v) in first.Final) o[k] = v;
        foreach (var r in results.Skip(1))
            foreach (var (k, v) in r.Final) o[$"{RunName(r.Options).Replace('-', '_')}_{k}"] = v;
        Console.WriteLine(o.ToJsonString());
    }
}
