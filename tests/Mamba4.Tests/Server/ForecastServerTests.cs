using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Data.TimeSeries;
using Mamba4.Server;
using Mamba4.Tasks.Forecasting;
using Mamba4.Tasks.Synthetic;
using Microsoft.Data.Sqlite;

namespace Mamba4.Tests.Server;

/// <summary>/v1/forecast and the growing-series API over forecasters saved as `mamba4 forecast train` saves them; parity with `mamba4 forecast predict`.</summary>
public sealed class ForecastServerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mamba4-serve-forecast-" + Guid.NewGuid().ToString("N")[..8]);
    private static readonly TimeSeriesTable Series = SyntheticSeries.Generate();

    public ForecastServerTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, true);
    }

    /// <summary>An untrained forecaster (random weights suffice for parity) saved with the synthetic series' columns and statistics.</summary>
    private string Save(string name, bool temporal)
    {
        var dir = Path.Combine(_dir, name);
        var data = ForecastData.Prepare(Series, "ratio", 24, 12, timeFeatures: false);
        var config = ForecastDefaults.Config("mamba", 24, 12, 3, 0) with { DModel = 8, DFf = 8, Layers = 1 };
        if (temporal) config = config with { Embedding = "temporal", RevIn = false };
        using (var m = Models.Forecaster.Create(config)) SavedForecaster.Save(dir, m, data);
        return dir;
    }

    private static string Stamp(int r) => Series.Timestamps![r].ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
    private static double[][] Rows(int from, int to) => Enumerable.Range(from, to - from).Select(r => Enumerable.Range(0, 3).Select(c => Series[r, c]).ToArray()).ToArray();
    private static string[] Stamps(int from, int to) => Enumerable.Range(from, to - from).Select(Stamp).ToArray();

    /// <summary>`mamba4 forecast predict` over rows [from, to) of the series written as a CSV: its output lines (header first).</summary>
    private string[] CliPredict(string model, int from, int to, bool stream)
    {
        var csv = Path.Combine(_dir, $"rows-{from}-{to}.csv");
        File.WriteAllLines(csv, new[] { "date,load,temperature,price" }.Concat(Enumerable.Range(from, to - from).Select(r =>
            Stamp(r) + "," + string.Join(",", Enumerable.Range(0, 3).Select(c => Series[r, c].ToString("R", CultureInfo.InvariantCulture))))));
        string[] args = ["forecast", "predict", "--run", model, "--data", csv, .. stream ? new[] { "--stream" } : []];
        var (code, stdout, stderr) = CliTests.Run(args);
        Assert.True(code == 0, stderr);
        return stdout.Trim().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
    }

    /// <summary>The server's answer in the CLI's CSV form (timestamps, values as G7).</summary>
    private static string[] AsCsv(JsonNode answer) =>
        new[] { "date," + string.Join(",", answer["columns"]!.AsArray().Select(c => (string)c!)) }.Concat(
            answer["values"]!.AsArray().Select((row, s) => (string)answer["timestamps"]![s]! + "," +
                string.Join(",", row!.AsArray().Select(v => v!.GetValue<double>().ToString("G7", CultureInfo.InvariantCulture))))).ToArray();

    [Fact]
    public async Task ForecastEqualsTheCliPredictForTheSameRows()
    {
        var model = Save("variate", temporal: false);
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ForecastDir = model, SeriesDb = Path.Combine(_dir, "s.sqlite") });
        var (status, body, text) = await server.PostAsync("/v1/forecast", JsonSerializer.Serialize(new { values = Rows(100, 140), timestamps = Stamps(100, 140) }));
        Assert.True(status == 200, text);
        Assert.Equal(12, body!["horizon"]!.GetValue<int>());
        Assert.Equal(CliPredict(model, 100, 140, stream: false), AsCsv(body));
    }

    [Fact]
    public async Task AGrowingSeriesOfAStreamingModelEqualsTheCliStreamOverAllRowsAndSurvivesARestart()
    {
        var model = Save("temporal", temporal: true);
        var db = Path.Combine(_dir, "series.sqlite");
        string before;
        await using (var server = await ServerHarness.StartAsync(new ServerOptions { ForecastDir = model, SeriesDb = db }))
        {
            int at = 0;
            foreach (var size in new[] { 1, 9, 30, 20 })
            {
                var (s, b, t) = await server.PostAsync("/v1/series/plant-7/values", JsonSerializer.Serialize(new { values = Rows(at, at + size), timestamps = Stamps(at, at + size) }));
                Assert.True(s == 200, t);
                at += size;
                Assert.Equal(at, b!["rows"]!.GetValue<int>());
            }
            var (status, body, text) = await server.GetAsync("/v1/series/plant-7/forecast");
            Assert.True(status == 200, text);
            Assert.Equal(60, body!["rows"]!.GetValue<int>());
            var cli = CliPredict(model, 0, 60, stream: true);
            Assert.Equal(cli, AsCsv(body));
            before = body.ToJsonString();
            // /v1/forecast with stream over the same rows agrees.
            (status, body, text) = await server.PostAsync("/v1/forecast", JsonSerializer.Serialize(new { values = Rows(0, 60), timestamps = Stamps(0, 60), stream = true }));
            Assert.True(status == 200, text);
            Assert.Equal(cli, AsCsv(body!));
            // Rows must move forward in time.
            (status, _, text) = await server.PostAsync("/v1/series/plant-7/values", JsonSerializer.Serialize(new { values = Rows(10, 11), timestamps = Stamps(10, 11) }));
            Assert.Equal(400, status);
            Assert.Contains("not after the series' last row", text);
        }
        await using (var server = await ServerHarness.StartAsync(new ServerOptions { ForecastDir = model, SeriesDb = db }))
        {
            var (status, body, text) = await server.GetAsync("/v1/series/plant-7/forecast");
            Assert.True(status == 200, text);
            Assert.Equal(before, body!.ToJsonString());
            using var deleted = await server.Client.DeleteAsync("/v1/series/plant-7", TestContext.Current.CancellationToken);
            Assert.Equal(204, (int)deleted.StatusCode);
            (status, _, _) = await server.GetAsync("/v1/series/plant-7/forecast");
            Assert.Equal(404, status);
        }
    }

    [Theory]
    [InlineData("/v1/forecast", """{"timestamps": []}""", 400, "values is required")]
    [InlineData("/v1/forecast", """{"values": []}""", 400, "values is empty")]
    [InlineData("/v1/forecast", """{"values": [[1, 2]]}""", 400, "values[0] must be an array of 3 numbers (load, temperature, price)")]
    [InlineData("/v1/forecast", """{"values": [[1, "x", 3]]}""", 400, "values[0][1] must be a finite number")]
    [InlineData("/v1/forecast", """{"values": [[1, 2, 3]]}""", 400, "the model reads the last 24")]
    [InlineData("/v1/forecast", """{"values": [[1, 2, 3]], "stream": true}""", 400, "stream needs a Mamba forecaster trained with --embedding temporal")]
    [InlineData("/v1/forecast", """{"values": [[1, 2, 3], [1, 2, 3]], "timestamps": ["2020-01-01 01:00:00", "2020-01-01 00:00:00"]}""", 400, "timestamps[1] 2020-01-01 00:00:00 is not after")]
    [InlineData("/v1/forecast", """{"values": [[1, 2, 3]], "timestamps": ["noon"]}""", 400, "'noon' is not a date and time")]
    [InlineData("/v1/forecast", """{"values": [[1, 2, 3]], "horizon": 5}""", 400, "horizon")]
    [InlineData("/v1/series/a%20b/values", """{"values": [[1, 2, 3]]}""", 400, "series id must be")]
    [InlineData("/v1/series/nobody/forecast", "", 404, "unknown series 'nobody'")]
    [InlineData("/v1/series/short/forecast", "", 400, "has 1 rows; the model reads the last 24")]
    public async Task BadForecastRequestsAre4xxNamingTheProblem(string path, string body, int status, string reason)
    {
        var model = Save("variate", temporal: false);
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ForecastDir = model, SeriesDb = Path.Combine(_dir, "e.sqlite") });
        Assert.Equal(200, (await server.PostAsync("/v1/series/short/values", """{"values": [[1, 2, 3]]}""")).Status);
        var (s, json, text) = body.Length == 0 ? await server.GetAsync(path) : await server.PostAsync(path, body);
        Assert.True(s == status, text);
        Assert.Contains(reason, json!["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task WithoutForecastOrWithABadFolderTheServerSaysSo()
    {
        await using (var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = Path.Combine(_dir, "u.sqlite") }))
        {
            var (s, _, text) = await server.PostAsync("/v1/forecast", """{"values": [[1, 2, 3]]}""");
            Assert.Equal(404, s);
            Assert.Contains("--forecast", text);
        }
        var e = await Assert.ThrowsAnyAsync<Exception>(() => ServerHarness.StartAsync(new ServerOptions { ForecastDir = Path.Combine(_dir, "none") }));
        Assert.Contains(Path.Combine(_dir, "none"), e.Message);
        var empty = Directory.CreateDirectory(Path.Combine(_dir, "empty")).FullName;
        e = await Assert.ThrowsAnyAsync<Exception>(() => ServerHarness.StartAsync(new ServerOptions { ForecastDir = empty }));
        Assert.Contains("forecaster.json", e.Message);
    }
}
