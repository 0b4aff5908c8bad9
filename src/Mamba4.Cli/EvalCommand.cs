using System.CommandLine;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tasks.Synthetic;

namespace Mamba4.Cli;

/// <summary>`mamba4 eval`: accuracy of a trained synthetic-task model, at its training length and longer.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var run = new Option<string>("--run") { Description = "a run folder written by `mamba4 train` (holds run.json and model/)", Required = true };
        var scales = new Option<string>("--scales") { Description = "lengths to evaluate, as multiples of the training length", DefaultValueFactory = _ => "1,4,16,64" };
        var samples = new Option<int>("--samples") { Description = "held-out sequences per length", DefaultValueFactory = _ => 256 };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var cmd = new Command("eval", """
            Evaluate a model trained by `mamba4 train` on fresh samples of its task, at the training
            length and at longer lengths (extrapolation).

            Examples:
              mamba4 eval --run runs/induction-heads/selective
              mamba4 eval --run runs/selective-copying/time-invariant --scales 1 --samples 1024
            """);
        foreach (var o in new Option[] { run, scales, samples, json }) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        var allowNonFinite = AllowNonFiniteOption.Create();
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(parse =>
        {
            var target = DeviceOption.Use(parse, device);
            if (parse.GetValue(samples) <= 0) throw new ArgumentException($"--samples must be positive, got {parse.GetValue(samples)}");
            var dir = parse.GetValue(run)!;
            var runFile = Path.Combine(dir, "run.json");
            if (!File.Exists(runFile)) throw new FileNotFoundException($"{runFile} not found: --run must name a run folder written by `mamba4 train`", runFile);
            var config = ConfigReader.Load(runFile);
            string taskName = config.String("task") ?? throw config.Error("field 'task' is missing");
            long seed = config.Integer("seed") ?? 0;
            var modelDir = Path.Combine(dir, "model");
            using var model = MambaLM.FromPretrained(modelDir, AllowNonFiniteOption.LoadOptions(parse, allowNonFinite, target));
            var task = SyntheticTraining.CreateTask(taskName, config.Count(ModelLimits.Positions, "length") ?? 0);
            var result = new JsonObject { ["task"] = taskName, ["run"] = dir };
            foreach (var s in parse.GetValue(scales)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!int.TryParse(s, out int scale) || scale <= 0) throw new ArgumentException($"--scales: '{s}' is not a positive integer");
                if ((long)task.Length * scale > ModelLimits.Positions)
                    throw new ArgumentException($"--scales: {scale}× the training length {task.Length} is more than {ModelLimits.Positions:N0} tokens");
                double acc = SyntheticTraining.Accuracy(model, task, seed, scale, parse.GetValue(samples));
                Console.WriteLine($"length {task.LengthFor(scale),7} ({scale}×): accuracy {acc:P2}");
                result[scale == 1 ? "accuracy" : $"accuracy_{scale}x"] = acc;
            }
            if (parse.GetValue(json)) Console.WriteLine(result.ToJsonString());
            return 0;
        });
        return cmd;
    }
}
