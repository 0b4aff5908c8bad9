using System.CommandLine;
using Mamba4.Tasks.Synthetic;
using Mamba4.Training;
using Mamba4.Tasks;

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
            var model = new SyntheticOptions
            {
                Task = parse.GetValue(task)!, Length = parse.GetValue(length), DModel = parse.GetValue(dModel), Layers = parse.GetValue(layers),
                DState = parse.GetValue(dState), Batch = parse.GetValue(batch), Selective = parse.GetValue(selective),
            };
            model.Validate();
            var trainer = new TrainerOptions
            {
                Steps = parse.GetValue(steps), LearningRate = parse.GetValue(lr), WarmupSteps = parse.GetValue(warmup),
                WeightDecay = parse.GetValue(weightDecay), ClipNorm = parse.GetValue(clip), GradientAccumulation = parse.GetValue(accumulate),
                Seed = parse.GetValue(seed), CheckpointEvery = parse.GetValue(checkpointEvery), EvalEvery = parse.GetValue(evalEvery),
                StopAfter = parse.GetValue(stopAfter),
            };
            trainer.Validate();
            var settings = new SyntheticRunSettings
            {
                Model = model, Trainer = trainer, Ablation = parse.GetValue(ablation), Device = DeviceOption.Use(parse, device),
                OutputDirectory = parse.GetValue(output) ?? Path.Combine("runs", model.Task), Resume = parse.GetValue(resume),
            };
            using var stop = new StopSignal();
            var result = SyntheticRun.Run(settings, TrainingProgress.ForConsole, stop, Console.Error);
            if (result.Interrupted) return 130;
            Console.WriteLine(result.Summary);
            if (parse.GetValue(json)) Console.WriteLine(result.ToJson().ToJsonString());
            return 0;
        });
        return cmd;
    }
}
