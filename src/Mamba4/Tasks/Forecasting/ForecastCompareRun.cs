using Mamba4.Training;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// `mamba4 forecast compare`: several models and horizons trained one after the other on the same series and protocol
/// (each a <see cref="ForecastTrainingRun"/> under &lt;out&gt;/&lt;model&gt;-&lt;horizon&gt;), then one table in report.html.
/// Every run's settings are checked before the first one starts.
/// </summary>
public static class ForecastCompareRun
{
    public static ForecastCompareResult Run(ForecastCompareSettings s, StopSignal stop, TextWriter log)
    {
        s.Validate();
        var table = s.Runs.ReadTable();
        var plans = new List<(ForecastTrainSettings Settings, ForecastData Data)>();
        foreach (var h in s.Horizons)
        {
            var data = s.Run(s.Models[0], h).Prepare(table);
            foreach (var m in s.Models)
            {
                var run = s.Run(m, h);
                run.Config(data);   // the model checked on this data before any run starts
                plans.Add((run, data));
            }
        }
        var runs = new List<ForecastTrainResult>();
        ForecastCompareResult Result() => new(table.Source, s.Runs.DataName, s.Runs.InputLength, plans[0].Data.Splits.Description, runs.ToArray(), s.OutputOrDefault);
        foreach (var (settings, data) in plans)
        {
            var r = ForecastTrainingRun.Train(settings, data, progress: null, stop, log);
            runs.Add(r);
            if (r.Interrupted) return Result();
            log.WriteLine($"{r.Config.Model} horizon {r.Config.Horizon}: MSE {r.Test.Mse:F4}, MAE {r.Test.Mae:F4}, {r.Test.SecondsPerEpoch:F1} s/epoch");
        }
        var compared = Result();
        new HtmlReport($"Forecasting comparison: {compared.DataName}")
            .Paragraph($"Data {compared.DataSource}, split {compared.Split}, input {compared.InputLength}. MSE and MAE on the z-scored scale over every test window.")
            .Table([.. ForecastCompareResult.Header], compared.Cells)
            .Save(compared.ReportPath);
        return compared;
    }
}
