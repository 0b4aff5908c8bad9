using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.Data.Recommendation;
using Mamba4.Models;
using Mamba4.Nn;

namespace Mamba4.Tasks.Recommendation;

/// <summary>
/// `mamba4 rec train`: one sequential recommender on a leave-one-out split — an epoch line per validation on the log,
/// checkpoint, metrics.jsonl and run.json in the output folder, the best model in its model/ folder, then the test
/// metrics of that model. A stop request writes a checkpoint and returns (--resume continues exactly).
/// </summary>
public static class RecTrainingRun
{
    public static RecRunResult Run(RecTrainSettings s, StopSignal stop, TextWriter log)
    {
        s.Validate();
        var dir = RunDirectory.Open(s.OutputOrDefault, s.Resume, log);
        var data = s.Data.Load(log);
        var result = Train(s, data, dir, stop, log);
        if (result.Train.Interrupted) log.WriteLine($"stopped at epoch {result.Train.EpochsRun}; checkpoint written. Continue with --resume.");
        return result;
    }

    /// <summary>
    /// Trains <paramref name="s"/>'s model in <paramref name="dir"/> (continuing from its checkpoint when resuming and there
    /// is one; the resume guard is the caller's) and tests the best model. `compare` calls it once per model.
    /// </summary>
    internal static RecRunResult Train(RecTrainSettings s, SequenceDataset data, RunDirectory dir, StopSignal stop, TextWriter log)
    {
        string kind = RecModels.ParseKind(s.Model.Kind);
        var options = s.Training with { OutputDirectory = dir.Path };
        var split = LeaveOneOutSplit.Create(data);
        var model = RecModels.Create(s.Model, data.NItems, (int)options.Seed);
        var module = (Module)model;
        try
        {
            module.To(s.Device);
            var config = RunConfig(s, kind, data, model);
            using var exp = new RecExperiment(split, model, s.Model.MaxLen, options, config) { ItemTokens = data.ItemTokens };
            if (s.Resume && exp.Resume())
                log.WriteLine($"{kind}: resuming at step {exp.Trainer.Step} (epoch {exp.Trainer.Step / exp.StepsPerEpoch})");
            dir.WriteRunJson(config, s.Device, Backends.Backend.Settings);
            log.WriteLine($"{kind}: {module.ParameterCount:N0} parameters; {split.Train.Length:N0} training targets " +
                          $"({exp.UnitsPerEpoch:N0} {(options.Objective == RecObjective.AllPositions ? "user windows" : "samples")}, {exp.UnitsPerStep:N0} per step, " +
                          $"{exp.StepsPerEpoch} steps/epoch, objective {RecTrainOptions.Name(options.Objective)}), " +
                          $"{split.Valid.Length:N0} validation / {split.Test.Length:N0} test users, max_len {s.Model.MaxLen}");
            exp.EpochDone += r => log.WriteLine(EpochLine(kind, r, options.Patience));
            var result = exp.Run(() => stop.Requested);
            return new RecRunResult(kind, options.Objective, data.UserCount, data.NItems - 1, data.InteractionCount, dir.ModelPath, result);
        }
        finally { module.Dispose(); }
    }

    /// <summary>What defines the run: a checkpoint resumes only into the same configuration; run.json records it.</summary>
    private static JsonObject RunConfig(RecTrainSettings s, string kind, SequenceDataset data, ISequentialRecommender model)
    {
        var t = s.Training;
        var o = new JsonObject { ["task"] = "rec" };
        foreach (var (k, v) in s.Data.ToJson()) o[k] = v?.DeepClone();
        o["n_items"] = data.NItems;
        o["users"] = data.UserCount;
        o["model"] = kind;
        o["model_config"] = RecModels.ConfigJson(model, s.Model.MaxLen);
        o["max_len"] = s.Model.MaxLen;
        if (kind is "sasrec" or "bert4rec") o["attention"] = s.Model.Attention;
        o["epochs"] = t.Epochs;
        o["patience"] = t.Patience;
        o["batch"] = t.Batch;
        o["lr"] = t.LearningRate;
        o["weight_decay"] = t.WeightDecay;
        o["clip"] = t.ClipNorm;
        o["objective"] = RecTrainOptions.Name(t.Objective);
        o["seed"] = t.Seed;
        return o;
    }

    private static string EpochLine(string kind, RecEpochReport r, int patience) => string.Create(CultureInfo.InvariantCulture,
        $"  {kind} epoch {r.Epoch}/{r.Epochs}  loss {r.Loss:F4}  valid hit@10 {r.Valid["hit@10"]:F4} ndcg@10 {r.Valid["ndcg@10"]:F4} mrr@10 {r.Valid["mrr@10"]:F4}" +
        $"  best {r.BestNdcg:F4} @{r.BestEpoch}  {r.SecondsThisEpoch:F1} s  eta {Eta(r.SecondsPerEpoch * (r.Epochs - r.Epoch))} (or early stop in {patience - r.EpochsWithoutImprovement})");

    private static string Eta(double s) =>
        double.IsFinite(s) ? s >= 3600 ? $"{(int)(s / 3600)}h{(int)(s % 3600 / 60):D2}m" : s >= 60 ? $"{(int)(s / 60)}m{(int)(s % 60):D2}s" : $"{s:F0}s" : "-";
}
