namespace Mamba4.Tasks.Forecasting;

/// <summary>How a forecaster is trained: epochs over shuffled training windows, early stopping on validation MSE.</summary>
public sealed record ForecastTrainOptions
{
    public int Epochs { get; init; } = 10;
    public int Batch { get; init; } = 32;
    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>Warm-up steps of the learning rate, then cosine decay to a tenth over all epochs.</summary>
    public long WarmupSteps { get; init; } = 100;
    public float WeightDecay { get; init; }
    /// <summary>Gradient clipping by global norm (0 = off).</summary>
    public double ClipNorm { get; init; } = 1.0;
    /// <summary>Epochs without a better validation MSE before training stops (0 = never stop early).</summary>
    public int Patience { get; init; } = 3;
    public long Seed { get; init; } = 1;
    /// <summary>Windows per forward pass when validating and testing (no effect on the metrics).</summary>
    public int EvalBatch { get; init; } = ForecastEvaluation.DefaultBatch;
    public long? StopAfter { get; init; }

    public void Validate()
    {
        if (Epochs <= 0) throw new ArgumentException($"--epochs must be positive, got {Epochs}");
        if (Batch <= 0) throw new ArgumentException($"--batch must be positive, got {Batch}");
        if (!(LearningRate > 0 && float.IsFinite(LearningRate))) throw new ArgumentException($"--lr must be positive, got {LearningRate}");
        if (WarmupSteps < 0) throw new ArgumentException($"--warmup must be 0 or more, got {WarmupSteps}");
        if (!(ClipNorm >= 0) || !double.IsFinite(ClipNorm)) throw new ArgumentException($"--clip must be 0 or more, got {ClipNorm}");
        if (!(WeightDecay >= 0 && float.IsFinite(WeightDecay))) throw new ArgumentException($"--weight-decay must be 0 or more, got {WeightDecay}");
        if (Patience < 0) throw new ArgumentException($"--patience must be 0 or more, got {Patience}");
        if (EvalBatch <= 0) throw new ArgumentException($"eval batch must be positive, got {EvalBatch}");
    }
}
