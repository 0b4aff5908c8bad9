using System.Globalization;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Tasks.Forecasting;
using static Mamba4.Tests.CliTests;

namespace Mamba4.Tests;

/// <summary>`mamba4 forecast` as a user runs it, on the built-in synthetic series with tiny models.</summary>
public class ForecastCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-fcli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly string[] Tiny = ["--input-len", "24", "--horizon", "12", "--d-model", "16", "--d-ff", "16", "--layers", "1", "--d-state", "4"];


    [Fact]
    public void TrainEvalPredictOnTheSyntheticSeries()
    {
        var run = Path.Combine(_dir, "run");
        var (code, stdout, stderr) = CliTests.Run(["forecast", "train", "--out", run, .. Tiny, "--epochs", "1", "--lr", "3e-3", "--json"]);
        Assert.True(code == 0, stderr);
        var result = LastJson(stdout);
        Assert.Equal("synthetic", result["data"]!.GetValue<string>());
        double mse = result["mse"]!.GetValue<double>(), mae = result["mae"]!.GetValue<double>();
        Assert.InRange(mse, 0, 1);   // well below the normalised series' variance of about 1
        Assert.InRange(mae, 0, 1);
        Assert.Equal(800 + 24 - 24 - 12 + 1, result["test_windows"]!.GetValue<int>());   // ratio split: 800 test rows + 24 look-back, stride 1
        var html = File.ReadAllText(Path.Combine(run, "report.html"));
        Assert.Contains("<svg", html);
        Assert.Contains("Test window", html);
        Assert.Contains("forecast", html);
        Assert.True(File.Exists(Path.Combine(run, "model", SavedForecaster.ConfigFile)));
        Assert.Equal("cpu", JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!["numerics"]!["device"]!.GetValue<string>());   // what the numbers ran under

        // eval recomputes the same test metrics from the saved model.
        var (ecode, eout, eerr) = CliTests.Run("forecast", "eval", "--run", run, "--json");
        Assert.True(ecode == 0, eerr);
        var ev = LastJson(eout);
        Assert.Equal(mse, ev["mse"]!.GetValue<double>(), 6);
        Assert.Equal(mae, ev["mae"]!.GetValue<double>(), 6);

        // predict: the next 12 hours after the series' end, original units.
        var csv = Path.Combine(_dir, "next.csv");
        var (pcode, _, perr) = CliTests.Run("forecast", "predict", "--run", run, "--out", csv);
        Assert.True(pcode == 0, perr);
        var lines = File.ReadAllLines(csv);
        Assert.Equal("date,load,temperature,price", lines[0]);
        Assert.Equal(13, lines.Length);
        var last = SyntheticSeries.Generate().Timestamps![^1];
        Assert.StartsWith(last.AddHours(1).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + ",", lines[1]);
        Assert.StartsWith(last.AddHours(12).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + ",", lines[12]);
        var price = double.Parse(lines[1].Split(',')[3], CultureInfo.InvariantCulture);
        Assert.InRange(price, 30, 70);   // the price series lives around 50, not around 0
    }

    /// <summary>--mixer mamba2: the layers' mixer is the SSD; forecaster.json records it, so eval rebuilds the same model and the stream steps it.</summary>
    [Fact]
    public void TrainEvalAndStreamWithTheMamba2Mixer()
    {
        var run = Path.Combine(_dir, "m2");
        var (code, stdout, stderr) = CliTests.Run(["forecast", "train", "--out", run, .. Tiny, "--mixer", "mamba2", "--embedding", "temporal", "--revin", "false", "--epochs", "1", "--json"]);
        Assert.True(code == 0, stderr);
        var model = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "model", SavedForecaster.ConfigFile)))!["model"]!;
        Assert.Equal(("mamba2", null), (model["mixer"]!.GetValue<string>(), model["head_dim"]?.GetValue<int>()));
        var (ecode, eout, eerr) = CliTests.Run("forecast", "eval", "--run", run, "--json");
        Assert.True(ecode == 0, eerr);
        Assert.Equal(LastJson(stdout)["mse"]!.GetValue<double>(), LastJson(eout)["mse"]!.GetValue<double>(), 6);
        // The streamed forecast after a history equals the parallel recompute (the SSD step against the SSD scan).
        using var saved = SavedForecaster.Load(Path.Combine(run, "model"));
        var mamba = (Models.MambaForecaster)saved.Model;
        Assert.IsType<Nn.Mamba2Mixer>(mamba.Layers[0].Mamba);
        var all = SyntheticSeries.Generate();
        var values = new float[40 * 3];
        for (int r = 0; r < 40; r++) for (int c = 0; c < 3; c++) values[r * 3 + c] = (float)all[r, c] / 100f;
        var recomputed = mamba.ForecastHistory(values, null);
        using var stream = mamba.Stream();
        for (int r = 0; r < 40; r++) stream.Observe(values.AsSpan(r * 3, 3));
        var streamed = stream.Forecast();
        for (int i = 0; i < recomputed.Length; i++) Assert.Equal(recomputed[i], streamed[i], 1e-4 * (1 + Math.Abs(recomputed[i])));
        (code, _, stderr) = CliTests.Run(["forecast", "train", "--out", Path.Combine(_dir, "bad"), .. Tiny, "--mixer", "mamba2", "--head-dim", "5"]);
        Assert.Equal("error: --head-dim must divide the mixer's width expand · d_model = 16, got 5", stderr.Trim());
    }

    [Fact]
    public void StreamingPredictFollowsNewRowsInConstantTimePerRow()
    {
        var run = Path.Combine(_dir, "temporal");
        var (code, _, stderr) = CliTests.Run(["forecast", "train", "--out", run, .. Tiny, "--embedding", "temporal", "--revin", "false", "--epochs", "1"]);
        Assert.True(code == 0, stderr);
        // The first 3000 rows as history, then three more rows on standard input.
        var all = SyntheticSeries.Generate();
        var history = Path.Combine(_dir, "history.csv");
        string Row(int r) => all.Timestamps![r].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "," +
            string.Join(",", Enumerable.Range(0, 3).Select(c => all[r, c].ToString("R", CultureInfo.InvariantCulture)));
        File.WriteAllLines(history, new[] { "date,load,temperature,price" }.Concat(Enumerable.Range(0, 3000).Select(Row)));
        var (scode, sout, serr) = RunWithInput(string.Join("\n", Enumerable.Range(3000, 3).Select(Row)) + "\n",
            "forecast", "predict", "--run", run, "--data", history, "--stream", "--follow");
        Assert.True(scode == 0, serr);
        var lines = sout.Trim().Split('\n');
        Assert.Equal("issued_at,date,load,temperature,price", lines[0]);
        Assert.Equal(1 + 4 * 12, lines.Length);   // the forecast after the history, then one per new row
        Assert.StartsWith(Row(3002).Split(',')[0] + "," + all.Timestamps![3003].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture), lines[^12]);

        // The streamed forecast after all 3003 rows equals a full recompute over the same rows.
        var longer = Path.Combine(_dir, "longer.csv");
        File.WriteAllLines(longer, new[] { "date,load,temperature,price" }.Concat(Enumerable.Range(0, 3003).Select(Row)));
        using var saved = SavedForecaster.Load(Path.Combine(run, "model"));
        var recomputed = ((Models.MambaForecaster)saved.Model).ForecastHistory(saved.Normalizer.Transform(saved.ReadCsv(longer)), null);
        var expected = saved.ToPrediction(saved.ReadCsv(longer), recomputed);
        for (int s = 0; s < 12; s++)
        {
            var fields = lines[^12..][s].Split(',');
            for (int c = 0; c < 3; c++) Assert.Equal(expected[s, c], double.Parse(fields[2 + c], CultureInfo.InvariantCulture), 1e-3 * (1 + Math.Abs(expected[s, c])));
        }

        // A windowed (variate) model refuses --stream with the reason; a missing folder is named.
        var variate = Path.Combine(_dir, "variate");
        var data = ForecastData.Prepare(all, "ratio", 24, 12, timeFeatures: false);
        using (var m = Models.Forecaster.Create(ForecastDefaults.Config("mamba", 24, 12, 3, 0) with { DModel = 8, DFf = 8, Layers = 1 }))
            SavedForecaster.Save(variate, m, data);
        var (wcode, _, werr) = CliTests.Run("forecast", "predict", "--run", variate, "--stream");
        Assert.NotEqual(0, wcode);
        Assert.Contains("--stream needs a Mamba forecaster trained with --embedding temporal --revin false", werr);
        var (ncode, _, nerr) = CliTests.Run("forecast", "predict", "--run", Path.Combine(_dir, "nope"));
        Assert.NotEqual(0, ncode);
        Assert.Contains(Path.Combine(_dir, "nope", "model", "forecaster.json") + " not found", nerr);
    }

    [Fact]
    public void StopAndResumeEqualsAnUninterruptedRunAndCompareTabulates()
    {
        string[] args = [.. Tiny, "--epochs", "2", "--model", "linear"];
        var a = Path.Combine(_dir, "a");
        var b = Path.Combine(_dir, "b");
        Assert.Equal(0, CliTests.Run(["forecast", "train", "--out", a, .. args]).ExitCode);
        var (stop, _, stopErr) = CliTests.Run(["forecast", "train", "--out", b, .. args, "--stop-after", "100"]);   // inside epoch 2
        Assert.Equal(130, stop);
        Assert.Contains("--resume", stopErr);
        var (refuse, _, refuseErr) = CliTests.Run(["forecast", "train", "--out", b, .. args]);
        Assert.NotEqual(0, refuse);
        Assert.Contains("--resume", refuseErr);
        var (resumed, rout, rerr) = CliTests.Run(["forecast", "train", "--out", b, .. args, "--resume", "--json"]);
        Assert.True(resumed == 0, rerr);
        var wa = SafetensorsFile.LoadAll(Path.Combine(a, "model", SavedForecaster.WeightsFile));
        var wb = SafetensorsFile.LoadAll(Path.Combine(b, "model", SavedForecaster.WeightsFile));
        foreach (var (name, t) in wa) Assert.True(t.ToFloatArray().SequenceEqual(wb[name].ToFloatArray()), $"{name} differs after stop + resume");
        Assert.Equal(JsonNode.Parse(File.ReadAllText(Path.Combine(a, "result.json")))!["mse"]!.GetValue<double>(), LastJson(rout)["mse"]!.GetValue<double>());

        var (ccode, cout, cerr) = CliTests.Run(["forecast", "compare", "--out", Path.Combine(_dir, "cmp"), .. Tiny.Select(a => a == "--horizon" ? "--horizons" : a), "--epochs", "1", "--models", "linear,transformer", "--json"]);
        Assert.True(ccode == 0, cerr);
        Assert.Contains("s/epoch", cout);
        Assert.Contains("parameters", cout);
        var results = LastJson(cout)["results"]!.AsArray();
        Assert.Equal(["linear", "transformer"], results.Select(r => r!["model"]!.GetValue<string>()));
        Assert.All(results, r => Assert.InRange(r!["mse"]!.GetValue<double>(), 0, 2));
    }

    [Theory]
    [InlineData("unknown model 'lstm'", "forecast", "train", "--model", "lstm")]
    [InlineData("/nonexistent/series.csv: file not found", "forecast", "train", "--data", "/nonexistent/series.csv")]
    [InlineData("no column 'volume'", "forecast", "train", "--target", "volume")]
    [InlineData("too few for one window", "forecast", "train", "--input-len", "3000")]
    public void BadInputFailsWithOneClearLine(string expected, params string[] args)
    {
        var (code, _, stderr) = CliTests.Run([.. args, "--out", Path.Combine(_dir, "bad")]);
        Assert.NotEqual(0, code);
        Assert.Contains(expected, stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void PredictRefusesAValueTheModelCannotReadWithOneLineNamingFileLineAndColumn()
    {
        var all = SyntheticSeries.Generate();
        var run = Path.Combine(_dir, "temporal");
        using (var m = Models.Forecaster.Create(ForecastDefaults.Config("mamba", 24, 12, 3, 0) with { DModel = 8, DFf = 8, Layers = 1, Embedding = "temporal", RevIn = false }))
            SavedForecaster.Save(run, m, ForecastData.Prepare(all, "ratio", 24, 12, timeFeatures: false));
        string Row(int r, double? temperature = null) => all.Timestamps![r].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "," +
            string.Join(",", Enumerable.Range(0, 3).Select(c => (c == 1 && temperature is { } t ? t : all[r, c]).ToString("R", CultureInfo.InvariantCulture)));
        var csv = Path.Combine(_dir, "huge.csv");
        File.WriteAllLines(csv, new[] { "date,load,temperature,price" }.Concat(Enumerable.Range(0, 30).Select(r => Row(r, r == 10 ? 3.5e38 : null))));
        foreach (var stream in new[] { false, true })
        {
            var (code, stdout, stderr) = CliTests.Run(["forecast", "predict", "--run", run, "--data", csv, .. stream ? new[] { "--stream" } : []]);
            Assert.Equal(1, code);
            Assert.Equal("", stdout);
            Assert.StartsWith($"error: {csv}:12: column 'temperature': 3.5E+38 is ", Assert.Single(stderr.Trim().Split('\n')));
        }
        // --follow checks each row arriving on standard input the same way.
        var history = Path.Combine(_dir, "history.csv");
        File.WriteAllLines(history, new[] { "date,load,temperature,price" }.Concat(Enumerable.Range(0, 30).Select(r => Row(r))));
        var (fcode, fout, ferr) = RunWithInput(Row(30, 3.5e38) + "\n", "forecast", "predict", "--run", run, "--data", history, "--stream", "--follow");
        Assert.Equal(1, fcode);
        Assert.Equal(13, fout.Trim().Split('\n').Length);   // the forecast after the history only
        Assert.DoesNotContain("NaN", fout);
        var line = Assert.Single(ferr.Trim().Split('\n'));
        Assert.StartsWith("error: stdin:1", line);
        Assert.Contains("column 'temperature': 3.5E+38 is ", line);
    }
}
