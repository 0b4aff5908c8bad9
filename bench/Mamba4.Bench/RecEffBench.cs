using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Data.Recommendation;
using Mamba4.Models;
using Mamba4.Tasks.Recommendation;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// The Mamba4Rec paper's efficiency table on a real dataset (ML-1M in the paper): for Mamba4Rec, SASRec and BERT4Rec at
/// the paper's settings (max_len 200, batch 2048, hidden 64), the attention models also with `--attention naive`
/// (RecBole's materialised L × L attention): peak device memory of training (weights, Adam state and the step's
/// tensors), training seconds per epoch under both objectives (all-positions, our default; recbole, every prefix one
/// sample, the paper's epoch), projected from timed steps (the first steps, which compile kernels, are left out), and
/// full-ranking inference seconds per batch of 4,096 test users (the paper's eval_batch_size). Run it alone on the
/// device (MAMBA4_DEVICE=cuda); `receff DATA [FORMAT] [MAX_LEN] [TIMED_STEPS]`.
/// </summary>
public static class RecEffBench
{
    private const int Batch = 2048, EvalBatch = 4096, WarmSteps = 3;

    public static void Run(string[] args)
    {
        string data = args.Length > 1 ? args[1] : "../shared/data/ml-1m/ml-1m.sequences.txt.gz";
        string? format = args.Length > 2 ? args[2] : null;
        int maxLen = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 200;
        int timed = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 20;
        var device = Device.Parse(BenchSettings.Current.Device);
        var dataset = new RecDataSettings { Path = data, Format = format }.Load(Console.Out);
        var split = LeaveOneOutSplit.Create(dataset);
        Console.WriteLine($"== receff: {data}, max_len {maxLen}, batch {Batch} (training), {EvalBatch} users (inference), device {device}; " +
                          $"seconds per epoch = mean of {timed} timed steps (after {WarmSteps} warm-up steps) × steps per epoch");
        (string Name, RecModelOptions Options)[] models =
        [
            ("mamba4rec (paper)", new() { Kind = "mamba4rec", MaxLen = maxLen, Preset = "paper" }),
            ("mamba4rec --layers 2 --dropout 0.5", new() { Kind = "mamba4rec", MaxLen = maxLen, Layers = 2, Dropout = 0.5f }),
            ("sasrec", new() { Kind = "sasrec", MaxLen = maxLen }),
            ("sasrec --attention naive", new() { Kind = "sasrec", MaxLen = maxLen, Attention = "naive" }),
            ("bert4rec", new() { Kind = "bert4rec", MaxLen = maxLen }),
            ("bert4rec --attention naive", new() { Kind = "bert4rec", MaxLen = maxLen, Attention = "naive" }),
        ];
        Console.WriteLine($"{"model",-36} {"objective",-14} {"steps/ep",8} {"s/step",8} {"s/epoch",8} {"peak train MB",13} {"s/infer batch",13} {"peak infer MB",13}");
        foreach (var (name, options) in models)
            foreach (var objective in new[] { RecObjective.AllPositions, RecObjective.RecBole })
            {
                var model = RecModels.Create(options, dataset.NItems, seed: 1);
                var module = (Nn.Module)model;
                try
                {
                    module.To(device);
                    var train = Train(model, split, maxLen, objective, timed, device);
                    var (inferSeconds, inferPeak) = Infer(model, split, maxLen, device);
                    Console.WriteLine($"{name,-36} {RecTrainOptions.Name(objective),-14} {train.StepsPerEpoch,8} {train.SecondsPerStep,8:F4} " +
                                      $"{train.SecondsPerStep * train.StepsPerEpoch,8:F1} {train.PeakBytes / 1e6,13:F0} {inferSeconds,13:F4} {inferPeak / 1e6,13:F0}");
                    Console.WriteLine(new JsonObject
                    {
                        ["model"] = name, ["objective"] = RecTrainOptions.Name(objective), ["steps_per_epoch"] = train.StepsPerEpoch,
                        ["seconds_per_step"] = train.SecondsPerStep, ["seconds_per_epoch"] = train.SecondsPerStep * train.StepsPerEpoch,
                        ["peak_train_bytes"] = train.PeakBytes, ["infer_seconds_per_batch"] = inferSeconds, ["peak_infer_bytes"] = inferPeak,
                        ["timed_steps"] = timed, ["device"] = device.ToString(),
                    }.ToJsonString());
                }
                finally { module.Dispose(); }
            }
    }

    /// <summary>Warm-up steps, then <paramref name="timed"/> timed ones through the real training loop (RecExperiment: batching, loss, backward, Adam).</summary>
    private static (int StepsPerEpoch, double SecondsPerStep, long PeakBytes) Train(ISequentialRecommender model, LeaveOneOutSplit split, int maxLen,
        RecObjective objective, int timed, Device device)
    {
        var dir = Path.Combine(Path.GetTempPath(), "mamba4-receff-" + Environment.ProcessId);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var options = new RecTrainOptions { Epochs = 1, Batch = Batch, Objective = objective, StopAfter = WarmSteps + timed, OutputDirectory = dir };
        using var exp = new RecExperiment(split, model, maxLen, options, new JsonObject());
        var stamps = new List<double>();
        var clock = Stopwatch.StartNew();
        exp.Trainer.StepDone += _ => stamps.Add(clock.Elapsed.TotalSeconds);   // the step's loss has been read back: the device is done with it
        Backend.ResetPeak(device);
        exp.Run();
        long peak = Backend.PeakBytesInUse(device);
        Directory.Delete(dir, recursive: true);
        int n = Math.Min(stamps.Count - 1, timed);
        double perStep = n < 1 ? double.NaN : (stamps[^1] - stamps[^(n + 1)]) / n;
        return (exp.StepsPerEpoch, perStep, peak);
    }

    /// <summary>Full ranking of the first 4,096 test users (one batch), after one warm-up pass: median of 3 seconds, and the peak memory.</summary>
    private static (double Seconds, long PeakBytes) Infer(ISequentialRecommender model, LeaveOneOutSplit split, int maxLen, Device device)
    {
        var users = split.Test.Take(EvalBatch).ToArray();
        RecExperiment.Ranks(model, split.Data, users, maxLen, EvalBatch);
        Backend.ResetPeak(device);
        var times = new List<double>();
        for (int r = 0; r < 3; r++)
        {
            var sw = Stopwatch.StartNew();
            RecExperiment.Ranks(model, split.Data, users, maxLen, EvalBatch);   // ranks are read back to the host: synchronous
            times.Add(sw.Elapsed.TotalSeconds);
        }
        times.Sort();
        return (times[1], Backend.PeakBytesInUse(device));
    }
}
