using System.Globalization;
using System.Text.Json.Nodes;

namespace Mamba4.Tasks.Recommendation;

/// <summary>The models of `mamba4 rec compare` in training order (those finished when it was stopped), as one table.</summary>
public sealed record RecCompareResult(IReadOnlyList<RecRunResult> Models, bool Interrupted, int EvalBatch)
{
    public static readonly string Header =
        $"{"model",-10} {"hit@10",8} {"ndcg@10",8} {"mrr@10",8} {"best ep",8} {"epochs",7} {"s/epoch",8} {"train s",8} {"peak MB",8} {"ms/batch",9}";

    public static string Row(RecRunResult m)
    {
        var r = m.Train;
        return string.Create(CultureInfo.InvariantCulture,
            $"{m.Kind,-10} {r.Test["hit@10"],8:F4} {r.Test["ndcg@10"],8:F4} {r.Test["mrr@10"],8:F4} {r.BestEpoch,8} {r.EpochsRun,7} {r.SecondsPerEpoch,8:F1} " +
            $"{r.TrainSecondsPerEpoch,8:F1} {r.PeakBytes / 1048576.0,8:F0} {r.InferenceMsPerBatch,9:F1}");
    }

    /// <summary>What the table's columns measure.</summary>
    public string Legend => "(s/epoch: training + validation; train s: training only; peak MB: peak tensor memory on the model's device (GPU memory on a GPU) during its run; " +
                            $"ms/batch: full-ranking test inference per batch of {EvalBatch} users)";

    public void WriteTable(TextWriter output)
    {
        output.WriteLine(Header);
        foreach (var m in Models) output.WriteLine(Row(m));
    }

    /// <summary>Each model's <see cref="RecRunResult.ToJson"/> under its name.</summary>
    public JsonObject ToJson() => new(Models.Select(m => KeyValuePair.Create(m.Kind, (JsonNode?)m.ToJson())));
}
