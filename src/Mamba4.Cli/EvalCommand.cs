using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tasks.Synthetic;

namespace Mamba4.Cli;

/// <summary>`mamba4 eval`: accuracy of a trained synthetic-task model, at its training length and longer.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var run = new Option<string>("--run") { Description = "a run folder written by `mamba4 train` (holds run.json and model/)", Required = true };
        var scales = new Option<string>("--scales") { Description = "lengths to evaluate, as multiples of the training length (selective copying; induction heads: see --lengths)", DefaultValueFactory = _ => "1,4,16,64" };
        var lengths = new Option<string?>("--lengths") { Description = "induction heads: test lengths in tokens, comma-separated (default: every power of two from 64 to 1048576)" };
        var samples = new Option<int?>("--samples") { Description = "held-out sequences per length (induction heads: default as `train`, 400 up to 8192 tokens, then 2^22 tokens per length; 400 at every length on a GPU; else 256)" };
        var trigger = TrainCommand.TriggerOption("induction heads: where the held-out sequences put the first special token: uniform (the table's) | early (the first 16 positions: the key is held over the whole sequence) | mixed");
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var cmd = new Command("eval", """
            Evaluate a model trained by `mamba4 train` on held-out samples of its task, at the training
            length and at longer lengths (extrapolation). Induction heads: the same held-out sequences as
            `train` used (fixed by the run's seed and the length), so its table's rows are reproduced.

            Examples:
              mamba4 eval --run runs/induction-heads/selective --lengths 64,1024,1048576
              mamba4 eval --run runs/selective-copying/time-invariant --scales 1 --samples 1024
            """);
        foreach (var o in new Option[] { run, scales, lengths, samples, trigger, json }) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        var allowNonFinite = AllowNonFiniteOption.Create();
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(parse =>
        {
            var target = DeviceOption.Use(parse, device);
            if (parse.GetValue(samples) is <= 0 or > InductionEvaluation.MaxSamples)
                throw new ArgumentException($"--samples must be in [1, {InductionEvaluation.MaxSamples:N0}], got {parse.GetValue(samples)}");
            var dir = parse.GetValue(run)!;
            var runFile = Path.Combine(dir, "run.json");
            if (!File.Exists(runFile)) throw new FileNotFoundException($"{runFile} not found: --run must name a run folder written by `mamba4 train`", runFile);
            var config = ConfigReader.Load(runFile);
            string taskName = config.String("task") ?? throw config.Error("field 'task' is missing");
            long seed = config.Integer("seed") ?? 0;
            var task = SyntheticTraining.CreateTask(taskName, config.Count(ModelLimits.Positions, "length") ?? 0);
            var model = LanguageModelFiles.Load(Path.Combine(dir, "model"), AllowNonFiniteOption.LoadOptions(parse, allowNonFinite, target));
            using var owned = model.AsModule;
            if (model.VocabSize != task.VocabSize)
                throw new ArgumentException($"{Path.Combine(dir, "model", "config.json")}: vocab_size {model.VocabSize} does not match the task's {task.VocabSize} tokens (run.json: {taskName})");
            if (task is not InductionHeads && parse.GetValue(trigger) != "uniform")
                throw new ArgumentException($"--trigger: only induction heads has a trigger token (run.json: {taskName})");
            var result = new JsonObject { ["task"] = taskName, ["run"] = dir };
            if (task is InductionHeads induction)
            {
                var byLength = new JsonObject();
                var asked = parse.GetValue(lengths) is { } list ? TrainCommand.ParseLengths("--lengths", list) : null;
                long longest = InductionEvaluation.MaxLength(model);
                if (asked?.FirstOrDefault(l => l > longest) is long tooLong and > 0)
                    throw new ArgumentException($"--lengths: {tooLong:N0} tokens is more than this model's {longest:N0} positions");
                var placement = InductionTriggers.Parse(parse.GetValue(trigger)!);
                result["trigger"] = parse.GetValue(trigger);
                foreach (var row in InductionEvaluation.ByLength(model, induction, seed, asked ?? InductionEvaluation.PaperLengths, parse.GetValue(samples) ?? 0, placement))
                {
                    long length = row.Length;
                    Console.WriteLine($"length {length,7}: accuracy {row}");
                    byLength[length.ToString(CultureInfo.InvariantCulture)] = row.Accuracy;
                }
                result["accuracy_by_length"] = byLength;
            }
            else
                foreach (var s in parse.GetValue(scales)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    if (!int.TryParse(s, out int scale) || scale <= 0) throw new ArgumentException($"--scales: '{s}' is not a positive integer");
                    if ((long)task.Length * scale > ModelLimits.Positions)
                        throw new ArgumentException($"--scales: {scale}× the training length {task.Length} is more than {ModelLimits.Positions:N0} tokens");
                    double acc = SyntheticTraining.Accuracy(model, task, seed, scale, parse.GetValue(samples) ?? 256);
                    Console.WriteLine($"length {task.LengthFor(scale),7} ({scale}×): accuracy {acc:P2}");
                    result[scale == 1 ? "accuracy" : $"accuracy_{scale}x"] = acc;
                }
            if (parse.GetValue(json)) Console.WriteLine(result.ToJsonString());
            return 0;
        });
        return cmd;
    }
}
