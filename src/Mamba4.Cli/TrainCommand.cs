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
        var length = new Option<int>("--length") { Description = "region length (selective copying, default 32) or training sequence length (induction heads, default 256)" };
        var dModel = new Option<int>("--d-model") { Description = "model width", DefaultValueFactory = _ => 64 };
        var layers = new Option<int>("--layers") { Description = "Mamba layers", DefaultValueFactory = _ => 2 };
        var dState = new Option<int>("--d-state") { Description = "SSM state size per channel", DefaultValueFactory = _ => 16 };
        var selective = new Option<bool>("--selective") { Description = "input-dependent B, C, Δ (false: the time-invariant S4-style ablation)", DefaultValueFactory = _ => true };
        var dtMin = new Option<double>("--dt-min") { Description = "smallest initial Δ (time_step_min; dt_bias is drawn so Δ is log-uniform in [dt-min, dt-max])", DefaultValueFactory = _ => 0.001 };
        var dtMax = new Option<double>("--dt-max") { Description = "largest initial Δ (time_step_max)", DefaultValueFactory = _ => 0.1 };
        var trigger = TriggerOption("where training sequences put the first special token (induction heads): uniform | early (the first 16 positions) | mixed (half each)");
        var ablation = new Option<bool>("--ablation") { Description = "also train the time-invariant twin and compare", DefaultValueFactory = _ => true };
        var modelKind = new Option<string>("--model") { Description = "mamba | transformer (train the GPT twin alone)", DefaultValueFactory = _ => "mamba" };
        var transformer = new Option<bool?>("--transformer") { Description = "also train the GPT twin (same size, data and budget) and compare (default: for induction heads)" };
        var (copying, induction) = (SyntheticTraining.Preset("selective-copying"), SyntheticTraining.Preset("induction-heads"));
        string Defaults<T>(Func<(SyntheticOptions Model, TrainerOptions Trainer), T> f) => $"(default {f(copying)}; induction heads {f(induction)})";
        var statePassing = new Option<double?>("--state-passing") { Description = $"share of each batch that starts its SSM scans from the final states of the previous step's sequences (training-time state passing; 0 = off) {Defaults(p => p.Model.StatePassing)}" };
        var hold = new Option<double?>("--hold") { Description = $"induction heads with --state-passing: chance that a continuing row's sequence holds (no special token, no query), so later queries ask for keys written sequences before; from the first evaluation at 99 % on (0 = off) {Defaults(p => p.Model.Hold)}" };
        var steps = new Option<long?>("--steps") { Description = $"optimizer steps {Defaults(p => p.Trainer.Steps)}" };
        var batch = new Option<int?>("--batch") { Description = $"sequences per step {Defaults(p => p.Model.Batch)}" };
        var lr = new Option<float?>("--lr") { Description = $"peak learning rate {Defaults(p => p.Trainer.LearningRate)}" };
        var minLr = new Option<float?>("--min-lr-ratio") { Description = $"cosine decay to this fraction of --lr; 1 = constant {Defaults(p => p.Trainer.MinLearningRateRatio)}" };
        var warmup = new Option<long?>("--warmup") { Description = $"warm-up steps {Defaults(p => p.Trainer.WarmupSteps)}" };
        var weightDecay = new Option<float?>("--weight-decay") { Description = $"AdamW weight decay {Defaults(p => p.Trainer.WeightDecay)}" };
        var lengths = new Option<string?>("--lengths") { Description = "induction heads: test lengths, comma-separated (default every power of two from 64 to 1048576)" };
        var samples = new Option<int>("--samples") { Description = "induction heads: held-out sequences per test length (default 400, fewer beyond 8192 tokens on the CPU: 2^22 tokens per length; 400 at every length on a GPU)" };
        var adamEps = new Option<float?>("--adam-eps") { Description = $"Adam's epsilon (added to the root of the second moment) {Defaults(p => p.Trainer.AdamEps)}" };
        var adamBeta2 = new Option<float?>("--adam-beta2") { Description = $"Adam's beta2 (the second moment's decay) {Defaults(p => p.Trainer.AdamBeta2)}" };
        var clip = new Option<double>("--clip") { Description = "gradient clipping by global norm (0 = off)", DefaultValueFactory = _ => 1.0 };
        var accumulate = new Option<int>("--accumulate") { Description = "micro-batches per step (gradient accumulation)", DefaultValueFactory = _ => 1 };
        var seed = new Option<long>("--seed") { Description = "seed for weights, data and dropout", DefaultValueFactory = _ => 1 };
        var device = DeviceOption.Create();
        var output = new Option<string?>("--out") { Description = "output folder (default runs/<task>)" };
        var resume = new Option<bool>("--resume") { Description = "continue from the checkpoints in the output folder" };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "steps between checkpoints", DefaultValueFactory = _ => 100 };
        var evalEvery = new Option<int?>("--eval-every") { Description = $"steps between evaluations {Defaults(p => p.Trainer.EvalEvery)}" };
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
              mamba4 train --task induction-heads                  # the Mamba paper's setting: 256 tokens, tested to 2^20
              mamba4 train --task induction-heads --lengths 64,256,4096 --transformer false
              mamba4 train --selective false --out runs/lti
              mamba4 train --resume --out runs/selective-copying
            """);
        foreach (var o in new Option[] { task, length, modelKind, dModel, layers, dState, selective, dtMin, dtMax, trigger, statePassing, hold, ablation, transformer, steps, batch, lr, minLr, warmup, weightDecay, adamEps, adamBeta2, clip, accumulate, seed, device, output, resume, checkpointEvery, evalEvery, stopAfter, lengths, samples, json })
            cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var preset = SyntheticTraining.Preset(parse.GetValue(task)!);
            string kind = parse.GetValue(modelKind)!;
            if (kind is not ("mamba" or "transformer")) throw new ArgumentException($"--model must be mamba or transformer, got '{kind}'");
            // the preset's state passing and held keys are the Mamba's: the GPT has no state, and no passing means no hold
            double passing = parse.GetValue(statePassing) ?? (kind == "transformer" ? 0 : preset.Model.StatePassing);
            var model = preset.Model with
            {
                Length = parse.GetValue(length), DModel = parse.GetValue(dModel), Layers = parse.GetValue(layers),
                DState = parse.GetValue(dState), Batch = parse.GetValue(batch) ?? preset.Model.Batch, Selective = parse.GetValue(selective),
                DtMin = parse.GetValue(dtMin), DtMax = parse.GetValue(dtMax), Transformer = kind == "transformer",
                Trigger = InductionTriggers.Parse(parse.GetValue(trigger)!), StatePassing = passing, Hold = parse.GetValue(hold) ?? (passing > 0 ? preset.Model.Hold : 0),
            };
            model.Validate();
            var trainer = preset.Trainer with
            {
                Steps = parse.GetValue(steps) ?? preset.Trainer.Steps, LearningRate = parse.GetValue(lr) ?? preset.Trainer.LearningRate,
                WarmupSteps = parse.GetValue(warmup) ?? preset.Trainer.WarmupSteps, MinLearningRateRatio = parse.GetValue(minLr) ?? preset.Trainer.MinLearningRateRatio,
                WeightDecay = parse.GetValue(weightDecay) ?? preset.Trainer.WeightDecay, AdamEps = parse.GetValue(adamEps) ?? preset.Trainer.AdamEps,
                AdamBeta2 = parse.GetValue(adamBeta2) ?? preset.Trainer.AdamBeta2, ClipNorm = parse.GetValue(clip), GradientAccumulation = parse.GetValue(accumulate),
                Seed = parse.GetValue(seed), CheckpointEvery = parse.GetValue(checkpointEvery), EvalEvery = parse.GetValue(evalEvery) ?? preset.Trainer.EvalEvery,
                StopAfter = parse.GetValue(stopAfter),
            };
            trainer.Validate();
            if (parse.GetValue(samples) is < 0 or > InductionEvaluation.MaxSamples)
                throw new ArgumentException($"--samples must be in [1, {InductionEvaluation.MaxSamples:N0}] (0 = the default), got {parse.GetValue(samples)}");
            var settings = new SyntheticRunSettings
            {
                Model = model, Trainer = trainer, Ablation = parse.GetValue(ablation), TransformerBaseline = parse.GetValue(transformer),
                Lengths = parse.GetValue(lengths) is { } list ? ParseLengths("--lengths", list) : null, Samples = parse.GetValue(samples),
                Device = DeviceOption.Use(parse, device), OutputDirectory = parse.GetValue(output) ?? Path.Combine("runs", model.Task), Resume = parse.GetValue(resume),
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

    /// <summary>--trigger: the placement of an induction-heads sequence's first special token (default uniform).</summary>
    public static Option<string> TriggerOption(string description) =>
        new("--trigger") { Description = description, DefaultValueFactory = _ => "uniform" };

    /// <summary>"64,1024,…" → lengths, each from 4 tokens to <see cref="ModelLimits.Positions"/>.</summary>
    public static long[] ParseLengths(string option, string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s =>
            long.TryParse(s, out long l) && l >= 4 && l <= Mamba4.Models.ModelLimits.Positions ? l
                : throw new ArgumentException($"{option}: '{s}' is not a length from 4 to {Mamba4.Models.ModelLimits.Positions}")).ToArray() is { Length: > 0 } a ? a
            : throw new ArgumentException($"{option}: no lengths given");
}
