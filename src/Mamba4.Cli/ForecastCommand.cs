using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Data.TimeSeries;
using Mamba4.Models;
using Mamba4.Tasks.Forecasting;
using Mamba4.Training;
using Spectre.Console;

namespace Mamba4.Cli;

/// <summary>`mamba4 forecast train | eval | predict | compare`: multivariate time-series forecasting.</summary>
internal static class ForecastCommand
{
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

    // ---- options shared by train and compare ----
    private sealed class Common
    {
        public readonly Option<string?> Data = new("--data") { Description = "CSV file: a date column and numeric columns (default: a built-in synthetic series)" };
        public readonly Option<string?> Target = new("--target") { Description = "columns to read and forecast, comma-separated (default: every column but the date)" };
        public readonly Option<string?> DateColumn = new("--date-column") { Description = "the timestamp column (default: date, datetime, timestamp or time when present)" };
        public readonly Option<string> Fill = new("--fill") { Description = "missing values: none (an error), ffill, linear or zero", DefaultValueFactory = _ => "none" };
        public readonly Option<string> Split = new("--split") { Description = "auto (ETT for ETTh*/ETTm* files, else ratio), ett-hour, ett-minute, ratio, ratio:TRAIN,VAL,TEST", DefaultValueFactory = _ => "auto" };
        public readonly Option<int> InputLen = new("--input-len") { Description = "input window (steps)", DefaultValueFactory = _ => 96 };
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
        public readonly Option<int?> Epochs = new("--epochs") { Description = "maximum epochs" };
        public readonly Option<int?> Batch = new("--batch") { Description = "windows per step" };
        public readonly Option<float?> Lr = new("--lr") { Description = "peak learning rate (warm-up, then cosine)" };
        public readonly Option<long?> Warmup = new("--warmup") { Description = "warm-up steps" };
        public readonly Option<float?> WeightDecay = new("--weight-decay") { Description = "AdamW weight decay" };
        public readonly Option<int?> Patience = new("--patience") { Description = "epochs without a better validation MSE before stopping (0 = never)" };
        public readonly Option<long> Seed = new("--seed") { Description = "seed for weights, shuffling and dropout", DefaultValueFactory = _ => 1 };
        public readonly Option<string?> Out = new("--out") { Description = "output folder (default runs/forecast/<data>-<model>-<input>-<horizon>)" };
        public readonly Option<bool> Json = new("--json") { Description = "print one JSON object with the results as the last line" };

        public IEnumerable<Option> All => [Data, Target, DateColumn, Fill, Split, InputLen, Embedding, TimeFeatures, RevIn, DModel, Layers, DState, DConv, Expand, DFf, Heads, Dropout, Bidirectional, Epochs, Batch, Lr, Warmup, WeightDecay, Patience, Seed, Out, Json];

        public TimeSeriesTable ReadTable(ParseResult p)
        {
            var path = p.GetValue(Data);
            var fill = TimeSeriesCsvOptions.ParseFill(p.GetValue(Fill)!);
            var targets = ParseList(p.GetValue(Target));
            if (path is null)
            {
                var t = SyntheticSeries.Generate();
                if (targets is null) return t;
                var idx = targets.Select(c => t.IndexOf(c) is var i and >= 0 ? i : throw new ArgumentException($"the synthetic series has no column '{c}' (it has: {string.Join(", ", t.Columns)})")).ToArray();
                var v = new double[t.Rows * idx.Length];
                for (int r = 0; r < t.Rows; r++) for (int k = 0; k < idx.Length; k++) v[r * idx.Length + k] = t[r, idx[k]];
                return new TimeSeriesTable(t.Source, idx.Select(i => t.Columns[i]).ToArray(), v, t.Timestamps, t.DateColumn);
            }
            return TimeSeriesCsv.Read(path, new TimeSeriesCsvOptions { Columns = targets, DateColumn = p.GetValue(DateColumn), Fill = fill });
        }

