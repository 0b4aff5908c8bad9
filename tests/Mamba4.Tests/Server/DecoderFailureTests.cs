using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Server;

namespace Mamba4.Tests.Server;

/// <summary>
/// Issue 16: no request can stall text generation. Sampling inputs that overflowed float hung the decoding loop; a
/// loop without progress still looked healthy; shutdown waited for it forever. Every wait here is bounded (a hang fails).
/// </summary>
public class DecoderFailureTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>Polls <paramref name="condition"/> until it holds; false if it still does not after a generous bound.</summary>
    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return true;
            await Task.Delay(20, Ct);
        }
        return false;
    }

    /// <summary>Stops and disposes the server on the thread pool, within the bound: disposal blocks (it joins the
    /// decoding thread), so awaiting it inline could hang the test before any bound applies.</summary>
    private static Task DisposeBoundedAsync(ServerHarness server) => Task.Run(() => server.DisposeAsync().AsTask(), Ct).WaitAsync(Bound, Ct);

    private static long TokenOf(string streamEvent) => JsonNode.Parse(streamEvent)!["choices"]![0]!["token_ids"]![0]!.GetValue<long>();

    private static long[] TokenIds(JsonNode body) => body["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<long>()).ToArray();

    [Fact]
    public async Task TheIssueRequestAnswersAsGreedyAndTheNextCompletionsStillWork()
    {
        var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba });
        try
        {
            var greedy = await server.CompleteIdsAsync(new { prompt = new[] { 1 }, max_tokens = 5, temperature = 0 });
            // 1e-40 is a float (denormal) below the 1e-5 floor, 1e-50 is 0 as a float: both take the most likely token.
            foreach (var body in new[] { """{"prompt":[1],"max_tokens":5,"temperature":1e-40,"top_p":0.5}""", """{"prompt":[1],"max_tokens":5,"temperature":1e-50,"top_p":0.5}""" })
            {
                var (status, json, text) = await server.PostAsync("/v1/completions", body).WaitAsync(Bound, Ct);
                Assert.True(status == 200, text);
                Assert.Equal(greedy, TokenIds(json!));
            }
            var (code, error, raw) = await server.PostAsync("/v1/completions", """{"prompt":[1],"max_tokens":5,"repetition_penalty":1e-40}""").WaitAsync(Bound, Ct);
            Assert.True(code == 400, raw);
            Assert.Equal("repetition_penalty", (string?)error!["error"]!["param"]);
            Assert.Equal("repetition_penalty must be in [0.1, 10] (1 = off), got 1E-40", (string?)error["error"]!["message"]);
            Assert.Equal(5, (await server.CompleteIdsAsync(new { prompt = new[] { 1, 2 }, max_tokens = 5, temperature = 0.8, top_p = 0.5, seed = 3 }).WaitAsync(Bound, Ct)).Length);
            Assert.Equal(200, (await server.GetAsync("/health")).Status);
        }
        finally { await DisposeBoundedAsync(server); }   // a hung decoding thread hung this too
    }

    /// <summary>A small Mamba LM with untied embeddings: a NaN embedding row poisons only the streams that feed that token.</summary>
    private static MambaLM UntiedModel() => new(new MambaConfig { DModel = 16, NLayer = 2, DState = 8, VocabSize = 32, TieEmbeddings = false }, seed: 5);

    [Fact]
    public async Task AStreamWhoseLogitsTurnNaNEndsWithAnErrorEventWhileItsBatchMateCompletes()
    {
        using var reference = UntiedModel();
        long[] promptB = [2];
        var b = Generator.Greedy(reference, promptB, 24);
        // A: a prompt whose greedy run emits, after at least one token, a token x that B never feeds; poisoning x's
        // embedding leaves B alone and makes A's logits NaN at the step that feeds x (after x was sent).
        (long[] Prompt, long[] Emitted)? found = null;
        for (long a = 0; a < reference.Config.VocabSize && found is null; a++)
        {
            var run = Generator.Greedy(reference, [a], 12)[1..];
            for (int k = 1; k < run.Length - 1 && found is null; k++)   // k < 11: A is still running when it feeds x
                if (!b.Contains(run[k]) && !run[..k].Contains(run[k]) && run[k] != a) found = ([a], run[..(k + 1)]);
        }
        var (promptA, emitted) = found ?? throw new InvalidOperationException("no greedy run of this model reaches a token that B never feeds: pick another seed");
        long poisoned = emitted[^1];

        var model = UntiedModel();
        int d = model.Config.DModel;
        model.Backbone.Embeddings.Weight.AsSpan<float>().Slice((int)poisoned * d, d).Fill(float.NaN);
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = "untied-nan", MaxTokens = 64 }, model);
        // Hold the first step until both streams are in, so that they share the batched steps.
        using var gate = new ManualResetEventSlim();
        server.Scheduler.BeforeStep = () => gate.Wait(Bound);
        var streamB = server.StreamAsync(JsonSerializer.Serialize(new { prompt = promptB, max_tokens = 24, temperature = 0, stream = true }), Ct);
        var streamA = server.StreamAsync(JsonSerializer.Serialize(new { prompt = promptA, max_tokens = 12, temperature = 0, stream = true }), Ct);
        Assert.True(await EventuallyAsync(() => Task.FromResult(server.Scheduler.Active + server.Scheduler.Queued == 2)), "the two streams did not arrive");
        gate.Set();
        var eventsA = await streamA.WaitAsync(Bound, Ct);
        var eventsB = await streamB.WaitAsync(Bound, Ct);

        Assert.Equal("[DONE]", eventsB[^1]);
        Assert.Equal(b[1..], eventsB[..^1].Select(TokenOf));
        Assert.Equal(emitted, eventsA[..^1].Select(TokenOf));
        var error = JsonNode.Parse(eventsA[^1])!["error"]!;
        Assert.Equal("internal_error", (string?)error["code"]);
        Assert.Contains($"generation stopped after {emitted.Length} tokens", (string?)error["message"]);
        Assert.Contains("non-finite", (string?)error["message"]);

        // Not streaming, the poisoned token in the prompt: a 500 JSON error at once; the server serves on.
        var (status, json, text) = await server.PostAsync("/v1/completions", JsonSerializer.Serialize(new { prompt = new[] { poisoned }, max_tokens = 3 }));
        Assert.True(status == 500, text);
        Assert.Contains("non-finite", (string?)json!["error"]!["message"]);
        Assert.Equal(b[1..6], await server.CompleteIdsAsync(new { prompt = promptB, max_tokens = 5, temperature = 0 }));
        Assert.Equal(0, server.Scheduler.Active);
    }

    [Fact]
    public async Task ADecoderWithoutProgressTurnsHealthTo503AndBack()
    {
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, StallSeconds = 0.2 });
        using var gate = new ManualResetEventSlim();
        server.Scheduler.BeforeStep = () => gate.Wait(Bound);   // the injected stall: a step that does not return
        var stream = server.StreamAsync("""{"prompt": [1, 2], "max_tokens": 4, "temperature": 0, "stream": true}""", Ct);

        Assert.True(await EventuallyAsync(async () => (await server.GetAsync("/health")).Status == 503), "/health never answered 503");
        var (_, health, _) = await server.GetAsync("/health");
        Assert.Equal("unavailable", (string?)health!["status"]);
        Assert.Contains("no progress", (string?)health["reason"]);
        Assert.Contains("--stall-seconds", (string?)health["reason"]);
        Assert.Equal(1, await server.MetricAsync("mamba4_decoder_stalled"));
        Assert.True(await server.MetricAsync("mamba4_decoder_last_progress_seconds") > 0.2);

        gate.Set();
        var events = await stream.WaitAsync(Bound, Ct);
        Assert.Equal(5, events.Count);   // 4 tokens and [DONE]: the stream went on once the step returned
        Assert.True(await EventuallyAsync(async () => await server.MetricAsync("mamba4_decoder_last_progress_seconds") == 0), "the loop did not go idle");
        var (code, healthy, _) = await server.GetAsync("/health");
        Assert.Equal(200, code);
        Assert.Equal("ok", (string?)healthy!["status"]);
        Assert.Equal(0, await server.MetricAsync("mamba4_decoder_stalled"));
    }

    [Fact]
    public async Task DrainingLetsARunningStreamFinishAndRefusesNewOnes()
    {
        var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, DrainSeconds = 30 });
        using var gate = new ManualResetEventSlim();
        server.Scheduler.BeforeStep = () => gate.Wait(Bound);   // keep the stream running until the drain has begun
        var stream = server.StreamAsync("""{"prompt": [1, 2], "max_tokens": 6, "temperature": 0, "stream": true}""", Ct);
        Assert.True(await EventuallyAsync(() => Task.FromResult(server.Scheduler.Active == 1)), "the stream was not admitted");
        var stopping = server.App.StopAsync(Ct);
        Assert.True(await EventuallyAsync(() => Task.FromResult(server.Scheduler.Problem is not null)), "the drain did not begin");
        var refused = Assert.Throws<ApiException>(() => server.Scheduler.Submit(new Mamba4.Server.Text.TextStream([1], new SamplingOptions(), 1, null, Ct)));
        Assert.Equal(503, refused.Status);

        gate.Set();
        var events = await stream.WaitAsync(Bound, Ct);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(7, events.Count);   // all 6 tokens: the drain waited for it
        Assert.Equal("length", (string?)JsonNode.Parse(events[^2])!["choices"]![0]!["finish_reason"]);
        await stopping.WaitAsync(Bound, Ct);
        await DisposeBoundedAsync(server);
    }

    [Fact]
    public async Task AStuckStepNeitherOutlivesTheDrainNorBlocksShutdown()
    {
        var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, DrainSeconds = 0.3, StallSeconds = 0.3, MaxTokens = 100 });
        using var gate = new ManualResetEventSlim();
        try
        {
            var scheduler = server.Scheduler;
            scheduler.BeforeStep = () => gate.Wait(Bound);   // a step that never returns (until the test ends)
            var stream = server.StreamAsync("""{"prompt": [1], "max_tokens": 100, "stream": true}""", Ct);
            Assert.True(await EventuallyAsync(() => Task.FromResult(server.Scheduler.Active == 1)), "the stream was not admitted");
            await server.App.StopAsync(Ct).WaitAsync(Bound, Ct);
            var events = await stream.WaitAsync(Bound, Ct);
            Assert.Contains("shutting down", (string?)JsonNode.Parse(events[^1])!["error"]!["message"]);
            await DisposeBoundedAsync(server);   // waited for the decoding thread forever before
            Assert.True(scheduler.Running);   // still stuck: left behind, its model not disposed under it
        }
        finally { gate.Set(); }
    }
}
