namespace Mamba4.Tasks.Recommendation;

/// <summary>The protocol of a run; the defaults are RecBole's / Mamba4Rec's reference setup.</summary>
public sealed record RecTrainOptions
{
    public int Epochs { get; init; } = 300;
    public int Patience { get; init; } = 10;
    /// <summary>Training targets per step: RecBole samples, or (all positions) about this many targets' worth of user windows.</summary>
    public int Batch { get; init; } = 2048;
    public float LearningRate { get; init; } = 1e-3f;
    public RecObjective Objective { get; init; } = RecObjective.AllPositions;
    public long Seed { get; init; } = 1;
    public int EvalBatch { get; init; } = 1024;
    /// <summary>Folder for checkpoint.safetensors, metrics.jsonl and model/ (required).</summary>
    public string OutputDirectory { get; init; } = "runs/rec";
    /// <summary>Stop (with a checkpoint) after this many steps of this invocation, as an interruption would.</summary>
    public long? StopAfter { get; init; }

    public static RecObjective ParseObjective(string name) => name.Trim().ToLowerInvariant() switch
    {
        "all" or "all-positions" or "allpositions" => RecObjective.AllPositions,
        "recbole" or "prefix" => RecObjective.RecBole,
        _ => throw new ArgumentException($"unknown objective '{name}'; expected all-positions or recbole"),
    };

    public static string Name(RecObjective o) => o == RecObjective.AllPositions ? "all-positions" : "recbole";
}