        public ForecasterConfig Config(ParseResult p, string model, int horizon, ForecastData data)
        {
            var d = ForecastDefaults.Config(model, p.GetValue(InputLen), horizon, data.Variables, data.MarkFeatures);
            var c = d with
            {
                Embedding = p.GetValue(Embedding) ?? d.Embedding,
                RevIn = p.GetValue(RevIn) ?? d.RevIn,
                DModel = p.GetValue(DModel) ?? d.DModel,
                Layers = p.GetValue(Layers) ?? d.Layers,
                DState = p.GetValue(DState) ?? d.DState,
                DConv = p.GetValue(DConv) ?? d.DConv,
                Expand = p.GetValue(Expand) ?? d.Expand,
                DFf = p.GetValue(DFf) ?? d.DFf,
                Heads = p.GetValue(Heads) ?? d.Heads,
                Dropout = p.GetValue(Dropout) ?? d.Dropout,
                Bidirectional = p.GetValue(Bidirectional) ?? d.Bidirectional,
            };
            if (model == "linear" && data.MarkFeatures > 0) throw new ArgumentException("--time-features: the linear model (DLinear) takes none");
            c.Validate();
            return c;
        }

        public ForecastTrainOptions Training(ParseResult p, string model)
        {
            var d = ForecastDefaults.Training(model);
            var o = d with
            {
                Epochs = p.GetValue(Epochs) ?? d.Epochs, Batch = p.GetValue(Batch) ?? d.Batch, LearningRate = p.GetValue(Lr) ?? d.LearningRate,
                WarmupSteps = p.GetValue(Warmup) ?? d.WarmupSteps, WeightDecay = p.GetValue(WeightDecay) ?? d.WeightDecay,
                Patience = p.GetValue(Patience) ?? d.Patience, Seed = p.GetValue(Seed),
            };
            o.Validate();
            return o;
        }
    }

