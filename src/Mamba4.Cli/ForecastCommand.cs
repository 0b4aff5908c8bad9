using System.CommandLine;
using Mamba4.Data.TimeSeries;
using Mamba4.Tasks;
using Mamba4.Tasks.Forecasting;
using Spectre.Console;

namespace Mamba4.Cli;

/// <summary>`mamba4 forecast train | eval | predict | compare`: multivariate time-series forecasting.</summary>
internal static class ForecastCommand
{
    private static readonly ForecastTrainSettings Defaults = new();

    public static Command Create()
    {
        var cmd = new Command("forecast", """
            Time-series forecasting: Mamba, DLinear and a Transformer encoder on the long-term forecasting
            protocol (train/validation/test splits of the literature, z-score of the training rows, MSE and
            MAE on the normalised scale over every test window). Without --data a built-in synthetic series
            (daily and weekly seasonalities + noise) is used.

            Examples:
              mamba4 forecast train --data ETTh1.csv
              mamba4 forecast compare --data ETTh1.csv --horizons 96,192
              mamba4 forecast predict --run runs/forecast/ETTh1-mamba-96-96 --data ETTh1.csv --out next.csv
            """);
        cmd.Subcommands.Add(TrainCmd());
        cmd.Subcommands.Add(EvalCmd());
        cmd.Subcommands.Add(PredictCmd());
        cmd.Subcommands.Add(CompareCmd());
        return cmd;
    }

    /// <summary>The options shared by train and compare: the series, the model's sizes and training (null: the model kind's defaults).</summary>
    private sealed class Common
    {
        public readonly Option<string?> Data = new("--data") { Description = "CSV file (or .csv.gz): a date column and numeric columns (default: a built-in synthetic series)" };
        public readonly Option<string?> Target = new("--target") { Description = "columns to read and forecast, comma-separated (default: every column but the date)" };
        public readonly Option<string?> DateColumn = new("--date-column") { Description = "the timestamp column (default: date, datetime, timestamp or time when present)" };
        public readonly Option<string> Fill = new("--fill") { Description = "missing values: none (an error), ffill, linear or zero", DefaultValueFactory = _ => "none" };
        public readonly Option<string> Split = new("--split") { Description = "auto (ETT for ETTh*/ETTm* files, else ratio), ett-hour, ett-minute, ratio, ratio:TRAIN,VAL,TEST", DefaultValueFactory = _ => Defaults.Split };
        public readonly Option<int> InputLen = new("--input-len") { Description = "input window (steps)", DefaultValueFactory = _ => Defaults.InputLength };
        public readonly Option<string?> Embedding = new("--embedding") { Description = "variate (one token per variable, default) or temporal (one token per step; streams)" };
        public readonly Option<bool> TimeFeatures = new("--time-features") { Description = "feed calendar features (hour, weekday, day of month/year) beside the values" };
        public readonly Option<bool?> RevIn = new("--revin") { Description = "reversible instance normalisation (default: on for mamba/transformer, off for linear)" };
        public readonly Option<int?> DModel = new("--d-model") { Description = "model width" };
        public readonly Option<int?> Layers = new("--layers") { Description = "Mamba / encoder layers" };
        public readonly Option<int?> DState = new("--d-state") { Description = "SSM state size per channel (mamba)" };
        public readonly Option<int?> DConv = new("--d-conv") { Description = "causal conv width (mamba)" };
        public readonly Option<int?> Expand = new("--expand") { Description = "inner width factor (mamba)" };
        public readonly Option<int?> DFf = new("--d-ff") { Description = "feed-forward width" };
        public readonly Option<int?> Heads = new("--heads") { Description = "attention heads (transformer)" };
        public readonly Option<float?> Dropout = new("--dropout") { Description = "dropout probability" };
        public readonly Option<bool?> Bidirectional = new("--bidirectional") { Description = "mamba with variate tokens: also read the tokens in reverse, as S-Mamba (default off)" };
        public readonly Option<string?> Mixer = new("--mixer") { Description = "mamba's mixer: mamba1 (default) | mamba2 (SSD, multi-head)" };
        public readonly Option<int?> HeadDim = new("--head-dim") { Description = "mamba2: head width (default: ≤ 64 dividing expand·d_model, at least 4 heads)" };
        public readonly Option<int?> Epochs = new("--epochs") { Description = "maximum epochs" };
        public readonly Option<int?> Batch = new("--batch") { Description = "windows per step" };
        public readonly Option<float?> Lr = new("--lr") { Description = "peak learning rate (warm-up, then cosine)" };
        public readonly Option<long?> Warmup = new("--warmup") { Description = "warm-up steps" };
        public readonly Option<float?> WeightDecay = new("--weight-decay") { Description = "AdamW weight decay" };
        public readonly Option<double?> Clip = new("--clip") { Description = $"gradient clipping by global norm (0 = off; default {new ForecastTrainOptions().ClipNorm})" };
        public readonly Option<int?> Patience = new("--patience") { Description = "epochs without a better validation MSE before stopping (0 = never)" };
        public readonly Option<long> Seed = new("--seed") { Description = "seed for weights, shuffling and dropout", DefaultValueFactory = _ => Defaults.Seed };
        public readonly Option<string?> Out = new("--out") { Description = "output folder (default runs/forecast/<data>-<model>-<input>-<horizon>)" };
        public readonly Option<bool> Json = new("--json") { Description = "print one JSON object with the results as the last line" };
        public readonly Option<string> Device = DeviceOption.Create();

