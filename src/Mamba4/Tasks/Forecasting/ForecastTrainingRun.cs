using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Data.TimeSeries;
using Mamba4.Models;
using Mamba4.Training;

namespace Mamba4.Tasks.Forecasting;

/// <summary>
/// `mamba4 forecast train`: one forecaster trained with early stopping on the validation split and tested with its
/// best weights, in a run folder: checkpoint.safetensors (a stop request writes one; resume continues exactly),
/// best.safetensors, metrics.jsonl, run.json, result.json, report.html and model/ (<see cref="SavedForecaster"/>).
/// </summary>
public static class ForecastTrainingRun
{
    public const string ResultFile = "result.json";

    /// <summary>Reads and prepares the series, then trains (see <see cref="Train"/>).</summary>
    public static ForecastTrainResult Run(ForecastTrainSettings s, IRunProgress progress, StopSignal stop, TextWriter log)
    {
        s.Validate();
        RunDirectory.At(s.OutputOrDefault).CheckResume(s.Resume);   // before the series is read and prepared
        var table = s.ReadTable();
        return Train(s, s.Prepare(table), progress, stop, log);
    }

    /// <summary>
    /// One run on series already prepared for <paramref name="s"/>'s input length and horizon; status lines (the run,
    /// each epoch's validation) go to <paramref name="log"/>, step progress to <paramref name="progress"/> (null: none).
    /// A stop request writes a checkpoint and returns an interrupted result.
    /// </summary>
    public static ForecastTrainResult Train(ForecastTrainSettings s, ForecastData data, IRunProgress? progress, StopSignal stop, TextWriter log)
    {
        var config = s.Config(data);
        var training = s.Training();
        var dir = RunDirectory.Open(s.OutputOrDefault, s.Resume, log);
        using var run = new ForecastTrainer(data, config, training, dir.Path, s.Device);
        if (s.Resume && run.Resume())
            log.WriteLine($"resuming at step {run.Trainer.Step} (epoch {run.Trainer.Step / run.StepsPerEpoch}) from {dir.CheckpointPath}");
        var runJson = run.RunConfig.DeepClone().AsObject();
        runJson["split_spec"] = data.Splits.Description.StartsWith("ratio", StringComparison.Ordinal) ? RatioSpec(data.Splits) : data.Splits.Description;
        dir.WriteRunJson(runJson, s.Device, Backends.Backend.Settings);
        string name = $"{config.Model} h{config.Horizon}";
        log.WriteLine($"{name}: {data.Table.Source}, {data.Variables} variables, split {data.Splits.Description} " +
            $"(train {data.Train.Count}, val {data.Validation.Count}, test {data.Test.Count} windows), input {config.InputLength}, " +
            $"{run.Model.ParameterCount:N0} parameters, up to {training.Epochs} epochs × {run.StepsPerEpoch} steps of {training.Batch}");
        run.EpochDone += e => log.WriteLine($"  epoch {e.Epoch}: validation MSE {e.Mse:F4}, MAE {e.Mae:F4}{(e.Improved ? " (best)" : "")}, {e.TrainSeconds:F1} s");

        var result = WithProgress(name, run, progress, () => stop.Requested);
        var outcome = new ForecastTrainResult(data.Table.Source, s.DataName, data.Variables, data.Test.Count, config, result, dir.Path);
        if (result.Interrupted)
        {
            log.WriteLine($"{name}: stopped at step {run.Trainer.Step}; checkpoint written to {dir.CheckpointPath}. Continue with --resume.");
            return outcome;
        }
        var json = outcome.ToJson();
        var info = runJson.DeepClone().AsObject();
        info["test"] = json.DeepClone();
        SavedForecaster.Save(dir.ModelPath, run.Model, data, info);
        IO.AtomicFile.WriteAllText(Path.Combine(dir.Path, ResultFile), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        WriteReport(dir, run, data, config, result);
        return outcome;
    }

    /// <summary>A ratio split as the ratios of its row counts, so that `forecast eval` re-derives the same rows.</summary>
    private static string RatioSpec(DataSplits s)
    {
        int n = s.Test.End;
        return "ratio:" + string.Join(",", new[] { s.Train.Length, s.Validation.End - s.Train.End, s.Test.End - s.Validation.End }
            .Select(v => (v / (double)n).ToString("R", CultureInfo.InvariantCulture)));
    }

    private static ForecastResult WithProgress(string name, ForecastTrainer run, IRunProgress? progress, Func<bool> stop)
    {
        if (progress is null) return run.Run(stop);
        long steps = run.TotalSteps;
        double lastVal = double.NaN;
        run.EpochDone += e => lastVal = e.Mse;
        string Describe(StepReport r) =>
            $"epoch {Math.Min(r.Step / run.StepsPerEpoch + 1, steps / run.StepsPerEpoch)}  loss {r.Loss:F4}  val {(double.IsNaN(lastVal) ? "-" : lastVal.ToString("F4", CultureInfo.InvariantCulture))}  {r.TokensPerSecond:F0} windows/s";
        return progress.Follow(name, run.Trainer, steps, () => run.Run(stop), Describe, fillAtEnd: true);
    }

    private static void WriteReport(RunDirectory dir, ForecastTrainer run, ForecastData data, ForecasterConfig config, ForecastResult result)
    {
        var lines = dir.ReadMetrics();
        // Training loss averaged over blocks of a tenth of an epoch (single steps are noisy).
        int block = Math.Max(1, run.StepsPerEpoch / 10);
        var loss = lines.Where(l => l.ContainsKey("loss")).Select(l => (Step: l["step"]!.GetValue<long>(), Loss: l["loss"]!.GetValue<double>()))
            .GroupBy(x => (x.Step - 1) / block).Select(g => (g.Max(x => x.Step) / (double)run.StepsPerEpoch, g.Average(x => x.Loss))).ToList();
        var val = lines.Where(l => l["eval"]?["val_mse"] is not null).Select(l => (l["eval"]!["epoch"]!.GetValue<double>(), l["eval"]!["val_mse"]!.GetValue<double>())).ToList();
        var report = new HtmlReport($"Forecasting: {config.Model} on {Path.GetFileName(data.Table.Source)}, input {config.InputLength}, horizon {config.Horizon}")
            .Paragraph($"Data {data.Table.Source}: {data.Table.Rows} rows × {data.Variables} variables ({string.Join(", ", data.Table.Columns)}); split {data.Splits.Description}: " +
                $"train rows {data.Splits.Train}, validation {data.Splits.Validation}, test {data.Splits.Test}; z-score of the training rows. Written {DateTime.UtcNow:u}.")
            .Table(["", "MSE", "MAE"],
            [
                ["test (every window, normalised)", result.Mse.ToString("F4", CultureInfo.InvariantCulture), result.Mae.ToString("F4", CultureInfo.InvariantCulture)],
                ["validation", result.ValidationMse.ToString("F4", CultureInfo.InvariantCulture), result.ValidationMae.ToString("F4", CultureInfo.InvariantCulture)],
            ])
            .Paragraph($"{result.Parameters:N0} parameters; {result.Epochs} epochs (best {result.BestEpoch}{(result.EarlyStopped ? ", stopped early" : "")}), {result.SecondsPerEpoch:F1} s per epoch. Model: {config.ToJson().ToJsonString()}")
            .Chart("Training loss (MSE, normalised; mean over a tenth of an epoch)", "epoch", "loss (log scale)", [("train", loss)], logY: true)
            .Chart("Validation MSE", "epoch", "MSE", [("validation", val)]);
        // A few test windows, last variable (the target of ETT's univariate setting), original units.
        int v = data.Variables - 1, l = config.InputLength, h = config.Horizon;
        foreach (var w in new[] { 0, data.Test.Count / 2, data.Test.Count - 1 }.Distinct())
        {
            var batch = data.Test.Batch([w]);
            var pred = run.Model.Predict(batch);
            int start = data.Test.StartRow(w);
            var history = Enumerable.Range(0, l).Select(t => ((double)(t - l + 1), data.Normalizer.Denormalize(batch.Inputs[t * data.Variables + v], v))).ToList();
            var truth = Enumerable.Range(0, h).Select(t => ((double)(t + 1), data.Normalizer.Denormalize(batch.Targets![t * data.Variables + v], v))).ToList();
            var forecast = Enumerable.Range(0, h).Select(t => ((double)(t + 1), data.Normalizer.Denormalize(pred[t * data.Variables + v], v))).ToList();
            var when = data.Table.Timestamps is { } ts ? $" from {ts[start + l]:yyyy-MM-dd HH:mm}" : $" from row {start + l}";
            report.Chart($"Test window {w}{when}: {data.Table.Columns[v]}", "steps from the forecast origin", data.Table.Columns[v],
                [("history", history), ("truth", truth), ("forecast", forecast)]);
        }
        report.Save(dir.ReportPath);
    }
}
