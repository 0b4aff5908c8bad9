using System.Text.Json.Nodes;

namespace Mamba4.Tasks.Recommendation;

/// <summary>One recommender trained by `mamba4 rec train` or `compare`: the model, the data it saw, where its best model is, and the outcome.</summary>
public sealed record RecRunResult(string Kind, RecObjective Objective, int Users, int Items, long Interactions, string ModelPath, RecTrainResult Train)
{
    /// <summary>The best validation epoch and the test metrics of that model, two lines.</summary>
    public string Summary =>
        $"{Kind}: best validation ndcg@10 {Train.Valid.GetValueOrDefault("ndcg@10"):F4} at epoch {Train.BestEpoch} of {Train.EpochsRun}" +
        $"{(Train.EarlyStopped ? " (early stopped)" : "")}; {Train.SecondsPerEpoch:F1} s/epoch; model: {ModelPath}" + Environment.NewLine +
        "test  " + string.Join("  ", Train.Test.Select(kv => $"{kv.Key} {kv.Value:F4}"));

    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["model"] = Kind, ["objective"] = RecTrainOptions.Name(Objective), ["users"] = Users, ["items"] = Items, ["interactions"] = Interactions,
        };
        foreach (var (k, v) in Train.Test) o[k] = Math.Round(v, 6);
        foreach (var (k, v) in Train.Valid) o["valid_" + k] = Math.Round(v, 6);
        o["epochs"] = Train.EpochsRun;
        o["best_epoch"] = Train.BestEpoch;
        o["early_stopped"] = Train.EarlyStopped;
        o["seconds"] = Math.Round(Train.Seconds, 2);
        o["seconds_per_epoch"] = Math.Round(Train.SecondsPerEpoch, 3);
        o["train_seconds_per_epoch"] = Math.Round(Train.TrainSecondsPerEpoch, 3);
        o["inference_ms_per_batch"] = Math.Round(Train.InferenceMsPerBatch, 2);
        o["peak_memory_bytes"] = Train.PeakBytes;
        return o;
    }
}
