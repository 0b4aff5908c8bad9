using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Server;
using Mamba4.Tensors;
using Microsoft.Data.Sqlite;

namespace Mamba4.Tests.Server;

/// <summary>/v1/recommend and the event API over the Mamba4Rec fixture; user states in SQLite.</summary>
public class RecServerTests
{
    private static string TempDb() => Path.Combine(Path.GetTempPath(), "mamba4-users-" + Guid.NewGuid().ToString("N")[..8] + ".sqlite");

    private static void DeleteDb(string path)
    {
        SqliteConnection.ClearAllPools();
        foreach (var suffix in new[] { "", "-wal", "-shm" }) File.Delete(path + suffix);
    }

    /// <summary>Scores over all items after a full forward over the history, with the model loaded as the fixture tests load it.</summary>
    internal static float[] FullForwardScores(long[] history)
    {
        using var model = FixtureModel();
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        return model.Scores(model.Forward(Tensor.From(history, 1, history.Length), Tensor.From([(long)history.Length], 1))).ToFloatArray();
    }

    /// <summary>The rec fixture's model, built from its tensors' shapes and the fixture's known config (not through the server's loader), in eval mode.</summary>
    internal static Mamba4Rec FixtureModel()
    {
        var dir = ServerHarness.Rec1;
        using var weights = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        var items = weights.Info("item_embedding.weight").Shape;
        var model = new Mamba4Rec(new Mamba4RecConfig
        {
            NItems = items[0], HiddenSize = items[1], NumLayers = 1, DState = 8, DConv = 4, Expand = 2, InnerSize = 64, Dropout = 0f, LayerNormEps = 1e-12f,
        });
        model.LoadSafetensors(Path.Combine(dir, "model.safetensors"));
        model.Eval();
        return model;
    }

    private static (long Item, float Score)[] Items(JsonNode body) =>
        body["items"]!.AsArray().Select(n => (n!["item"]!.GetValue<long>(), n["score"]!.GetValue<float>())).ToArray();

    private static void AssertMatchesScores(float[] scores, (long Item, float Score)[] items, int k, ISet<long>? excluded = null)
    {
        Assert.Equal(k, items.Length);
        foreach (var (item, score) in items)
        {
            Assert.InRange(item, 1, scores.Length - 1);
            Assert.Equal(scores[item], score, 1e-4);
            Assert.False(excluded?.Contains(item) ?? false, $"item {item} was excluded");
        }
        // The k returned are the k best (up to float noise): nothing left out scores clearly higher than the last one.
        var chosen = items.Select(i => i.Item).ToHashSet();
        float last = items[^1].Score;
        for (long i = 1; i < scores.Length; i++)
            if (!chosen.Contains(i) && !(excluded?.Contains(i) ?? false)) Assert.True(scores[i] <= last + 1e-4, $"item {i} ({scores[i]}) beats the last returned ({last})");
        for (int i = 1; i < items.Length; i++) Assert.True(items[i - 1].Score >= items[i].Score);
    }

    [Fact]
    public async Task RecommendEqualsTheFullForwardAndHonoursExclusions()
    {
        var db = TempDb();
        try
        {
            await using var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db });
            long[] history = [3, 17, 4, 4, 29, 11, 8];
            var scores = FullForwardScores(history);
            var (status, body, text) = await server.PostAsync("/v1/recommend", JsonSerializer.Serialize(new { history, k = 10 }));
            Assert.True(status == 200, text);
            AssertMatchesScores(scores, Items(body!), 10);
            (status, body, text) = await server.PostAsync("/v1/recommend", JsonSerializer.Serialize(new { history, k = 49 }));
            Assert.True(status == 200, text);
            AssertMatchesScores(scores, Items(body!), 49);

