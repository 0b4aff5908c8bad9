using System.Text;
using System.Text.Json;
using Mamba4.Data.TimeSeries;
using Mamba4.Server;
using Mamba4.Server.Forecast;
using Mamba4.Server.Rec;
using Mamba4.Tasks.Forecasting;
using Microsoft.Data.Sqlite;

namespace Mamba4.Tests.Server;

/// <summary>Idempotency-Key on POST /v1/users/{id}/events and /v1/series/{id}/values: a request retried after a lost reply is applied once.</summary>
public sealed class IdempotencyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-idempotency-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, true);
    }

    private string Db => Path.Combine(_dir, "states.sqlite");

    private sealed class ManualClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private ServerOptions Rec(TimeProvider? clock = null) => new() { RecDir = ServerHarness.Rec1, StateDb = Db, Clock = clock ?? TimeProvider.System, IdempotencyKeyLifetime = TimeSpan.FromHours(1) };

    /// <summary>A POST with an Idempotency-Key (none when null): status, body, and whether the reply says it was replayed.</summary>
    private static async Task<(int Status, string Body, bool Replayed)> PostAsync(ServerHarness server, string path, string json, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null) Assert.True(request.Headers.TryAddWithoutValidation("Idempotency-Key", key));
        using var response = await server.Client.SendAsync(request, TestContext.Current.CancellationToken);
        bool replayed = response.Headers.TryGetValues("Idempotent-Replayed", out var values) && values.Single() == "true";
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), replayed);
    }

    private long[] Events(string user)
    {
        using var store = new UserStateStore(Db);
        return store.Events(user);
    }

    private string[] StoredKeys()
    {
        using var c = new SqliteConnection($"Data Source={Db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT key FROM idempotency_keys ORDER BY key";
        using var r = cmd.ExecuteReader();
        var keys = new List<string>();
        while (r.Read()) keys.Add(r.GetString(0));
        return [.. keys];
    }

    [Fact]
    public async Task ARetriedEventBatchIsAppliedOnceAlsoAfterARestart()
    {
        string first;
        await using (var server = await ServerHarness.StartAsync(Rec()))
        {
            var (status, body, replayed) = await PostAsync(server, "/v1/users/ann/events", """{"items": [1, 2, 3]}""", "retry-me");
            Assert.True(status == 200, body);
            Assert.False(replayed);
            first = body;
            (status, body, replayed) = await PostAsync(server, "/v1/users/ann/events", """{"items": [1, 2, 3]}""", "retry-me");
            Assert.Equal((200, first, true), (status, body, replayed));
            Assert.Equal([1L, 2, 3], Events("ann"));
            // The same key with another body, or for another user, is refused and applies nothing.
            (status, body, _) = await PostAsync(server, "/v1/users/ann/events", """{"items": [4]}""", "retry-me");
            Assert.Equal(422, status);
            Assert.Contains("Idempotency-Key reused with a different request", body);
            (status, _, _) = await PostAsync(server, "/v1/users/bob/events", """{"items": [1, 2, 3]}""", "retry-me");
            Assert.Equal(422, status);
            Assert.Equal([1L, 2, 3], Events("ann"));
            Assert.Empty(Events("bob"));
        }
        await using (var server = await ServerHarness.StartAsync(Rec()))
        {
            var (status, body, replayed) = await PostAsync(server, "/v1/users/ann/events", """{"items": [1, 2, 3]}""", "retry-me");
            Assert.Equal((200, first, true), (status, body, replayed));
            Assert.Equal([1L, 2, 3], Events("ann"));
            // Without a key every request applies.
            Assert.Equal(200, (await PostAsync(server, "/v1/users/ann/events", """{"items": [1, 2, 3]}""", null)).Status);
            Assert.Equal([1L, 2, 3, 1, 2, 3], Events("ann"));
        }
    }

    [Fact]
    public async Task ConcurrentDuplicatesApplyOnce()
    {
        await using var server = await ServerHarness.StartAsync(Rec());
        var replies = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => PostAsync(server, "/v1/users/cy/events", """{"items": [7, 8]}""", "once")));
        Assert.All(replies, r => Assert.Equal(200, r.Status));
        Assert.Single(replies, r => !r.Replayed);
        Assert.Single(replies.Select(r => r.Body).Distinct());
        Assert.Equal([7L, 8], Events("cy"));
    }

    [Fact]
    public async Task KeysExpireAfterTheirLifetimeAndEachWriteForgetsABoundedNumber()
    {
        var clock = new ManualClock(new DateTimeOffset(2024, 5, 1, 12, 0, 0, TimeSpan.Zero));
        await using var server = await ServerHarness.StartAsync(Rec(clock));
        Assert.False((await PostAsync(server, "/v1/users/di/events", """{"items": [1]}""", "a")).Replayed);
        clock.Now += TimeSpan.FromMinutes(59);
        Assert.True((await PostAsync(server, "/v1/users/di/events", """{"items": [1]}""", "a")).Replayed);
        Assert.Equal([1L], Events("di"));
        // Past the lifetime (1 h) the next write forgets "a"; a request with it is then a new request.
        clock.Now += TimeSpan.FromMinutes(2);
        Assert.False((await PostAsync(server, "/v1/users/di/events", """{"items": [2]}""", "b")).Replayed);
        Assert.Equal(["b"], StoredKeys());
        Assert.False((await PostAsync(server, "/v1/users/di/events", """{"items": [1]}""", "a")).Replayed);
        Assert.Equal([1L, 2, 1], Events("di"));

        // Many expired keys: each write forgets at most ForgetPerWrite of them.
        using (var c = new SqliteConnection($"Data Source={Db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "INSERT INTO idempotency_keys VALUES ($k, 'POST /v1/users/x/events', x'00', 200, x'7b7d', 0)";
            var key = cmd.Parameters.Add("$k", SqliteType.Text);
            for (int i = 0; i < 100; i++) { key.Value = $"expired-{i:D3}"; cmd.ExecuteNonQuery(); }
        }
        Assert.Equal(200, (await PostAsync(server, "/v1/users/di/events", """{"items": [3]}""", null)).Status);
        Assert.Equal(100 - IdempotencyKeys.ForgetPerWrite + 2, StoredKeys().Length);   // + "a" and "b", still live
    }

    [Theory]
    [InlineData("ключ")]
    [InlineData("tab\there")]
    [InlineData(null)]   // 256 characters
    public async Task ABadKeyIs400AndAppliesNothing(string? key)
    {
        key ??= new string('k', IdempotentRequest.MaxKeyLength + 1);
        await using var server = await ServerHarness.StartAsync(Rec());
        var (status, body, _) = await PostAsync(server, "/v1/users/ed/events", """{"items": [1]}""", key);
        Assert.Equal(400, status);
        Assert.Contains("Idempotency-Key must be 1 to 255 printable ASCII characters", body);
        Assert.Empty(Events("ed"));
        Assert.Equal(200, (await PostAsync(server, "/v1/users/ed/events", """{"items": [1]}""", new string('k', IdempotentRequest.MaxKeyLength))).Status);
    }

    [Fact]
    public async Task ARetriedSeriesAppendIsAppliedOnce()
    {
        var series = SyntheticSeries.Generate(rows: 300);
        var model = Path.Combine(_dir, "model");
        var config = ForecastDefaults.Config("mamba", 24, 12, 3, 0) with { DModel = 8, DFf = 8, Layers = 1, Embedding = "temporal", RevIn = false };
        using (var m = Models.Forecaster.Create(config)) SavedForecaster.Save(model, m, ForecastData.Prepare(series, "ratio", 24, 12, timeFeatures: false));
        var rows = JsonSerializer.Serialize(new { values = Enumerable.Range(0, 10).Select(r => new[] { series[r, 0], series[r, 1], series[r, 2] }) });
        var options = new ServerOptions { ForecastDir = model, SeriesDb = Db };
        await using var server = await ServerHarness.StartAsync(options);
        var (status, first, replayed) = await PostAsync(server, "/v1/series/meter/values", rows, "rows-0-10");
        Assert.True(status == 200 && !replayed, first);
        SeriesState before;
        using (var store = new SeriesStore(Db)) before = store.Get("meter")!;
        var (status2, again, replayed2) = await PostAsync(server, "/v1/series/meter/values", rows, "rows-0-10");
        Assert.Equal((200, first, true), (status2, again, replayed2));
        using (var store = new SeriesStore(Db))
        {
            var after = store.Get("meter")!;
            Assert.Equal(10, after.Rows);
            Assert.Equal(before.UpdatedAt, after.UpdatedAt);
            Assert.Equal(before.State, after.State);
            Assert.Equal(10, store.Rows("meter", 3).Values.Length / 3);
        }
        var (status3, body3, _) = await PostAsync(server, "/v1/series/meter/values", """{"values": [[1, 2, 3]]}""", "rows-0-10");
        Assert.Equal(422, status3);
        Assert.Contains("Idempotency-Key reused with a different request", body3);
    }
}
