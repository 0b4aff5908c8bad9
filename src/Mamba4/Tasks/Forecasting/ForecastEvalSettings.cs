using Mamba4.Data.TimeSeries;
using Mamba4.Tensors;

namespace Mamba4.Tasks.Forecasting;

/// <summary>Every setting of `mamba4 forecast eval`, with its default.</summary>
public sealed record ForecastEvalSettings
{
    /// <summary>A run folder written by `mamba4 forecast train` (its model/ is evaluated).</summary>
    public required string Run { get; init; }
    /// <summary>The CSV to evaluate on; null = the run's own data.</summary>
    public string? Data { get; init; }
    /// <summary>The split (see <see cref="Splits.Resolve"/>); null = the run's.</summary>
    public string? Split { get; init; }
    public FillMethod Fill { get; init; } = FillMethod.None;
    /// <summary>Also score the streaming forecast (the recurrent state has read the series from its first row).</summary>
    public bool Stream { get; init; }
    /// <summary>Windows per forward pass (no effect on the metrics).</summary>
    public int EvalBatch { get; init; } = ForecastEvaluation.DefaultBatch;
    public Device Device { get; init; } = Device.Cpu;
    /// <summary>How the model is loaded (--allow-nonfinite).</summary>
    public IO.ModelLoadOptions Load { get; init; } = IO.ModelLoadOptions.Default;

    public void Validate()
    {
        if (EvalBatch <= 0) throw new ArgumentException($"eval batch must be positive, got {EvalBatch}");
    }
}