            var top = Items(body!).Take(3).Select(i => i.Item).ToArray();
            (status, body, text) = await server.PostAsync("/v1/recommend", JsonSerializer.Serialize(new { history, k = 5, exclude = top, exclude_history = true }));
            Assert.True(status == 200, text);
            AssertMatchesScores(scores, Items(body!), 5, top.Concat(history).ToHashSet());
        }
        finally { DeleteDb(db); }
    }

    [Fact]
    public async Task EventsUpdateTheStoredStateWhichSurvivesARestartAndEqualsTheFullForward()
    {
        var db = TempDb();
        var rng = new Random(5);
        var history = Enumerable.Range(0, 23).Select(_ => (long)rng.Next(1, 50)).ToArray();
        try
        {
            JsonNode before;
            await using (var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db }))
            {
                int at = 0;
                foreach (var size in new[] { 1, 5, 2, 15 })
                {
                    var (status, body, text) = await server.PostAsync("/v1/users/alice/events", JsonSerializer.Serialize(new { items = history[at..(at + size)] }));
                    Assert.True(status == 200, text);
                    at += size;
                    Assert.Equal(at, body!["length"]!.GetValue<int>());
                }
                var (s2, b2, t2) = await server.PostAsync("/v1/users/bob/events", """{"items": [1, 2, 3]}""");
                Assert.True(s2 == 200, t2);
                var (s, b, t) = await server.GetAsync("/v1/users/alice/recommendations?k=49");
                Assert.True(s == 200, t);
                AssertMatchesScores(FullForwardScores(history), Items(b!), 49);
                Assert.Equal(23, b!["length"]!.GetValue<int>());
                before = b;
                // /v1/recommend over the same history agrees with the event API.
                (s, b, t) = await server.PostAsync("/v1/recommend", JsonSerializer.Serialize(new { history, k = 49 }));
                var fromEvents = Items(before).ToDictionary(i => i.Item, i => i.Score);
                foreach (var (item, score) in Items(b!)) Assert.Equal(fromEvents[item], score, 1e-4);
            }
            await using (var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db }))
            {
                var (s, b, t) = await server.GetAsync("/v1/users/alice/recommendations?k=49");
                Assert.True(s == 200, t);
                Assert.Equal(before.ToJsonString(), b!.ToJsonString());
                (s, b, _) = await server.GetAsync("/v1/users/bob");
                Assert.Equal(3, b!["length"]!.GetValue<int>());

                // exclude_history drops what the user has seen; exclude drops named items.
                (s, b, t) = await server.GetAsync("/v1/users/alice/recommendations?k=5&exclude_history=true&exclude=1,2");
                Assert.True(s == 200, t);
                AssertMatchesScores(FullForwardScores(history), Items(b!), 5, history.Concat([1L, 2L]).ToHashSet());

                using var deleted = await server.Client.DeleteAsync("/v1/users/bob", TestContext.Current.CancellationToken);
                Assert.Equal(204, (int)deleted.StatusCode);
                (s, _, _) = await server.GetAsync("/v1/users/bob/recommendations");
                Assert.Equal(404, s);
            }
        }
        finally { DeleteDb(db); }
    }

    [Fact]
    public async Task AStateWrittenByAnotherCheckpointIsRecomputedFromTheEventLog()
    {
        var db = TempDb();
        try
        {
            long[] history = [5, 6, 7, 8, 9, 10];
            await using (var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db }))
                Assert.Equal(200, (await server.PostAsync("/v1/users/carol/events", JsonSerializer.Serialize(new { items = history }))).Status);
            // Pretend another checkpoint wrote carol's state: wrong version, garbage numbers.
            using (var c = new SqliteConnection($"Data Source={db};Pooling=False"))
            {
                c.Open();
                using var cmd = c.CreateCommand();
                cmd.CommandText = "UPDATE users SET model_version = 'older', state = zeroblob(length(state)), seq_output = zeroblob(length(seq_output))";
                Assert.Equal(1, cmd.ExecuteNonQuery());
            }
            await using (var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db }))
            {
                var (s, b, t) = await server.GetAsync("/v1/users/carol/recommendations?k=20");
                Assert.True(s == 200, t);
                AssertMatchesScores(FullForwardScores(history), Items(b!), 20);
                (s, b, _) = await server.GetAsync("/v1/users/carol");
                Assert.NotEqual("older", b!["model_version"]!.GetValue<string>());
            }
        }
        finally { DeleteDb(db); }
    }

    [Fact]
    public async Task AStoredNonFiniteStateIsRecomputedFromTheEventLog()
    {
        var db = TempDb();
        try
        {
            long[] history = [4, 8, 15, 16, 23, 42];
            await using (var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db }))
                Assert.Equal(200, (await server.PostAsync("/v1/users/dan/events", JsonSerializer.Serialize(new { items = history }))).Status);
            // What an older server could have stored: this checkpoint's version, a non-finite state.
            using (var store = new Mamba4.Server.Rec.UserStateStore(db))
            {
                var stored = store.Get("dan")!;
                store.Put(stored with { State = stored.State.Select(_ => float.NaN).ToArray(), SeqOutput = stored.SeqOutput.Select(_ => float.PositiveInfinity).ToArray() });
            }
            await using (var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db }))
            {
                var (s, b, t) = await server.GetAsync("/v1/users/dan/recommendations?k=20");
                Assert.True(s == 200, t);
                AssertMatchesScores(FullForwardScores(history), Items(b!), 20);
            }
            using (var store = new Mamba4.Server.Rec.UserStateStore(db))
                Assert.All(store.Get("dan")!.State, v => Assert.True(float.IsFinite(v)));
        }
        finally { DeleteDb(db); }
    }

    [Fact]
    public async Task EventsThatWouldMakeTheStateNonFiniteAre422AndNothingIsStored()
    {
        // The fixture with its embedding LayerNorm scaled by 10³⁰: every step overflows float32.
        var dir = Directory.CreateTempSubdirectory("mamba4-overflowing-rec-").FullName;
        var db = TempDb();
        try
        {
            File.Copy(Path.Combine(ServerHarness.Rec1, "config.json"), Path.Combine(dir, "config.json"));
            var weights = SafetensorsFile.LoadAll(Path.Combine(ServerHarness.Rec1, "model.safetensors"));
            foreach (var name in new[] { "LayerNorm.weight", "LayerNorm.bias" })
                weights[name] = Tensor.From(weights[name].ToFloatArray().Select(w => w * 1e30f).ToArray(), weights[name].Shape.ToArray());
            Safetensors.Save(Path.Combine(dir, "model.safetensors"), weights);
            await using var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = dir, StateDb = db });
            var (status, body, text) = await server.PostAsync("/v1/users/eve/events", """{"items": [1, 2, 3]}""");
            Assert.True(status == 422, text);
            Assert.StartsWith("items: the state of user 'eve' would become non-finite", body!["error"]!["message"]!.GetValue<string>());
            Assert.Equal(404, (await server.GetAsync("/v1/users/eve")).Status);
        }
        finally
        {
            DeleteDb(db);
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("/v1/recommend", "{}", 400, "history is required")]
    [InlineData("/v1/recommend", "{\"history\": []}", 400, "history is empty")]
    [InlineData("/v1/recommend", "{\"history\": [0]}", 400, "item id 0 is outside [1, 49]")]
    [InlineData("/v1/recommend", "{\"history\": [50]}", 400, "item id 50 is outside")]
    [InlineData("/v1/recommend", "{\"history\": [1], \"k\": 0}", 400, "k must be in [1, 49]")]
    [InlineData("/v1/recommend", "{\"history\": [1], \"k\": 1000000}", 400, "k must be")]
    [InlineData("/v1/recommend", "{\"history\": [1], \"exclude\": [99]}", 400, "exclude[0]")]
    [InlineData("/v1/recommend", "{\"history\": [1], \"user\": \"x\"}", 400, "unknown field 'user'")]
    [InlineData("/v1/recommend", "{\"history\": \"1,2\"}", 400, "field 'history'")]
    [InlineData("/v1/users/alice/events", "{}", 400, "items is required")]
    [InlineData("/v1/users/alice/events", "{\"items\": []}", 400, "items is empty")]
    [InlineData("/v1/users/alice/events", "{\"items\": [1, 2, 51]}", 400, "items[2]")]
    [InlineData("/v1/users/al%20ice/events", "{\"items\": [1]}", 400, "user id")]
    [InlineData("/v1/users/alice/events", "{\"items\": [1], \"at\": 5}", 400, "unknown field 'at'")]
    public async Task RecRequestIsRefusedWithAReason(string path, string body, int status, string reason)
    {
        var db = TempDb();
        try
        {
            await using var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db, MaxHistory = 100 });
            var (code, json, text) = await server.PostAsync(path, body);
            Assert.True(code == status, $"{code}: {text}");
            Assert.Contains(reason, json!["error"]!["message"]!.GetValue<string>());
            // Nothing was stored by a refused request.
            Assert.Equal(404, (await server.GetAsync("/v1/users/alice")).Status);
        }
        finally { DeleteDb(db); }
    }

    [Fact]
    public async Task UnknownUsersBadQueriesAndLongHistoriesAre4xx()
    {
        var db = TempDb();
        try
        {
            await using var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db, MaxHistory = 100 });
            var (code, json, _) = await server.GetAsync("/v1/users/nobody/recommendations?k=5");
            Assert.Equal(404, code);
            Assert.Contains("unknown user 'nobody'", json!["error"]!["message"]!.GetValue<string>());
            Assert.Equal(404, (await server.GetAsync("/v1/users/nobody")).Status);
            using (var del = await server.Client.DeleteAsync("/v1/users/nobody", TestContext.Current.CancellationToken)) Assert.Equal(404, (int)del.StatusCode);
            Assert.Equal(200, (await server.PostAsync("/v1/users/dave/events", "{\"items\": [4]}")).Status);
            foreach (var (query, reason) in new[] { ("k=abc", "k must be an integer"), ("k=-1", "k must be in"), ("k=5&color=red", "unknown query parameter 'color'"),
                         ("exclude=1,x", "exclude must be"), ("exclude=77", "outside"), ("exclude_history=maybe", "exclude_history") })
            {
                (code, json, _) = await server.GetAsync("/v1/users/dave/recommendations?" + query);
                Assert.True(code == 400, query);
                Assert.Contains(reason, json!["error"]!["message"]!.GetValue<string>());
            }
            var longHistory = "{\"history\": [" + string.Join(",", Enumerable.Repeat("1", 101)) + "]}";
            (code, json, _) = await server.PostAsync("/v1/recommend", longHistory);
            Assert.Equal(413, code);
            Assert.Contains("--max-history", json!["error"]!["message"]!.GetValue<string>());
            (code, json, _) = await server.PostAsync("/v1/completions", "{\"prompt\": [1]}");
            Assert.Equal(404, code);
            Assert.Contains("--model", json!["error"]!["message"]!.GetValue<string>());
        }
        finally { DeleteDb(db); }
    }

    [Fact]
    public async Task EventApiRecommendationsEqualTheCliRecommendOnTheFullHistory()
    {
        // The server loads the directory with the library's loader (RecModels.Load, as `mamba4 rec` does); the
        // event API's stored state, advanced a few events at a time, must rank exactly as the CLI's walk over the whole history.
        var db = TempDb();
        var history = new long[] { 5, 9, 2, 17, 33, 2, 41, 8, 12, 30, 7, 7, 48, 1, 22, 36, 19 };
        try
        {
            await using var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db });
            int at = 0;
            foreach (var size in new[] { 3, 1, 6, 7 })
            {
                var (status, _, text) = await server.PostAsync("/v1/users/carol/events", JsonSerializer.Serialize(new { items = history[at..(at + size)] }));
                Assert.True(status == 200, text);
                at += size;
            }
            var (s, b, t) = await server.GetAsync("/v1/users/carol/recommendations?k=10");
            Assert.True(s == 200, t);
            var (code, stdout, stderr) = CliTests.Run("rec", "recommend", "--checkpoint", ServerHarness.Rec1, "--history", string.Join(",", history), "--top", "10", "--json");
            Assert.True(code == 0, stderr);
            var cli = JsonNode.Parse(stdout.Trim().Split('\n')[^1])!;
            Assert.Equal(cli["ids"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray(), Items(b!).Select(i => i.Item).ToArray());
            Assert.Equal(cli["scores"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray(), Items(b!).Select(i => i.Score).ToArray());
        }
        finally { DeleteDb(db); }
    }

    [Fact]
    public async Task ABert4RecDirectoryAnswersRecommendButHasNoEventApi()
    {
        // A model without a recurrent state: POST /v1/recommend is its full forward over the last max_seq_length items;
        // the per-user event API says why it is not there.
        var dir = Path.Combine(Path.GetTempPath(), "mamba4-bert4rec-" + Guid.NewGuid().ToString("N")[..8]);
        var db = TempDb();
        try
        {
            using (var m = new BERT4Rec(new BERT4RecConfig { NItems = 20, HiddenSize = 8, InnerSize = 16, NLayers = 1, MaxSeqLength = 6 }, seed: 4))
                Mamba4.Tasks.Recommendation.RecModels.Save(m, 6, null, dir);
            long[] history = [3, 17, 4, 9, 11, 8, 2, 5];
            float[] scores;
            using (var loaded = Mamba4.Tasks.Recommendation.RecModels.Load(dir))
                scores = Mamba4.Tasks.Recommendation.RecRecommend.FullScores(loaded, history[^6..]);
            await using var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = dir, StateDb = db });
            var (status, body, text) = await server.PostAsync("/v1/recommend", JsonSerializer.Serialize(new { history, k = 5 }));
            Assert.True(status == 200, text);
            var items = Items(body!);
            Assert.Equal(Enumerable.Range(1, 19).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(5).Select(i => (long)i), items.Select(i => i.Item));
            Assert.Equal(items.Select(i => scores[i.Item]), items.Select(i => i.Score));
            (status, _, text) = await server.PostAsync("/v1/users/alice/events", JsonSerializer.Serialize(new { items = new[] { 3 } }));
            Assert.Equal(404, status);
            Assert.Contains("bert4rec model has no per-user state", text);
        }
        finally
        {
            DeleteDb(db);
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task AMissingOrCorruptRecDirectoryOrAnUnwritableStateDbFailsAtStart()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => ServerHarness.StartAsync(new ServerOptions { RecDir = "/nonexistent/rec" }));
        Assert.Contains("/nonexistent/rec", e.Message);
        // The fixture directory is read-only: the default database beside it cannot be created, and the message says what to do.
        if (!IsWritable(ServerHarness.Rec1))
        {
            e = await Assert.ThrowsAnyAsync<Exception>(() => ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1 }));
            Assert.Contains("--state-db", e.Message);
        }
        e = await Assert.ThrowsAnyAsync<Exception>(() => ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = "/nonexistent/dir/users.sqlite" }));
        Assert.Contains("--state-db", e.Message);
        var dir = Path.Combine(Path.GetTempPath(), "mamba4-badrec-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), "{\"n_items\": \"many\"}");
            e = await Assert.ThrowsAnyAsync<Exception>(() => ServerHarness.StartAsync(new ServerOptions { RecDir = dir }));
            Assert.Contains("field 'n_items': expected a positive integer", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    private static bool IsWritable(string dir)
    {
        try
        {
            var probe = Path.Combine(dir, ".probe-" + Guid.NewGuid().ToString("N"));
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return true;
        }
        catch (Exception) { return false; }
    }
}
