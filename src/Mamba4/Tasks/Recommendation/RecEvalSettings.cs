using Mamba4.Tensors;

namespace Mamba4.Tasks.Recommendation;

/// <summary>Every setting of `mamba4 rec eval`, with its default.</summary>
public sealed record RecEvalSettings
{
    /// <summary>A model directory (written by `rec train`, or a fixture).</summary>
    public required string Checkpoint { get; init; }
    /// <summary>The model kind when config.json does not say.</summary>
    public string? Kind { get; init; }
    public RecDataSettings Data { get; init; } = new();
    /// <summary>Most recent items a prediction sees; null = the model's.</summary>
    public int? MaxLen { get; init; }
    /// <summary>Also print the test metrics by history length, target popularity and repeats.</summary>
    public bool Breakdown { get; init; }
    /// <summary>A TSV file for each test user's rank; null = none.</summary>
    public string? RanksFile { get; init; }
    /// <summary>Users per full-ranking batch (memory, not results).</summary>
    public int EvalBatch { get; init; } = 1024;
    public Device Device { get; init; } = Device.Cpu;
    /// <summary>How the model is loaded (--allow-nonfinite).</summary>
    public IO.ModelLoadOptions Load { get; init; } = IO.ModelLoadOptions.Default;

    public void Validate()
    {
        if (EvalBatch < 1) throw new ArgumentException($"evaluation batch must be positive, got {EvalBatch}");
        if (MaxLen is { } maxLen) Models.ModelLimits.Check("--max-len", maxLen, Models.ModelLimits.Positions);
    }
}
