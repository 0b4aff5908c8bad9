using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Server;
using Mamba4.Tasks.Forecasting;
using Mamba4.Tasks.Synthetic;
using Mamba4.Tensors;
using Microsoft.Data.Sqlite;
using static Mamba4.Tests.CudaTest;

namespace Mamba4.Tests.Server;

/// <summary>
/// `mamba4 serve --device cuda` in-process (GPU machine only): completions decoded in the batched state on the GPU
/// equal the library's Generator on a GPU model token for token, while streams join and leave; recommendations and
/// forecasts from states kept in SQLite and moved to the GPU per request equal the CPU server's.
/// </summary>
[Trait("Category", "Cuda")]
[Collection("Cuda")]
public sealed class CudaServerTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mamba4-serve-cuda-" + Guid.NewGuid().ToString("N")[..8]);

    public CudaServerTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, true);
    }

    /// <summary>
    /// Greedy requests whose arg-max leads the runner-up by at least 10⁻⁴·max(1, max |logit|) at every step on the CPU.
    /// The GPU sums in another order than the CPU, and cuBLAS picks its kernel by the number of rows (one stream in
    /// `generate`, a whole batch in the server), so logits differ in their last bits; on these runs that cannot flip a
    /// token, and a mismatch is a serving bug (a wrong slot, a stale state), not rounding.
    /// </summary>
    private static List<(long[] Prompt, int MaxTokens)> ClearRuns(MambaLM cpu, int count, int seed)
    {
        var rng = new Random(seed);
        var runs = new List<(long[], int)>();
        int vocab = cpu.Config.VocabSize;
        using var _ = GradMode.NoGrad();
        for (int attempt = 0; attempt < 400 && runs.Count < count; attempt++)
        {
            var prompt = Enumerable.Range(0, 1 + rng.Next(12)).Select(_ => (long)rng.Next(vocab)).ToArray();
            int maxTokens = 3 + rng.Next(25);
            using var state = cpu.NewState(1);
            using var scope = new TensorScope();
            var logits = cpu.Forward(Tensor.From(prompt, 1, prompt.Length), state).Reshape(prompt.Length, vocab).Slice(prompt.Length - 1, 1).ToFloatArray();
            bool clear = true;
            for (int t = 0; t < maxTokens && clear; t++)
            {
                var sorted = logits.OrderDescending().ToArray();
                clear = sorted[0] - sorted[1] >= 1e-4 * Math.Max(1, Math.Max(Math.Abs(sorted[0]), Math.Abs(sorted[^1])));
                long next = Generator.ArgMax(logits);
                if (t < maxTokens - 1) logits = cpu.Step(Tensor.From([next], 1), state).ToFloatArray();
            }
            if (clear) runs.Add((prompt, maxTokens));
        }
        Assert.True(runs.Count == count, $"only {runs.Count} of {count} greedy runs have a clear arg-max at every step");
        return runs;
    }

    /// <summary><paramref name="count"/> clear greedy runs (<see cref="ClearRuns"/>) and their tokens from the library's Generator on a GPU copy of the model.</summary>
    private static (List<(long[] Prompt, int MaxTokens)> Requests, long[][] Expected) GreedyOnGpu(int count, int seed)
    {
        List<(long[] Prompt, int MaxTokens)> requests;
        using (var cpu = MambaLM.FromPretrained(ServerHarness.HfMamba)) requests = ClearRuns(cpu, count, seed);
        using var gpu = MambaLM.FromPretrained(ServerHarness.HfMamba);
        gpu.Eval();
        gpu.To(Cuda);
        return (requests, requests.Select(r => Generator.Greedy(gpu, r.Prompt, r.MaxTokens)[r.Prompt.Length..]).ToArray());
    }

    [Fact]
    public async Task GreedyCompletionsOnTheGpuEqualTheGeneratorOnTheGpuWhileStreamsJoinAndLeave()
    {
        _ = Gpu;
        var (requests, expected) = GreedyOnGpu(10, seed: 11);
        // 4 slots for 10 streams arriving 20 ms apart: streams join a batch that is decoding, wait for a slot, leave.
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, Device = "cuda", MaxStreams = 4, MaxQueue = 16 });
        var (_, health, _) = await server.GetAsync("/health");
        Assert.Equal("cuda:0", health!["device"]!.GetValue<string>());
        var results = await Task.WhenAll(requests.Select(async (r, i) =>
        {
            await Task.Delay(20 * i, TestContext.Current.CancellationToken);
            return await server.CompleteIdsAsync(new { prompt = r.Prompt, max_tokens = r.MaxTokens, temperature = 0 });
        }));
        for (int i = 0; i < requests.Count; i++) Assert.Equal(expected[i], results[i]);
        // The same stream as server-sent events.
        var events = await server.StreamAsync(JsonSerializer.Serialize(new { prompt = requests[0].Prompt, max_tokens = requests[0].MaxTokens, temperature = 0, stream = true }), TestContext.Current.CancellationToken);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(expected[0], events[..^1].SelectMany(e => JsonNode.Parse(e)!["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<long>())).ToArray());
        double steps = await server.MetricAsync("mamba4_decode_steps_total");
        double tokens = await server.MetricAsync("mamba4_generated_tokens_total");
        Assert.Equal(requests.Sum(r => r.MaxTokens) * 1.0 + requests[0].MaxTokens, tokens);
        Assert.True(steps < tokens - requests.Count - 1, $"{steps} steps for {tokens} tokens: the streams were not batched");
        Assert.Equal(0, await server.MetricAsync("mamba4_active_streams"));
    }

    [Fact]
    public async Task CompletionsAndUserEventsShareTheGpuAtOnceWithoutErrors()
    {
        _ = Gpu;
        var (requests, expected) = GreedyOnGpu(8, seed: 23);
        var rng = new Random(9);
        var histories = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, 12).Select(_ => (long)rng.Next(1, 50)).ToArray()).ToArray();
        // The decoding thread steps the text model while request threads step the recommender: one GPU, one stream.
        await using var server = await ServerHarness.StartAsync(new ServerOptions
        {
            ModelDir = ServerHarness.HfMamba, RecDir = ServerHarness.Rec1, StateDb = Path.Combine(_dir, "both.sqlite"), Device = "cuda", MaxStreams = 4, MaxQueue = 16,
        });
        var completions = requests.Select(r => server.CompleteIdsAsync(new { prompt = r.Prompt, max_tokens = r.MaxTokens, temperature = 0 })).ToArray();
        var events = histories.Select(async (h, u) =>
        {
            for (int i = 0; i < h.Length; i += 3)
            {
                var (status, _, text) = await server.PostAsync($"/v1/users/both{u}/events", JsonSerializer.Serialize(new { items = h[i..(i + 3)] }));
                Assert.True(status == 200, text);
            }
        }).ToArray();
        await Task.WhenAll(events);
        var results = await Task.WhenAll(completions);
        for (int i = 0; i < requests.Count; i++) Assert.Equal(expected[i], results[i]);
        for (int u = 0; u < histories.Length; u++)
        {
            var (status, body, text) = await server.GetAsync($"/v1/users/both{u}/recommendations?k=10");
            Assert.True(status == 200, text);
            var reference = RecServerTests.FullForwardScores(histories[u]);
            foreach (var n in body!["items"]!.AsArray())
            {
                long item = n!["item"]!.GetValue<long>();
                float score = n["score"]!.GetValue<float>();
                Assert.True(Math.Abs(reference[item] - score) <= 1e-4, $"user {u}: item {item} scores {score}, the CPU full forward {reference[item]}");
            }
        }
    }

    [Fact]
    public async Task TheServeCommandOnCudaAnswersAsGenerateOnCuda()
    {
        _ = Gpu;
        var dir = ServerHarness.HfMamba;
        using var reference = Mamba4.IO.SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = reference.Get("generate.output").ToInt64Array();
        int count = expected.Length - prompt.Length;
        var (code, stdout, stderr) = CliTests.Run("generate", "--model", dir, "--prompt-ids", string.Join(",", prompt), "--max-new-tokens", count.ToString(), "--greedy", "--device", "cuda");
        Assert.True(code == 0, stderr);
        var generated = stdout.Trim().Split('\n')[^1].Split(',').Select(long.Parse).ToArray()[prompt.Length..];
        Assert.Equal(expected[prompt.Length..], generated);
        using var server = ServeCliTests.ServeProcess.Start("--model", dir, "--device", "cuda");
        lock (server.Output) Assert.Contains("device cuda:0", server.Output.ToString());
        var ct = TestContext.Current.CancellationToken;
        using var response = await server.Client.PostAsync("/v1/completions",
            new StringContent(JsonSerializer.Serialize(new { prompt, max_tokens = count, temperature = 0 }), System.Text.Encoding.UTF8, "application/json"), ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        Assert.True(response.IsSuccessStatusCode, text);
        Assert.Equal(generated, JsonNode.Parse(text)!["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<long>()));
    }

    [Fact]
    public async Task RecommendationsFromStatesOnTheGpuEqualTheCpuServersAndTheStoredStatesMoveBetweenDevices()
    {
        _ = Gpu;
        var rng = new Random(7);
        var histories = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 5 + rng.Next(20)).Select(_ => (long)rng.Next(1, 50)).ToArray()).ToArray();
        string cpuDb = Path.Combine(_dir, "cpu.sqlite"), gpuDb = Path.Combine(_dir, "gpu.sqlite");
        var answers = new Dictionary<string, JsonNode>();
        foreach (var (device, db) in new[] { ("cpu", cpuDb), ("cuda", gpuDb) })
        {
            await using var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db, Device = device });
            for (int u = 0; u < histories.Length; u++)
            {
                // events in three batches: each loads the stored state onto the device, steps, stores it back
                var h = histories[u];
                foreach (var part in new[] { h[..1], h[1..4], h[4..] })
                {
                    var (s, _, t) = await server.PostAsync($"/v1/users/u{u}/events", JsonSerializer.Serialize(new { items = part }));
                    Assert.True(s == 200, t);
                }
                var (status, body, text) = await server.GetAsync($"/v1/users/u{u}/recommendations?k=20");
                Assert.True(status == 200, text);
                answers[$"{device} events u{u}"] = body!;
                (status, body, text) = await server.PostAsync("/v1/recommend", JsonSerializer.Serialize(new { history = h, k = 20 }));
                Assert.True(status == 200, text);
                answers[$"{device} recommend u{u}"] = body!;
            }
        }
        // The states the GPU server stored, read by a CPU server (and the CPU's by a GPU server): the same version, no recompute.
        foreach (var (device, db) in new[] { ("cpu", gpuDb), ("cuda", cpuDb) })
        {
            await using var server = await ServerHarness.StartAsync(new ServerOptions { RecDir = ServerHarness.Rec1, StateDb = db, Device = device });
            for (int u = 0; u < histories.Length; u++)
            {
                var (status, body, text) = await server.GetAsync($"/v1/users/u{u}/recommendations?k=20");
                Assert.True(status == 200, text);
                answers[$"{device} stored elsewhere u{u}"] = body!;
            }
        }
        for (int u = 0; u < histories.Length; u++)
        {
            var reference = RecServerTests.FullForwardScores(histories[u]);
            foreach (var key in answers.Keys.Where(k => k.EndsWith($" u{u}", StringComparison.Ordinal)))
            {
                var items = answers[key]["items"]!.AsArray().Select(n => (Item: n!["item"]!.GetValue<long>(), Score: n["score"]!.GetValue<float>())).ToArray();
                Assert.Equal(20, items.Length);
                // each score is the CPU full forward's score of that item within 1e-4, and the 20 are the best 20 (up to 1e-4)
                foreach (var (item, score) in items) Assert.True(Math.Abs(reference[item] - score) <= 1e-4, $"{key}: item {item} scores {score}, the CPU full forward {reference[item]}");
                float last = items[^1].Score;
                var chosen = items.Select(i => i.Item).ToHashSet();
                for (long i = 1; i < reference.Length; i++)
                    Assert.True(chosen.Contains(i) || reference[i] <= last + 1e-4, $"{key}: item {i} ({reference[i]}) beats the last returned ({last})");
                // rank by rank, the GPU's scores equal the CPU server's within 1e-4
                var cpuItems = answers[$"cpu {key.Split(' ', 2)[1]}"]["items"]!.AsArray().Select(n => n!["score"]!.GetValue<float>()).ToArray();
                for (int r = 0; r < 20; r++) Assert.True(Math.Abs(cpuItems[r] - items[r].Score) <= 1e-4, $"{key}: rank {r} scores {items[r].Score}, the CPU server {cpuItems[r]}");
            }
        }
    }

    [Fact]
    public async Task ForecastsOfAGrowingSeriesOnTheGpuEqualTheCpuServers()
    {
        _ = Gpu;
        var series = SyntheticSeries.Generate();
        var model = Path.Combine(_dir, "temporal");
        var data = ForecastData.Prepare(series, "ratio", 24, 12, timeFeatures: false);
        var config = ForecastDefaults.Config("mamba", 24, 12, 3, 0) with { DModel = 8, DFf = 8, Layers = 1, Embedding = "temporal", RevIn = false };
        using (var m = Models.Forecaster.Create(config)) SavedForecaster.Save(model, m, data);
        double[][] Rows(int from, int to) => Enumerable.Range(from, to - from).Select(r => Enumerable.Range(0, 3).Select(c => series[r, c]).ToArray()).ToArray();
        string[] Stamps(int from, int to) => Enumerable.Range(from, to - from).Select(r => series.Timestamps![r].ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var values = new Dictionary<string, double[]>();
        foreach (var device in new[] { "cpu", "cuda" })
        {
            await using var server = await ServerHarness.StartAsync(new ServerOptions { ForecastDir = model, SeriesDb = Path.Combine(_dir, device + ".sqlite"), Device = device });
            foreach (var (from, to) in new[] { (0, 30), (30, 31), (31, 80) })
            {
                var (s, _, t) = await server.PostAsync("/v1/series/load/values", JsonSerializer.Serialize(new { values = Rows(from, to), timestamps = Stamps(from, to) }));
                Assert.True(s == 200, t);
            }
            var (status, body, text) = await server.GetAsync("/v1/series/load/forecast");
            Assert.True(status == 200, text);
            values[device + " series"] = body!["values"]!.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<double>())).ToArray();
            foreach (bool stream in new[] { false, true })
            {
                (status, body, text) = await server.PostAsync("/v1/forecast", JsonSerializer.Serialize(new { values = Rows(0, 80), timestamps = Stamps(0, 80), stream }));
                Assert.True(status == 200, text);
                values[device + " forecast " + stream] = body!["values"]!.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<double>())).ToArray();
            }
        }
        foreach (var what in new[] { "series", "forecast False", "forecast True" })
        {
            var (cpu, gpu) = (values["cpu " + what], values["cuda " + what]);
            Assert.Equal(12 * 3, gpu.Length);
            double scale = Math.Max(1, cpu.Max(Math.Abs));
            for (int i = 0; i < cpu.Length; i++) Assert.True(Math.Abs(cpu[i] - gpu[i]) <= 1e-4 * scale, $"{what}: value {i} is {gpu[i]} on the GPU, {cpu[i]} on the CPU");
        }
        Assert.Equal(values["cpu series"], values["cpu forecast True"]);   // the stored state after 80 rows = streaming the 80 rows at once
    }
}
