using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Mamba4.Server;

namespace Mamba4.Tests.Server;

/// <summary>Metrics through OpenTelemetry's Prometheus exporter and the request traces of ActivitySource "Mamba4.Server".</summary>
public class TelemetryTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string TempDb() => Path.Combine(Path.GetTempPath(), "mamba4-telemetry-" + Guid.NewGuid().ToString("N")[..8] + ".sqlite");

    [Fact]
    public async Task TwoServersInOneProcessCountApart()
    {
        var (dbA, dbB) = (TempDb(), TempDb());
        try
        {
            await using var a = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = dbA });
            await using var b = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = dbB });
            Assert.Equal(200, (await a.PostAsync("/v1/users/x/events", JsonSerializer.Serialize(new { items = new[] { 3, 4, 5 } }))).Status);
            Assert.Equal(3, await a.MetricAsync("mamba4_rec_events_total"));
            Assert.Equal(0, await b.MetricAsync("mamba4_rec_events_total"));   // exported from the start, and not a's
            var text = await a.Client.GetStringAsync("/metrics", Ct);
            Assert.Contains("mamba4_requests_total{route=\"/v1/users/{id}/events\",status=\"200\"} 1", text);
            Assert.Contains("mamba4_request_duration_seconds_count{route=\"/v1/users/{id}/events\"} 1", text);
            Assert.Contains("# TYPE mamba4_rec_events_total counter", text);
            Assert.DoesNotContain("otel_scope_name", text);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            foreach (var db in new[] { dbA, dbB })
                foreach (var suffix in new[] { "", "-wal", "-shm" }) File.Delete(db + suffix);
        }
    }

    [Fact]
    public async Task ARequestIsASpanNamedByItsRouteWithItsStoreTransactionInside()
    {
        var stopped = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == ServerTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Add,
        };
        ActivitySource.AddActivityListener(listener);
        var db = TempDb();
        var user = "trace-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            await using var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db });
            Assert.Equal(200, (await server.PostAsync($"/v1/users/{user}/events", JsonSerializer.Serialize(new { items = new[] { 1 } }))).Status);
            Assert.Equal(404, (await server.GetAsync($"/v1/users/{user}-unknown")).Status);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            foreach (var suffix in new[] { "", "-wal", "-shm" }) File.Delete(db + suffix);
        }
        var post = Assert.Single(stopped, a => a.GetTagItem("url.path") as string == $"/v1/users/{user}/events");
        Assert.Equal("POST /v1/users/{id}/events", post.DisplayName);
        Assert.Equal(ActivityKind.Server, post.Kind);
        Assert.Equal(200, post.GetTagItem("http.response.status_code"));
        var tx = Assert.Single(stopped, a => a.ParentSpanId == post.SpanId);
        Assert.Equal("state_db transaction", tx.DisplayName);
        Assert.Equal("sqlite", tx.GetTagItem("db.system"));
        var get = Assert.Single(stopped, a => a.GetTagItem("url.path") as string == $"/v1/users/{user}-unknown");
        Assert.Equal("GET /v1/users/{id}", get.DisplayName);
        Assert.Equal(404, get.GetTagItem("http.response.status_code"));
    }
}
