using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Data.TimeSeries;
using Mamba4.Server;
using Mamba4.Tasks.Forecasting;
using Mamba4.Server.Forecast;
using Mamba4.Tasks.Synthetic;
using Mamba4.Tensors;
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

    /// <summary>
    /// An untrained forecaster (random weights suffice for parity) saved with the synthetic series' columns and statistics;
    /// <paramref name="embeddingScale"/> multiplies the temporal value embedding's weights (1e8: the series' own values
    /// stay finite, one 10⁵ standard deviations out, inside the value bound, overflows the float32 state).
    /// </summary>
    private string Save(string name, bool temporal, float embeddingScale = 1)
    {
        var dir = Path.Combine(_dir, name);
        var data = ForecastData.Prepare(Series, "ratio", 24, 12, timeFeatures: false);
        var config = ForecastDefaults.Config("mamba", 24, 12, 3, 0) with { DModel = 8, DFf = 8, Layers = 1 };
        if (temporal) config = config with { Embedding = "temporal", RevIn = false };
        using (var m = Models.Forecaster.Create(config))
        {
            var (_, weight) = m.NamedParameters().Single(p => p.Name == "embedding.weight");
            weight.CopyFrom(Tensor.From(weight.ToFloatArray().Select(w => w * embeddingScale).ToArray(), weight.Shape.ToArray()));
            SavedForecaster.Save(dir, m, data);
        }
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
    private static void AssertFinite(SeriesState state)
    {
        Assert.All(state.State, v => Assert.True(float.IsFinite(v)));
        Assert.All(state.Hidden, v => Assert.True(float.IsFinite(v)));
        Assert.NotEmpty(state.Hidden);
    }

    private static void AssertFiniteForecast(JsonNode answer) =>
        Assert.All(answer["values"]!.AsArray().SelectMany(row => row!.AsArray()), v => Assert.True(double.IsFinite(v!.GetValue<double>())));

    [Fact]
    public async Task AHugeFiniteValueIs400NamingRowAndColumnAndTheSeriesStaysUsable()
    {
        var model = Save("temporal", temporal: true);
        var db = Path.Combine(_dir, "huge.sqlite");
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ForecastDir = model, SeriesDb = db });
        Assert.Equal(200, (await server.PostAsync("/v1/series/plant/values", JsonSerializer.Serialize(new { values = Rows(0, 30), timestamps = Stamps(0, 30) }))).Status);
        var bad = Rows(30, 32);
        bad[1][1] = 3.5e38;
        var (status, body, text) = await server.PostAsync("/v1/series/plant/values", JsonSerializer.Serialize(new { values = bad, timestamps = Stamps(30, 32) }));
        Assert.True(status == 400, text);
        var message = body!["error"]!["message"]!.GetValue<string>();
        Assert.StartsWith("values[1][1] (column 'temperature'): 3.5E+38 is ", message);
        Assert.Contains("within 1e6", message);
        // The stateless forecast refuses it the same way.
        var window = Rows(0, 30);
        window[29][1] = 3.5e38;
        (status, body, text) = await server.PostAsync("/v1/forecast", JsonSerializer.Serialize(new { values = window, timestamps = Stamps(0, 30) }));
        Assert.True(status == 400, text);
        Assert.StartsWith("values[29][1] (column 'temperature'): 3.5E+38 is ", body!["error"]!["message"]!.GetValue<string>());
        // Nothing was stored: the state is still the finite one after 30 rows.
        using (var store = new SeriesStore(db))
        {
            var stored = store.Get("plant")!;
            Assert.Equal(30, stored.Rows);
            AssertFinite(stored);
        }
        // A normal row and the forecast after it succeed.
        (status, body, text) = await server.PostAsync("/v1/series/plant/values", JsonSerializer.Serialize(new { values = Rows(30, 31), timestamps = Stamps(30, 31) }));
        Assert.True(status == 200, text);
        Assert.Equal(31, body!["rows"]!.GetValue<int>());
        (status, body, text) = await server.GetAsync("/v1/series/plant/forecast");
        Assert.True(status == 200, text);
        AssertFiniteForecast(body!);
    }

    [Fact]
    public async Task ARowThatWouldMakeTheStateNonFiniteIs422NamingItAndNothingIsStored()
    {
        var model = Save("overflowing", temporal: true, embeddingScale: 1e8f);
        var db = Path.Combine(_dir, "overflow.sqlite");
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ForecastDir = model, SeriesDb = db });
        Assert.Equal(200, (await server.PostAsync("/v1/series/plant/values", JsonSerializer.Serialize(new { values = Rows(0, 30), timestamps = Stamps(0, 30) }))).Status);
        var bad = Rows(30, 33);
        bad[2][1] = 4e5;   // about 10⁵ training standard deviations: inside the value bound, beyond what this model's float32 state holds
        var (status, body, text) = await server.PostAsync("/v1/series/plant/values", JsonSerializer.Serialize(new { values = bad, timestamps = Stamps(30, 33) }));
        Assert.True(status == 422, text);
        Assert.StartsWith("values[2]: the series' state would become non-finite after this row", body!["error"]!["message"]!.GetValue<string>());
        using (var store = new SeriesStore(db))
        {
            var stored = store.Get("plant")!;
            Assert.Equal(30, stored.Rows);
            AssertFinite(stored);
            Assert.Equal(30, store.Rows("plant", 3).Values.Length / 3);
        }
        // The windowed forecast over such rows is not printed as NaN either.
        var window = Rows(0, 24);
        window[23][1] = 4e5;
        (status, body, text) = await server.PostAsync("/v1/forecast", JsonSerializer.Serialize(new { values = window, timestamps = Stamps(0, 24) }));
        Assert.True(status == 422, text);
        Assert.Contains("the forecast is not finite", body!["error"]!["message"]!.GetValue<string>());
        (status, _, text) = await server.PostAsync("/v1/series/plant/values", JsonSerializer.Serialize(new { values = Rows(30, 31), timestamps = Stamps(30, 31) }));
        Assert.True(status == 200, text);
        (status, body, text) = await server.GetAsync("/v1/series/plant/forecast");
        Assert.True(status == 200, text);
        AssertFiniteForecast(body!);
    }

    [Fact]
    public async Task ASeriesAnOlderServerPoisonedIsA409ThatSaysToDeleteIt()
    {
        var model = Save("temporal", temporal: true);
        var db = Path.Combine(_dir, "poisoned.sqlite");
        await using (var server = await ServerHarness.StartAsync(new ServerOptions { ForecastDir = model, SeriesDb = db }))
            Assert.Equal(200, (await server.PostAsync("/v1/series/plant/values", JsonSerializer.Serialize(new { values = Rows(0, 30), timestamps = Stamps(0, 30) }))).Status);
        // What older versions stored: a non-finite state, and (under another checkpoint) a row no model can read.
        using (var store = new SeriesStore(db))
        {
            var stored = store.Get("plant")!;
            store.Put(stored with { State = stored.State.Select(_ => float.NaN).ToArray() });
            store.Append(new SeriesState("older", "another-checkpoint", 2, [], [], "2024-01-01T00:00:00Z"), [10, 20, 50, 10, 3.5e38, 50], 3, null);
        }
        await using (var server = await ServerHarness.StartAsync(new ServerOptions { ForecastDir = model, SeriesDb = db }))
        {
            var (status, body, text) = await server.GetAsync("/v1/series/plant/forecast");
            Assert.True(status == 409, text);
            Assert.Equal("series 'plant' is unusable: its stored state is not finite; DELETE /v1/series/plant and post its rows again", body!["error"]!["message"]!.GetValue<string>());
            (status, _, text) = await server.PostAsync("/v1/series/plant/values", JsonSerializer.Serialize(new { values = Rows(30, 31), timestamps = Stamps(30, 31) }));
            Assert.True(status == 409, text);
            (status, body, text) = await server.GetAsync("/v1/series/older/forecast");
            Assert.True(status == 409, text);
            Assert.Contains("row 1: column 'temperature': 3.5E+38 is ", body!["error"]!["message"]!.GetValue<string>());
            Assert.Contains("DELETE /v1/series/older", body["error"]!["message"]!.GetValue<string>());
            using var deleted = await server.Client.DeleteAsync("/v1/series/plant", TestContext.Current.CancellationToken);
            Assert.Equal(204, (int)deleted.StatusCode);
            (status, _, text) = await server.PostAsync("/v1/series/plant/values", JsonSerializer.Serialize(new { values = Rows(0, 30), timestamps = Stamps(0, 30) }));
            Assert.True(status == 200, text);
            (status, body, text) = await server.GetAsync("/v1/series/plant/forecast");
            Assert.True(status == 200, text);
            AssertFiniteForecast(body!);
        }
    }
}
