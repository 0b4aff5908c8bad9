using System.Text.Json.Nodes;
using Mamba4.Models;

namespace Mamba4.Tasks.Forecasting;

/// <summary>One forecasting run's outcome: what was trained on what, and its test metrics (<see cref="ForecastResult"/>).</summary>
public sealed record ForecastTrainResult(string DataSource, string DataName, int Variables, int TestWindows, ForecasterConfig Config, ForecastResult Test, string OutputDirectory)
{
    public bool Interrupted => Test.Interrupted;
    public string ReportPath => Path.Combine(OutputDirectory, RunDirectory.ReportFile);

    public string Summary =>
        $"{DataName} {Config.Model} input {Config.InputLength} horizon {Config.Horizon}: test MSE {Test.Mse:F4}, MAE {Test.Mae:F4} " +
        $"(best epoch {Test.BestEpoch}, {Test.SecondsPerEpoch:F1} s/epoch, {Test.Parameters:N0} parameters); report: {ReportPath}";

    /// <summary>The run's result.json (and the --json line).</summary>
    public JsonObject ToJson() => new()
    {
        ["data"] = DataSource, ["model"] = Config.Model, ["embedding"] = Config.Model == "linear" ? null : Config.Embedding,
        ["input_len"] = Config.InputLength, ["horizon"] = Config.Horizon, ["variables"] = Variables,
        ["mse"] = Test.Mse, ["mae"] = Test.Mae, ["val_mse"] = Test.ValidationMse, ["val_mae"] = Test.ValidationMae,
        ["test_windows"] = TestWindows, ["epochs"] = Test.Epochs, ["best_epoch"] = Test.BestEpoch, ["early_stopped"] = Test.EarlyStopped,
        ["seconds_per_epoch"] = Math.Round(Test.SecondsPerEpoch, 3), ["seconds"] = Math.Round(Test.Seconds, 2), ["parameters"] = Test.Parameters,
    };
}
