using Mamba4.Models;

namespace Mamba4.Tasks.Forecasting;

/// <summary>Every setting of `mamba4 forecast compare`: the models × horizons grid and what every run shares.</summary>
public sealed record ForecastCompareSettings
{
    /// <summary>What every run shares (series, sizes, training, device); its model, horizon, output folder, resume
    /// and stop-after are set per run.</summary>
    public ForecastTrainSettings Runs { get; init; } = new();
    public IReadOnlyList<string> Models { get; init; } = ForecasterConfig.Models;
    public IReadOnlyList<int> Horizons { get; init; } = [96];
    /// <summary>The comparison's folder: report.html, and each run under &lt;model&gt;-&lt;horizon&gt;.</summary>
    public string? OutputDirectory { get; init; }

    public string OutputOrDefault => OutputDirectory ?? Path.Combine("runs", "forecast", $"{Runs.DataName}-compare");

    /// <summary>The settings of the run of <paramref name="model"/> at <paramref name="horizon"/>.</summary>
    public ForecastTrainSettings Run(string model, int horizon) => Runs with
    {
        Model = model, Horizon = horizon, OutputDirectory = Path.Combine(OutputOrDefault, $"{model}-{horizon}"), Resume = false, StopAfter = null,
    };

    public void Validate()
    {
        if (Models.Count == 0) throw new ArgumentException("--models is empty");
        if (Horizons.Count == 0) throw new ArgumentException("--horizons is empty");
        foreach (var h in Horizons) if (h <= 0) throw new ArgumentException($"--horizons: '{h}' is not a positive integer");
        foreach (var m in Models) Run(m, Horizons[0]).Validate();
    }
}
