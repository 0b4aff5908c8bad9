using Mamba4.Training;
namespace Mamba4.Tasks.Recommendation;

/// <summary>
/// The protocol of a run; the defaults are RecBole's / Mamba4Rec's reference setup: Adam (AdamW without weight decay)
/// at a constant rate, no gradient clipping, validation after every epoch, early stopping on validation ndcg@10.
/// </summary>
public sealed record RecTrainOptions
{
    public int Epochs { get; init; } = 300;
    public int Patience { get; init; } = 10;
    /// <summary>Training targets per step: RecBole samples, or (all positions) about this many targets' worth of user windows.</summary>
    public int Batch { get; init; } = 2048;
    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>AdamW's decoupled weight decay (0: plain Adam, as RecBole).</summary>
    public float WeightDecay { get; init; }
    /// <summary>Gradient clipping by global norm (0 = off, as RecBole).</summary>
    public double ClipNorm { get; init; }
    public RecObjective Objective { get; init; } = RecObjective.AllPositions;
    public long Seed { get; init; } = 1;
    /// <summary>Users per full-ranking batch of validation and test (memory, not results).</summary>
    public int EvalBatch { get; init; } = 1024;
    /// <summary>Folder for checkpoint.safetensors, metrics.jsonl and model/ (required).</summary>
    public string OutputDirectory { get; init; } = "runs/rec";
    /// <summary>Stop (with a checkpoint) after this many steps of this invocation, as an interruption would.</summary>
    public long? StopAfter { get; init; }

    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentException($"--epochs must be positive, got {Epochs}");
        if (Patience < 1) throw new ArgumentException($"--patience must be positive, got {Patience}");
        if (Batch < 1 || Batch > Trainer.MaxTokensPerStep)
            throw new ArgumentException($"--batch must be a positive integer ≤ {Trainer.MaxTokensPerStep} (training targets per step), got {Batch}");
        if (!(LearningRate > 0 && float.IsFinite(LearningRate))) throw new ArgumentException($"--lr must be positive, got {LearningRate}");
        if (!(WeightDecay >= 0) || !float.IsFinite(WeightDecay)) throw new ArgumentException($"weight decay must be ≥ 0, got {WeightDecay}");
        if (!(ClipNorm >= 0) || !double.IsFinite(ClipNorm)) throw new ArgumentException($"gradient clipping norm must be ≥ 0, got {ClipNorm}");
        if (EvalBatch < 1) throw new ArgumentException($"evaluation batch must be positive, got {EvalBatch}");
    }

    public static RecObjective ParseObjective(string name) => name.Trim().ToLowerInvariant() switch
    {
        "all" or "all-positions" or "allpositions" => RecObjective.AllPositions,
        "recbole" or "prefix" => RecObjective.RecBole,
        _ => throw new ArgumentException($"unknown objective '{name}'; expected all-positions or recbole"),
    };

    public static string Name(RecObjective o) => o == RecObjective.AllPositions ? "all-positions" : "recbole";
}