        public IEnumerable<Option> All => [Data, Target, DateColumn, Fill, Split, InputLen, Embedding, TimeFeatures, RevIn, DModel, Layers, DState, DConv, Expand, DFf, Heads, Dropout, Bidirectional, Mixer, HeadDim,
            Epochs, Batch, Lr, Warmup, WeightDecay, Clip, Patience, Seed, Out, Json];

        public ForecastTrainSettings Settings(ParseResult p) => new()
        {
            Data = p.GetValue(Data), Targets = ParseList(p.GetValue(Target)), DateColumn = p.GetValue(DateColumn), Fill = TimeSeriesCsvOptions.ParseFill(p.GetValue(Fill)!),
            Split = p.GetValue(Split)!, InputLength = p.GetValue(InputLen), TimeFeatures = p.GetValue(TimeFeatures),
            Embedding = p.GetValue(Embedding), RevIn = p.GetValue(RevIn), DModel = p.GetValue(DModel), Layers = p.GetValue(Layers), DState = p.GetValue(DState),
            DConv = p.GetValue(DConv), Expand = p.GetValue(Expand), DFf = p.GetValue(DFf), Heads = p.GetValue(Heads), Dropout = p.GetValue(Dropout), Bidirectional = p.GetValue(Bidirectional),
            Mixer = p.GetValue(Mixer), HeadDim = p.GetValue(HeadDim), Epochs = p.GetValue(Epochs), Batch = p.GetValue(Batch), LearningRate = p.GetValue(Lr), WarmupSteps = p.GetValue(Warmup), WeightDecay = p.GetValue(WeightDecay),
            ClipNorm = p.GetValue(Clip), Patience = p.GetValue(Patience), Seed = p.GetValue(Seed), Device = DeviceOption.Use(p, Device),
        };
    }

