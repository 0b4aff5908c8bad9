using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.Server;
using Mamba4.Server.Forecast;
using Mamba4.Server.Rec;
using Mamba4.Tensors;

namespace Mamba4.Tests.Server;

/// <summary>
/// The user and series stores on a real PostgreSQL server (<see cref="PostgresServer"/>), as several replicas use
/// them: two servers on one database, concurrent events for one user from both, and kill -9 of a replica.
/// </summary>
[Trait("Category", "Postgres")]
public class PostgresStoreTests(PostgresServer postgres)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Request j's two items: a pair no other request sends (j &lt; 49²), so the log shows whether each batch is there once and whole.</summary>
    private static long[] Batch(int j) => [1 + j % 49, 1 + j / 49 % 49];

    private static async Task<int> PostEventsAsync(HttpClient client, string user, long[] items)
    {
        using var r = await client.PostAsync($"/v1/users/{user}/events", new StringContent(JsonSerializer.Serialize(new { items }), Encoding.UTF8, "application/json"), Ct);
        return (int)r.StatusCode;
    }

    /// <summary>
    /// The log holds every acknowledged batch exactly once, each as two adjacent events (batches never interleave), and
    /// nothing else but, at most once each, batches whose request was cut off (<paramref name="unacknowledged"/>).
    /// </summary>
    private static void AssertEachBatchOnceAndWhole(long[] events, IReadOnlyCollection<int> acknowledged, IReadOnlyCollection<int> unacknowledged)
    {
        Assert.True(events.Length % 2 == 0, $"{events.Length} events: a batch of two was split");
        var stored = Enumerable.Range(0, events.Length / 2).Select(i => (events[2 * i], events[2 * i + 1])).ToList();
        Assert.Equal(stored.Count, stored.Distinct().Count());
        var wanted = acknowledged.Select(j => (Batch(j)[0], Batch(j)[1])).ToHashSet();
        var allowed = unacknowledged.Select(j => (Batch(j)[0], Batch(j)[1])).ToHashSet();
        foreach (var pair in wanted) Assert.Contains(pair, stored);
        foreach (var pair in stored) Assert.True(wanted.Contains(pair) || allowed.Contains(pair), $"batch {pair} was stored but never sent");
    }

    /// <summary>The stored state is what a sequential replay of the stored log through the model's step gives, and recommendations match a full forward over the log.</summary>
    private static async Task AssertStateIsTheReplayOfTheLogAsync(string url, string user, HttpClient client)
    {
        UserState stored;
        long[] events;
        using (var store = new UserStateStore(url)) (stored, events) = (store.Get(user)!, store.Events(user));
        Assert.Equal(events.Length, stored.Length);
        using (var model = RecServerTests.FixtureModel())
        using (GradMode.NoGrad())
        using (new TensorScope())
        using (var state = model.NewState(1))
        {
            float[] seqOutput = [];
            foreach (var item in events) seqOutput = model.Step(Tensor.From([item], 1), state).ToFloatArray();
            var replayed = state.ToArray();
            Assert.Equal(replayed.Length, stored.State.Length);
            for (int i = 0; i < replayed.Length; i++) Assert.Equal(replayed[i], stored.State[i], 1e-5f);
            for (int i = 0; i < seqOutput.Length; i++) Assert.Equal(seqOutput[i], stored.SeqOutput[i], 1e-5f);
        }
        var scores = RecServerTests.FullForwardScores(events);
        var recs = JsonNode.Parse(await client.GetStringAsync($"/v1/users/{user}/recommendations?k=20", Ct))!;
        Assert.Equal(events.Length, recs["length"]!.GetValue<long>());
        foreach (var item in recs["items"]!.AsArray())
            Assert.Equal(scores[item!["item"]!.GetValue<long>()], item["score"]!.GetValue<float>(), 1e-4);
    }

    [Fact]
    public async Task TwoReplicasOnOneDatabaseSerialiseOneUsersConcurrentEvents()
    {
        var url = await postgres.NewDatabaseAsync();
        var options = new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = url };
        await using var a = await ServerHarness.StartAsync(options);
        await using var b = await ServerHarness.StartAsync(options);
        // Three workers per replica, 16 two-item batches each, all for one user, all at once.
        var requests = Enumerable.Range(0, 96).ToArray();
        var statuses = await Task.WhenAll(Enumerable.Range(0, 6).Select(w => Task.Run(async () =>
        {
            var client = (w % 2 == 0 ? a : b).Client;
            var codes = new List<int>();
            for (int j = w; j < requests.Length; j += 6) codes.Add(await PostEventsAsync(client, "ann", Batch(j)));
            return codes;
        }, Ct)));
        Assert.All(statuses.SelectMany(s => s), s => Assert.Equal(200, s));
        using (var store = new UserStateStore(url)) AssertEachBatchOnceAndWhole(store.Events("ann"), requests, []);
        await AssertStateIsTheReplayOfTheLogAsync(url, "ann", b.Client);
        // Both replicas answer the same state.
        var infoA = JsonNode.Parse(await a.Client.GetStringAsync("/v1/users/ann", Ct))!;
        var infoB = JsonNode.Parse(await b.Client.GetStringAsync("/v1/users/ann", Ct))!;
        Assert.Equal(192, infoA["length"]!.GetValue<long>());
        Assert.Equal(192, infoB["length"]!.GetValue<long>());
    }

    [Fact]
    public async Task AnAcknowledgedEventSurvivesKill9OfAReplica()
    {
        var url = await postgres.NewDatabaseAsync();
        await using var survivor = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = url });
        var acked = new List<int>();
        var cutOff = new List<int>();
        using (var doomed = ServeCliTests.ServeProcess.Start("--rec", ServerHarness.Rec1, "--state-db", url))
        {
            using var stop = new CancellationTokenSource();
            async Task Post(HttpClient client, int first)
            {
                for (int j = first; j < first + 400 && !stop.IsCancellationRequested; j++)
                {
                    try
                    {
                        using var r = await client.PostAsync("/v1/users/bo/events", new StringContent(JsonSerializer.Serialize(new { items = Batch(j) }), Encoding.UTF8, "application/json"), stop.Token);
                        if (r.StatusCode != System.Net.HttpStatusCode.OK) throw new InvalidOperationException($"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
                        lock (acked) acked.Add(j);
                    }
                    catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
                    {
                        lock (acked) cutOff.Add(j);
                        return;
                    }
                }
            }
            var posters = new[] { Task.Run(() => Post(doomed.Client, 0), Ct), Task.Run(() => Post(survivor.Client, 1000), Ct) };
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (acked.Count(j => j < 1000) < 20 && DateTime.UtcNow < deadline) await Task.Delay(10, Ct);
            doomed.Process.Kill(entireProcessTree: true);   // SIGKILL: no shutdown, maybe mid-transaction
            doomed.Process.WaitForExit(10_000);
            await Task.Delay(100, Ct);
            stop.Cancel();
            await Task.WhenAll(posters);
        }
        Assert.True(acked.Count(j => j < 1000) >= 20, "too few events were acknowledged by the killed replica");
        using (var store = new UserStateStore(url)) AssertEachBatchOnceAndWhole(store.Events("bo"), acked, cutOff);
        // The killed replica held no lock that outlives it: the survivor still writes the user.
        Assert.Equal(200, await PostEventsAsync(survivor.Client, "bo", Batch(2000)));
        using (var store = new UserStateStore(url)) AssertEachBatchOnceAndWhole(store.Events("bo"), [.. acked, 2000], cutOff);
        await AssertStateIsTheReplayOfTheLogAsync(url, "bo", survivor.Client);
    }

    [Fact]
    public async Task OneIdempotencyKeySentToTwoReplicasAtOnceAppliesOnce()
    {
        var url = await postgres.NewDatabaseAsync();
        var options = new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = url };
        await using var a = await ServerHarness.StartAsync(options);
        await using var b = await ServerHarness.StartAsync(options);
        async Task<(int Status, bool Replayed, string Text)> Send(ServerHarness server, string user, string key, int batch)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/users/{user}/events")
            {
                Content = new StringContent(JsonSerializer.Serialize(new { items = Batch(batch) }), Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("Idempotency-Key", key);
            using var response = await server.Client.SendAsync(request, Ct);
            return ((int)response.StatusCode, response.Headers.Contains("Idempotent-Replayed"), await response.Content.ReadAsStringAsync(Ct));
        }
        for (int round = 0; round < 8; round++)
        {
            // One key and one request, sent to both replicas at once: applied once, the other gets the stored reply.
            var same = await Task.WhenAll(Task.Run(() => Send(a, "cy", $"same-{round}", round), Ct), Task.Run(() => Send(b, "cy", $"same-{round}", round), Ct));
            Assert.All(same, r => Assert.Equal(200, r.Status));
            Assert.Single(same, r => r.Replayed);
            Assert.Equal(same[0].Text, same[1].Text);
            // One key for two users' requests at once (they lock different users): one applies, the other is a 422.
            var two = await Task.WhenAll(Task.Run(() => Send(a, "dee", $"two-{round}", 100 + round), Ct), Task.Run(() => Send(b, "eve", $"two-{round}", 200 + round), Ct));
            Assert.Equal([200, 422], two.Select(r => r.Status).Order());
        }
        using var store = new UserStateStore(url);
        AssertEachBatchOnceAndWhole(store.Events("cy"), Enumerable.Range(0, 8).ToArray(), []);
        Assert.Equal(16, store.Events("dee").Length + store.Events("eve").Length);   // 8 two-item batches between them
    }

    [Fact]
    public async Task TheStoresRoundTripOnPostgres()
    {
        var url = await postgres.NewDatabaseAsync();
        using (var users = new UserStateStore(url))
        {
            var s = new UserState("u", "v1", 3, [1f, -2f, float.Epsilon], [0.5f], "2026-01-01T00:00:00Z");
            users.Append(s, [7, 8, 9]);
            var got = users.Get("u")!;
            Assert.Equal(("v1", 3L, "2026-01-01T00:00:00Z"), (got.ModelVersion, got.Length, got.UpdatedAt));
            Assert.Equal(s.State, got.State);
            Assert.Equal(s.SeqOutput, got.SeqOutput);
            Assert.Equal([7L, 8, 9], users.Events("u"));
            Assert.Equal(1, users.UserCount());
            long[] many = [.. Enumerable.Range(1, 600).Select(i => (long)i)];   // more than one INSERT statement's 256 rows
            users.Append(new UserState("big", "v1", many.Length, [], [], "t"), many);
            Assert.Equal(many, users.Events("big"));
            Assert.True(users.Delete("big"));
            Assert.True(users.Delete("u"));
            Assert.False(users.Delete("u"));
            Assert.Null(users.Get("u"));
            Assert.Empty(users.Events("u"));
        }
        using (var series = new SeriesStore(url))
        {
            var s = new SeriesState("m", "v2", 2, [3f], [4f], "t");
            series.Append(s, [1.5, 2.5, 3.5, 4.5], 2, null);   // no timestamps: NULL in the at column
            Assert.Null(series.Rows("m", 2).Timestamps);
            Assert.Equal([3.5, 4.5], series.Rows("m", 2, 1).Values);
            var stamps = new[] { new DateTime(2026, 1, 2), new DateTime(2026, 1, 3) };
            series.Append(new SeriesState("n", "v2", 2, [], [], "t"), [1, 2], 1, stamps);
            Assert.Equal(stamps, series.Rows("n", 1).Timestamps);
            Assert.Equal(2, series.Get("m")!.Rows);
            Assert.True(series.Delete("m"));
            Assert.Null(series.Get("m"));
        }
    }

    [Fact]
    public async Task AWrongPasswordIsOneLineWithoutThePassword()
    {
        var url = await postgres.NewDatabaseAsync();
        var wrong = url.Replace(Uri.EscapeDataString(PostgresServer.Password), "not-the-password", StringComparison.Ordinal);
        var e = Assert.Throws<IOException>(() => new UserStateStore(wrong));
        Assert.StartsWith("cannot open the user state database postgres://mamba4@127.0.0.1:", e.Message);
        Assert.Contains("password authentication failed", e.Message);
        Assert.EndsWith("(check the URL given to --state-db)", e.Message);
        Assert.DoesNotContain("not-the-password", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}

/// <summary>postgres:// URLs that cannot work fail with one line naming the option, never showing the password; no server needed.</summary>
public class PostgresUrlTests
{
    [Theory]
    [InlineData("postgres://u:secret@/db", "no host")]
    [InlineData("postgres://u:secret@localhost:5432", "no database name")]
    [InlineData("postgres://:secret@localhost/db", "no user name")]
    [InlineData("postgres://u:secret@localhost/db?connect_timeout=0", "connect_timeout must be whole seconds in [1, 300], got '0'")]
    [InlineData("postgres://u:secret@localhost/db?sslmode=verify-full", "sslmode must be disable, prefer or require, got 'verify-full'")]
    [InlineData("postgres://u:secret@localhost/db?pool=9", "unknown parameter 'pool'")]
    public void AMalformedUrlIsOneLineWithoutThePassword(string url, string why)
    {
        var e = Assert.Throws<ArgumentException>(() => new UserStateStore(url));
        Assert.StartsWith($"--state-db: {why} in 'postgres://", e.Message);
        Assert.Contains(":***@", e.Message);
        Assert.DoesNotContain("secret", e.Message);
    }

    [Fact]
    public void TheUrlsPartsReachNpgsqlUnescaped()
    {
        var b = PostgresStateDb.ConnectionString("postgresql://app%40x:p%3A%2Fw@db.internal:6543/my%20db?connect_timeout=2&sslmode=require", "--series-db");
        Assert.Equal(("app@x", "p:/w", "db.internal", 6543, "my db", 2), (b.Username, b.Password, b.Host, b.Port, b.Database, b.Timeout));
        Assert.Equal(Npgsql.SslMode.Require, b.SslMode);
        Assert.Equal(5432, PostgresStateDb.ConnectionString("postgres://u@h/d", "--state-db").Port);
        Assert.Equal(5, PostgresStateDb.ConnectionString("postgres://u@h/d", "--state-db").Timeout);   // the bounded default
    }

    [Fact]
    public void NoServerListeningIsOneLineNamingTheDatabase()
    {
        int port;
        using (var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0)) { l.Start(); port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port; }
        var e = Assert.Throws<IOException>(() => new SeriesStore($"postgres://u:secret@127.0.0.1:{port}/db?connect_timeout=2"));
        Assert.StartsWith($"cannot open the series database postgres://u@127.0.0.1:{port}/db: ", e.Message);
        Assert.EndsWith("(check the URL given to --series-db)", e.Message);
        Assert.DoesNotContain("secret", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
