using Mamba4.Data.TimeSeries;
using Mamba4.Tensors;

namespace Mamba4.Tasks.Forecasting;

/// <summary>Every setting of `mamba4 forecast predict`, with its default.</summary>
public sealed record ForecastPredictSettings
{
    /// <summary>A run folder written by `mamba4 forecast train`, or a model folder holding forecaster.json.</summary>
    public required string Run { get; init; }
    /// <summary>The series so far, a CSV with the model's columns; null = the run's own data.</summary>
    public string? Data { get; init; }
    /// <summary>The CSV file to write; null = the output writer.</summary>
    public string? OutputPath { get; init; }
    public FillMethod Fill { get; init; } = FillMethod.None;
    /// <summary>Read the whole series through the recurrent state (a temporal Mamba forecaster without RevIN).</summary>
    public bool Stream { get; init; }
    /// <summary>With <see cref="Stream"/>: then read new rows from the input and write the updated forecast after each.</summary>
    public bool Follow { get; init; }
    public Device Device { get; init; } = Device.Cpu;
    /// <summary>How the model is loaded (--allow-nonfinite).</summary>
    public IO.ModelLoadOptions Load { get; init; } = IO.ModelLoadOptions.Default;

    public void Validate()
    {
        if (Follow && !Stream) throw new ArgumentException("--follow needs --stream");
    }
}
