using System.Globalization;
using System.Text.Json.Nodes;

namespace Mamba4.Tasks.Forecasting;

/// <summary>The runs of a comparison, in order (models within horizons), as a table and as JSON.</summary>
public sealed record ForecastCompareResult(string DataSource, string DataName, int InputLength, string Split, IReadOnlyList<ForecastTrainResult> Runs, string OutputDirectory)
{
    public static readonly IReadOnlyList<string> Header = ["model", "horizon", "MSE", "MAE", "s/epoch", "epochs", "parameters"];

    /// <summary>True when a stop request ended a run (the later ones did not start).</summary>
    public bool Interrupted => Runs.Any(r => r.Interrupted);
    public string ReportPath => Path.Combine(OutputDirectory, RunDirectory.ReportFile);
    public string Title => $"{DataName}, input {InputLength}: test metrics on the normalised scale";

    /// <summary>One row per run under <see cref="Header"/>.</summary>
    public IReadOnlyList<string[]> Cells => Runs.Select(r => new[]
    {
        r.Config.Model, r.Config.Horizon.ToString(CultureInfo.InvariantCulture), r.Test.Mse.ToString("F4", CultureInfo.InvariantCulture),
        r.Test.Mae.ToString("F4", CultureInfo.InvariantCulture), r.Test.SecondsPerEpoch.ToString("F1", CultureInfo.InvariantCulture),
        r.Test.Epochs.ToString(CultureInfo.InvariantCulture), r.Test.Parameters.ToString("N0", CultureInfo.InvariantCulture),
    }).ToList();

    public JsonObject ToJson() => new()
    {
        ["data"] = DataSource,
        ["results"] = new JsonArray(Runs.Select(r => (JsonNode)new JsonObject
        {
            ["model"] = r.Config.Model, ["horizon"] = r.Config.Horizon, ["mse"] = r.Test.Mse, ["mae"] = r.Test.Mae,
            ["seconds_per_epoch"] = r.Test.SecondsPerEpoch, ["epochs"] = r.Test.Epochs, ["parameters"] = r.Test.Parameters,
        }).ToArray()),
    };
}