    private static string[]? ParseList(string? s) =>
        s is null ? null : s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) is { Length: > 0 } a ? a : null;

    private static string DataName(TimeSeriesTable t) => t.Source == SyntheticSeries.Name ? "synthetic" : Path.GetFileNameWithoutExtension(t.Source);

    // ---- train ----
    private static Command TrainCmd()
    {
        var c = new Common();
        var model = new Option<string>("--model") { Description = "mamba, linear (DLinear) or transformer", DefaultValueFactory = _ => "mamba" };
        var horizon = new Option<int>("--horizon") { Description = "steps to forecast", DefaultValueFactory = _ => 96 };
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
        foreach (var o in c.All.Concat([model, horizon, resume, stopAfter])) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        cmd.SetAction(p =>
        {
            DeviceOption.Use(p, device);
            var m = p.GetValue(model)!;
            if (!ForecasterConfig.Models.Contains(m)) throw new ArgumentException($"unknown model '{m}' (expected one of: {string.Join(", ", ForecasterConfig.Models)})");
            var training = c.Training(p, m) with { StopAfter = p.GetValue(stopAfter) };
            var table = c.ReadTable(p);
            var data = ForecastData.Prepare(table, p.GetValue(c.Split)!, p.GetValue(c.InputLen), p.GetValue(horizon), p.GetValue(c.TimeFeatures));
            var config = c.Config(p, m, p.GetValue(horizon), data);
            var outDir = p.GetValue(c.Out) ?? Path.Combine("runs", "forecast", $"{DataName(table)}-{m}-{config.InputLength}-{config.Horizon}");
            var r = Runner.TrainOne(data, config, training, outDir, p.GetValue(resume), verbose: true);
            if (r is null) return 130;
            Console.WriteLine($"{DataName(table)} {m} input {config.InputLength} horizon {config.Horizon}: test MSE {r.Result.Mse:F4}, MAE {r.Result.Mae:F4} " +
                $"(best epoch {r.Result.BestEpoch}, {r.Result.SecondsPerEpoch:F1} s/epoch, {r.Result.Parameters:N0} parameters); report: {Path.Combine(outDir, "report.html")}");
            if (p.GetValue(c.Json)) Console.WriteLine(r.Json.ToJsonString());
            return 0;
        });
        return cmd;
    }

    // ---- compare ----
    private static Command CompareCmd()
    {
        var c = new Common();
        var models = new Option<string>("--models") { Description = "models to compare, comma-separated", DefaultValueFactory = _ => "mamba,linear,transformer" };
        var horizons = new Option<string>("--horizons") { Description = "horizons, comma-separated (e.g. 96,192,336,720)", DefaultValueFactory = _ => "96" };
        var cmd = new Command("compare", """
            Train several models (and horizons) on the same data and protocol, one after the other, and print
            one table: test MSE and MAE, seconds per epoch, parameters. Each run is kept under --out/<model>-<horizon>.

            Examples:
              mamba4 forecast compare
              mamba4 forecast compare --data ETTh1.csv --horizons 96,192,336,720
            """);
        foreach (var o in c.All.Concat([models, horizons])) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        cmd.SetAction(p =>
        {
            DeviceOption.Use(p, device);
            var ms = ParseList(p.GetValue(models)) ?? throw new ArgumentException("--models is empty");
            foreach (var m in ms) if (!ForecasterConfig.Models.Contains(m)) throw new ArgumentException($"unknown model '{m}' (expected one of: {string.Join(", ", ForecasterConfig.Models)})");
            var hs = (ParseList(p.GetValue(horizons)) ?? throw new ArgumentException("--horizons is empty"))
                .Select(h => int.TryParse(h, out var v) && v > 0 ? v : throw new ArgumentException($"--horizons: '{h}' is not a positive integer")).ToArray();
            var table = c.ReadTable(p);
            var outDir = p.GetValue(c.Out) ?? Path.Combine("runs", "forecast", $"{DataName(table)}-compare");
            // Everything is validated before the first run starts.
            var plans = new List<(ForecastData Data, ForecasterConfig Config, ForecastTrainOptions Training, string Dir)>();
            foreach (var h in hs)
            {
                var data = ForecastData.Prepare(table, p.GetValue(c.Split)!, p.GetValue(c.InputLen), h, p.GetValue(c.TimeFeatures));
                foreach (var m in ms)
                    plans.Add((data, c.Config(p, m, h, data), c.Training(p, m), Path.Combine(outDir, $"{m}-{h}")));
            }
            var rows = new List<(ForecasterConfig Config, ForecastResult Result)>();
            foreach (var (data, config, training, dir) in plans)
            {
                var r = Runner.TrainOne(data, config, training, dir, resume: false, verbose: false);
                if (r is null) return 130;
                rows.Add((config, r.Result));
                Console.Error.WriteLine($"{config.Model} horizon {config.Horizon}: MSE {r.Result.Mse:F4}, MAE {r.Result.Mae:F4}, {r.Result.SecondsPerEpoch:F1} s/epoch");
            }
            var header = new[] { "model", "horizon", "MSE", "MAE", "s/epoch", "epochs", "parameters" };
            var cells = rows.Select(r => new[]
            {
                r.Config.Model, r.Config.Horizon.ToString(CultureInfo.InvariantCulture), r.Result.Mse.ToString("F4", CultureInfo.InvariantCulture),
                r.Result.Mae.ToString("F4", CultureInfo.InvariantCulture), r.Result.SecondsPerEpoch.ToString("F1", CultureInfo.InvariantCulture),
                r.Result.Epochs.ToString(CultureInfo.InvariantCulture), r.Result.Parameters.ToString("N0", CultureInfo.InvariantCulture),
            }).ToList();
            var t = new Table().Title($"{DataName(table)}, input {p.GetValue(c.InputLen)}: test metrics on the normalised scale");
            foreach (var h in header) t.AddColumn(h);
            foreach (var row in cells) t.AddRow(row.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(t);
            new HtmlReport($"Forecasting comparison: {DataName(table)}")
                .Paragraph($"Data {table.Source}, split {plans[0].Data.Splits.Description}, input {p.GetValue(c.InputLen)}. MSE and MAE on the z-scored scale over every test window.")
                .Table(header, cells)
                .Save(Path.Combine(outDir, "report.html"));
            if (p.GetValue(c.Json))
                Console.WriteLine(new JsonObject
                {
                    ["data"] = table.Source,
                    ["results"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject
                    {
                        ["model"] = r.Config.Model, ["horizon"] = r.Config.Horizon, ["mse"] = r.Result.Mse, ["mae"] = r.Result.Mae,
                        ["seconds_per_epoch"] = r.Result.SecondsPerEpoch, ["epochs"] = r.Result.Epochs, ["parameters"] = r.Result.Parameters,
                    }).ToArray()),
                }.ToJsonString());
            return 0;
        });
        return cmd;
    }

    // ---- eval ----
    private static Command EvalCmd()
    {
        var run = new Option<string>("--run") { Description = "a run folder written by `mamba4 forecast train`", Required = true };
        var data = new Option<string?>("--data") { Description = "the CSV to evaluate on (default: the run's own data)" };
        var split = new Option<string?>("--split") { Description = "split (default: the run's)" };
        var fill = new Option<string>("--fill") { Description = "missing values: none, ffill, linear or zero", DefaultValueFactory = _ => "none" };
        var stream = new Option<bool>("--stream") { Description = "also score the streaming forecast: the recurrent state has read the whole series from its first row (temporal Mamba without RevIN)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var cmd = new Command("eval", """
            Test a trained forecaster: MSE and MAE on the normalised scale (the model's stored training statistics)
            over every validation and test window of the split.

            Examples:
              mamba4 forecast eval --run runs/forecast/ETTh1-mamba-96-96
              mamba4 forecast eval --run runs/forecast/ETTh1-mamba-96-96 --data ETTh1.csv --json
              mamba4 forecast eval --run runs/temporal --stream
            """);
        foreach (var o in new Option[] { run, data, split, fill, stream, json }) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        var allowNonFinite = AllowNonFiniteOption.Create();
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(p =>
        {
            DeviceOption.Use(p, device);
            var dir = p.GetValue(run)!;
            using var saved = SavedForecaster.Load(Path.Combine(dir, "model"), AllowNonFiniteOption.LoadOptions(p, allowNonFinite));
            bool streaming = p.GetValue(stream);
            if (streaming && !saved.CanStream) throw new ArgumentException($"{dir}: --stream {saved.StreamRequirement}");
            var source = p.GetValue(data) ?? saved.Info["data"]?.GetValue<string>() ?? throw new ArgumentException($"{dir}: the run does not name its data; pass --data");
            var table = source == SyntheticSeries.Name ? SyntheticSeries.Generate() : saved.ReadCsv(source, TimeSeriesCsvOptions.ParseFill(p.GetValue(fill)!));
            saved.CheckColumns(table);
            var spec = p.GetValue(split) ?? saved.Info["split_spec"]?.GetValue<string>() ?? "auto";
            var c = saved.Config;
            var splits = Splits.Resolve(spec, table.Source, table.Rows, c.InputLength, c.Horizon);
            var z = saved.Normalizer.Transform(table);
            var marks = saved.Marks(table);
            var result = new JsonObject { ["run"] = dir, ["data"] = source, ["model"] = c.Model, ["input_len"] = c.InputLength, ["horizon"] = c.Horizon };
            foreach (var (name, range) in new[] { ("val", splits.Validation), ("test", splits.Test) })
            {
                var windows = new WindowSet(z, c.Variables, marks, c.TimeFeatures, range, c.InputLength, c.Horizon);
                var (mse, mae) = ForecastRun.Evaluate(saved.Model, windows);
                Console.WriteLine($"{name,-4} rows {range}: {windows.Count} windows, MSE {mse:F4}, MAE {mae:F4}");
                if (name == "test") { result["mse"] = mse; result["mae"] = mae; result["windows"] = windows.Count; }
                else { result["val_mse"] = mse; result["val_mae"] = mae; }
                if (!streaming) continue;
                var (smse, smae) = ForecastRun.EvaluateStreaming((MambaForecaster)saved.Model, z, marks, range);
                Console.WriteLine($"{name,-4} streaming from row 0: MSE {smse:F4}, MAE {smae:F4}");
                result[name == "test" ? "stream_mse" : "val_stream_mse"] = smse;
                result[name == "test" ? "stream_mae" : "val_stream_mae"] = smae;
            }
            if (p.GetValue(json)) Console.WriteLine(result.ToJsonString());
            return 0;
        });
        return cmd;
    }

    // ---- predict ----
    private static Command PredictCmd()
    {
        var run = new Option<string>("--run") { Description = "a run folder written by `mamba4 forecast train` (or a model folder holding forecaster.json)", Required = true };
        var data = new Option<string?>("--data") { Description = "the series so far, CSV with the model's columns (default: the run's own data)" };
        var output = new Option<string?>("--out") { Description = "CSV file to write (default: standard output)" };
        var fill = new Option<string>("--fill") { Description = "missing values: none, ffill, linear or zero", DefaultValueFactory = _ => "none" };
        var stream = new Option<bool>("--stream") { Description = "read the whole series through the recurrent state, O(1) per observation (Mamba with --embedding temporal --revin false)" };
        var follow = new Option<bool>("--follow") { Description = "with --stream: then read new rows (CSV, no header) from standard input and print the updated forecast after each" };
        var cmd = new Command("predict", """
            Forecast the next horizon steps after the end of a series, in original units, with timestamps spaced by
            the series' step. Windowed models read the last input-length rows. With --stream a temporal Mamba
            forecaster reads the whole (growing) series through its recurrent state; --follow keeps the state and
            updates the forecast for each new row arriving on standard input, in constant time per row.

            Examples:
              mamba4 forecast predict --run runs/forecast/ETTh1-mamba-96-96 --data ETTh1.csv --out next.csv
              tail -f live.csv | mamba4 forecast predict --run runs/temporal --data history.csv --stream --follow
            """);
        foreach (var o in new Option[] { run, data, output, fill, stream, follow }) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        var allowNonFinite = AllowNonFiniteOption.Create();
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(p =>
        {
            DeviceOption.Use(p, device);
            var dir = p.GetValue(run)!;
            var modelDir = File.Exists(Path.Combine(dir, SavedForecaster.ConfigFile)) ? dir : Path.Combine(dir, "model");
            using var saved = SavedForecaster.Load(modelDir, AllowNonFiniteOption.LoadOptions(p, allowNonFinite));
            bool streaming = p.GetValue(stream);
            if (p.GetValue(follow) && !streaming) throw new ArgumentException("--follow needs --stream");
            if (streaming && !saved.CanStream) throw new ArgumentException($"{modelDir}: --stream {saved.StreamRequirement}");
            var source = p.GetValue(data) ?? saved.Info["data"]?.GetValue<string>() ?? throw new ArgumentException($"{dir}: the run does not name its data; pass --data");
            var table = source == SyntheticSeries.Name ? SyntheticSeries.Generate() : saved.ReadCsv(source, TimeSeriesCsvOptions.ParseFill(p.GetValue(fill)!));
            var outPath = p.GetValue(output);
            var tempPath = outPath is null ? null : Mamba4.IO.AtomicFile.TempPath(outPath);
            using var writer = tempPath is null ? null : new StreamWriter(tempPath, false, new UTF8Encoding(false));
            var w = writer ?? Console.Out;
            if (!p.GetValue(follow))
            {
                var prediction = saved.Forecast(table, streaming);
                WriteCsv(w, prediction, saved.DateColumn, issuedAt: null);
            }
            else Follow(saved, table, w);
            if (writer is not null)
            {
                writer.Dispose();
                File.Move(tempPath!, outPath!, overwrite: true);
                Console.Error.WriteLine($"wrote {saved.Config.Horizon} steps × {saved.Columns.Count} columns to {outPath}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>--stream --follow: the history primes the state; each stdin row is one O(1) update and one forecast block.</summary>
    private static void Follow(SavedForecaster saved, TimeSeriesTable history, TextWriter w)
    {
        var model = (MambaForecaster)saved.Model;
        int n = saved.Columns.Count, f = saved.Config.TimeFeatures;
        using var stream = model.Stream();
        var z = saved.Normalizer.Transform(history);
        var marks = saved.Marks(history);
        for (int r = 0; r < history.Rows; r++) stream.Observe(z.AsSpan(r * n, n), marks is null ? default : marks.AsSpan(r * f, f));
        var stamps = history.Timestamps?.ToList();
        var rows = new List<double>(history.Values);
        var header = string.Join(",", history.DateColumn is null ? history.Columns : [history.DateColumn, .. history.Columns]);
        WriteCsv(w, saved.ToPrediction(history, stream.Forecast()), saved.DateColumn, issuedAt: Issued(history));
        w.Flush();
        string? line;
        int lineNo = 0;
        while ((line = Console.In.ReadLine()) is not null)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var one = TimeSeriesCsv.Parse(new StringReader(header + "\n" + line), $"stdin:{lineNo}",
                new TimeSeriesCsvOptions { Columns = saved.Columns, DateColumn = history.DateColumn, Fill = FillMethod.None });
            if (stamps is not null && stamps.Count > 0 && one.Timestamps![0] <= stamps[^1])
                throw new InvalidDataException($"stdin:{lineNo}: {one.Timestamps[0]:yyyy-MM-dd HH:mm:ss} does not come after the previous row's {stamps[^1]:yyyy-MM-dd HH:mm:ss}");
            stamps?.Add(one.Timestamps![0]);
            rows.AddRange(one.Values);
            var zr = new float[n];
            for (int k = 0; k < n; k++) zr[k] = (float)saved.Normalizer.Normalize(one.Values[k], k);
            var mk = saved.Marks(one);
            stream.Observe(zr, mk);
            var grown = new TimeSeriesTable(history.Source, history.Columns, rows.ToArray(), stamps?.ToArray(), history.DateColumn);
            WriteCsv(w, saved.ToPrediction(grown, stream.Forecast()), saved.DateColumn, issuedAt: Issued(grown), header: false);
            w.Flush();
        }
    }

    private static string Issued(TimeSeriesTable t) =>
        t.Timestamps is { Length: > 0 } ts ? ts[^1].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : (t.Rows - 1).ToString(CultureInfo.InvariantCulture);

    private static void WriteCsv(TextWriter w, Prediction p, string? dateColumn, string? issuedAt, bool header = true)
    {
        if (header)
            w.WriteLine(string.Join(",", (issuedAt is null ? [] : new[] { "issued_at" }).Append(p.Timestamps is null ? "step" : dateColumn ?? "date").Concat(p.Columns)));
        for (int s = 0; s < p.Steps; s++)
        {
            var sb = new StringBuilder();
            if (issuedAt is not null) sb.Append(issuedAt).Append(',');
            sb.Append(p.Timestamps is { } ts ? ts[s].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : (p.FirstIndex + s).ToString(CultureInfo.InvariantCulture));
            for (int k = 0; k < p.Columns.Count; k++) sb.Append(',').Append(p[s, k].ToString("G7", CultureInfo.InvariantCulture));
            w.WriteLine(sb.ToString());
        }
    }

    /// <summary>One training run with progress, checkpoints, the saved model, a report and a JSON summary.</summary>
    private static class Runner
    {
        public sealed record Outcome(ForecastResult Result, JsonObject Json);

        public static Outcome? TrainOne(ForecastData data, ForecasterConfig config, ForecastTrainOptions training, string outDir, bool resume, bool verbose)
        {
            RunFolder.Prepare(outDir, resume, Console.Error.WriteLine);
            using var run = new ForecastRun(data, config, training, outDir);
            if (resume && run.Resume())
                Console.Error.WriteLine($"resuming at step {run.Trainer.Step} (epoch {run.Trainer.Step / run.StepsPerEpoch}) from {Path.Combine(outDir, Checkpoint.FileName)}");
            var runJson = run.RunConfig.DeepClone().AsObject();
            runJson["split_spec"] = data.Splits.Description.StartsWith("ratio", StringComparison.Ordinal) ? RatioSpec(data.Splits) : data.Splits.Description;
            File.WriteAllText(Path.Combine(outDir, "run.json"), runJson.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            string name = $"{config.Model} h{config.Horizon}";
            Console.Error.WriteLine($"{name}: {data.Table.Source}, {data.Variables} variables, split {data.Splits.Description} " +
                $"(train {data.Train.Count}, val {data.Validation.Count}, test {data.Test.Count} windows), input {config.InputLength}, " +
                $"{run.Model.ParameterCount:N0} parameters, up to {training.Epochs} epochs × {run.StepsPerEpoch} steps of {training.Batch}");
            run.EpochDone += e => Console.Error.WriteLine($"  epoch {e.Epoch}: validation MSE {e.Mse:F4}, MAE {e.Mae:F4}{(e.Improved ? " (best)" : "")}, {e.TrainSeconds:F1} s");

            bool stop = false;
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop = true; });
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop = true; });
            var result = WithProgress(name, run, () => stop, verbose);
            if (result.Interrupted)
            {
                Console.Error.WriteLine($"{name}: stopped at step {run.Trainer.Step}; checkpoint written to {Path.Combine(outDir, Checkpoint.FileName)}. Continue with --resume.");
                return null;
            }
            var json = new JsonObject
            {
                ["data"] = data.Table.Source, ["model"] = config.Model, ["embedding"] = config.Model == "linear" ? null : config.Embedding,
                ["input_len"] = config.InputLength, ["horizon"] = config.Horizon, ["variables"] = data.Variables,
                ["mse"] = result.Mse, ["mae"] = result.Mae, ["val_mse"] = result.ValidationMse, ["val_mae"] = result.ValidationMae,
                ["test_windows"] = data.Test.Count, ["epochs"] = result.Epochs, ["best_epoch"] = result.BestEpoch, ["early_stopped"] = result.EarlyStopped,
                ["seconds_per_epoch"] = Math.Round(result.SecondsPerEpoch, 3), ["seconds"] = Math.Round(result.Seconds, 2), ["parameters"] = result.Parameters,
            };
            var info = runJson.DeepClone().AsObject();
            info["test"] = json.DeepClone();
            SavedForecaster.Save(Path.Combine(outDir, "model"), run.Model, data, info);
            File.WriteAllText(Path.Combine(outDir, "result.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            WriteReport(outDir, run, data, config, result);
            return new Outcome(result, json);
        }

        private static string RatioSpec(DataSplits s)
        {
            int n = s.Test.End;
            return "ratio:" + string.Join(",", new[] { s.Train.Length, s.Validation.End - s.Train.End, s.Test.End - s.Validation.End }
                .Select(v => (v / (double)n).ToString("R", CultureInfo.InvariantCulture)));
        }

        private static ForecastResult WithProgress(string name, ForecastRun run, Func<bool> stop, bool verbose)
        {
            long steps = run.TotalSteps;
            double lastVal = double.NaN;
            run.EpochDone += e => lastVal = e.Mse;
            string Describe(StepReport r) =>
                $"{name}  epoch {Math.Min(r.Step / run.StepsPerEpoch + 1, steps / run.StepsPerEpoch)}  loss {r.Loss:F4}  val {(double.IsNaN(lastVal) ? "-" : lastVal.ToString("F4", CultureInfo.InvariantCulture))}  {r.TokensPerSecond:F0} windows/s";
            if (!verbose || !AnsiConsole.Profile.Capabilities.Interactive)
            {
                long every = Math.Max(1, run.StepsPerEpoch / 4);
                if (verbose)
                    run.Trainer.StepDone += r => { if (r.Step % every == 0) Console.Error.WriteLine($"  step {r.Step}/{steps}  {Describe(r)}"); };
                return run.Run(stop);
            }
            return TrainingProgress.Bar(name, run.Trainer, steps, () => run.Run(stop), Describe, fillAtEnd: true);
        }

        private static void WriteReport(string outDir, ForecastRun run, ForecastData data, ForecasterConfig config, ForecastResult result)
        {
            var lines = File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
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
            report.Save(Path.Combine(outDir, "report.html"));
        }
    }
}