    private static string[]? ParseList(string? s) =>
        s is null ? null : s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) is { Length: > 0 } a ? a : null;

    private static Command TrainCmd()
    {
        var c = new Common();
        var model = new Option<string>("--model") { Description = "mamba, linear (DLinear) or transformer", DefaultValueFactory = _ => Defaults.Model };
        var horizon = new Option<int>("--horizon") { Description = "steps to forecast", DefaultValueFactory = _ => Defaults.Horizon };
        var resume = new Option<bool>("--resume") { Description = "continue from the checkpoint in the output folder" };
        var stopAfter = new Option<long?>("--stop-after") { Description = "stop with a checkpoint after this many steps of this invocation (as Ctrl-C would)" };
        var cmd = new Command("train", """
            Train a forecaster with early stopping on the validation split, then test its best weights on every
            test window. Writes to the output folder: model/ (forecaster.json + model.safetensors, with the
            normalisation statistics), checkpoint.safetensors (Ctrl-C writes one; --resume continues exactly),
            best.safetensors, metrics.jsonl, run.json and report.html (losses, validation curve, test windows).

            Examples:
              mamba4 forecast train
              mamba4 forecast train --data ETTh1.csv --horizon 192
              mamba4 forecast train --data ETTh1.csv --model linear --json
              mamba4 forecast train --data mydata.csv --target load,price --fill linear --split ratio:0.7,0.1,0.2
            """);
        foreach (var o in c.All.Concat([model, horizon, resume, stopAfter, c.Device])) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var settings = c.Settings(p) with
            {
                Model = p.GetValue(model)!, Horizon = p.GetValue(horizon), OutputDirectory = p.GetValue(c.Out), Resume = p.GetValue(resume), StopAfter = p.GetValue(stopAfter),
            };
            using var stop = new StopSignal();
            var result = ForecastTrainingRun.Run(settings, TrainingProgress.ForConsole, stop, Console.Error);
            if (result.Interrupted) return 130;
            Console.WriteLine(result.Summary);
            if (p.GetValue(c.Json)) Console.WriteLine(result.ToJson().ToJsonString());
            return 0;
        });
        return cmd;
    }

    private static Command CompareCmd()
    {
        var c = new Common();
        var models = new Option<string>("--models") { Description = "models to compare, comma-separated", DefaultValueFactory = _ => string.Join(",", new ForecastCompareSettings().Models) };
        var horizons = new Option<string>("--horizons") { Description = "horizons, comma-separated (e.g. 96,192,336,720)", DefaultValueFactory = _ => string.Join(",", new ForecastCompareSettings().Horizons) };
        var cmd = new Command("compare", """
            Train several models (and horizons) on the same data and protocol, one after the other, and print
            one table: test MSE and MAE, seconds per epoch, parameters. Each run is kept under --out/<model>-<horizon>.

            Examples:
              mamba4 forecast compare
              mamba4 forecast compare --data ETTh1.csv --horizons 96,192,336,720
            """);
        foreach (var o in c.All.Concat([models, horizons, c.Device])) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var settings = new ForecastCompareSettings
            {
                Runs = c.Settings(p), OutputDirectory = p.GetValue(c.Out), Models = ParseList(p.GetValue(models)) ?? [],
                Horizons = (ParseList(p.GetValue(horizons)) ?? []).Select(h => int.TryParse(h, out var v) ? v : throw new ArgumentException($"--horizons: '{h}' is not a positive integer")).ToArray(),
            };
            using var stop = new StopSignal();
            var result = ForecastCompareRun.Run(settings, stop, Console.Error);
            if (result.Interrupted) return 130;
            var table = new Table().Title(result.Title);
            foreach (var h in ForecastCompareResult.Header) table.AddColumn(h);
            foreach (var row in result.Cells) table.AddRow(row.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(table);
            if (p.GetValue(c.Json)) Console.WriteLine(result.ToJson().ToJsonString());
            return 0;
        });
        return cmd;
    }

    private static Command EvalCmd()
    {
        var run = new Option<string>("--run") { Description = "a run folder written by `mamba4 forecast train`", Required = true };
        var data = new Option<string?>("--data") { Description = "the CSV to evaluate on (default: the run's own data)" };
        var split = new Option<string?>("--split") { Description = "split (default: the run's)" };
        var fill = new Option<string>("--fill") { Description = "missing values: none, ffill, linear or zero", DefaultValueFactory = _ => "none" };
        var stream = new Option<bool>("--stream") { Description = "also score the streaming forecast: the recurrent state has read the whole series from its first row (temporal Mamba without RevIN)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var device = DeviceOption.Create();
        var allowNonFinite = AllowNonFiniteOption.Create();
        var cmd = new Command("eval", """
            Test a trained forecaster: MSE and MAE on the normalised scale (the model's stored training statistics)
            over every validation and test window of the split.

            Examples:
              mamba4 forecast eval --run runs/forecast/ETTh1-mamba-96-96
              mamba4 forecast eval --run runs/forecast/ETTh1-mamba-96-96 --data ETTh1.csv --json
              mamba4 forecast eval --run runs/temporal --stream
            """);
        foreach (var o in new Option[] { run, data, split, fill, stream, json, device, allowNonFinite }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var settings = new ForecastEvalSettings
            {
                Device = DeviceOption.Use(p, device), Load = AllowNonFiniteOption.LoadOptions(p, allowNonFinite), Run = p.GetValue(run)!, Data = p.GetValue(data), Split = p.GetValue(split),
                Fill = TimeSeriesCsvOptions.ParseFill(p.GetValue(fill)!), Stream = p.GetValue(stream),
            };
            var result = ForecastEvaluation.Run(settings, Console.Out);
            if (p.GetValue(json)) Console.WriteLine(result.ToJsonString());
            return 0;
        });
        return cmd;
    }

    private static Command PredictCmd()
    {
        var run = new Option<string>("--run") { Description = "a run folder written by `mamba4 forecast train` (or a model folder holding forecaster.json)", Required = true };
        var data = new Option<string?>("--data") { Description = "the series so far, CSV with the model's columns (default: the run's own data)" };
        var output = new Option<string?>("--out") { Description = "CSV file to write (default: standard output)" };
        var fill = new Option<string>("--fill") { Description = "missing values: none, ffill, linear or zero", DefaultValueFactory = _ => "none" };
        var stream = new Option<bool>("--stream") { Description = "read the whole series through the recurrent state, O(1) per observation (Mamba with --embedding temporal --revin false)" };
        var follow = new Option<bool>("--follow") { Description = "with --stream: then read new rows (CSV, no header) from standard input and print the updated forecast after each" };
        var device = DeviceOption.Create();
        var allowNonFinite = AllowNonFiniteOption.Create();
        var cmd = new Command("predict", """
            Forecast the next horizon steps after the end of a series, in original units, with timestamps spaced by
            the series' step. Windowed models read the last input-length rows. With --stream a temporal Mamba
            forecaster reads the whole (growing) series through its recurrent state; --follow keeps the state and
            updates the forecast for each new row arriving on standard input, in constant time per row.

            Examples:
              mamba4 forecast predict --run runs/forecast/ETTh1-mamba-96-96 --data ETTh1.csv --out next.csv
              tail -f live.csv | mamba4 forecast predict --run runs/temporal --data history.csv --stream --follow
            """);
        foreach (var o in new Option[] { run, data, output, fill, stream, follow, device, allowNonFinite }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var settings = new ForecastPredictSettings
            {
                Device = DeviceOption.Use(p, device), Load = AllowNonFiniteOption.LoadOptions(p, allowNonFinite), Run = p.GetValue(run)!, Data = p.GetValue(data), OutputPath = p.GetValue(output),
                Fill = TimeSeriesCsvOptions.ParseFill(p.GetValue(fill)!), Stream = p.GetValue(stream), Follow = p.GetValue(follow),
            };
            ForecastPrediction.Run(settings, Console.In, Console.Out, Console.Error);
            return 0;
        });
        return cmd;
    }
}
