using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Inference;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Server;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Text;

namespace Mamba4.Tests.Server;

/// <summary>POST /v1/completions, /tokenize, /detokenize and continuous batching, in-process.</summary>
public class CompletionServerTests
{
    [Theory]
    [InlineData("hf-mamba")]
    [InlineData("mamba2")]
    public async Task GreedyCompletionEqualsTheHfReference(string fixture)
    {
        var dir = ServerHarness.Lm(fixture);
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = reference.Get("generate.output").ToInt64Array();
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = dir });
        var (status, body, text) = await server.PostAsync("/v1/completions", JsonSerializer.Serialize(new
        {
            prompt, max_tokens = expected.Length - prompt.Length, temperature = 0,
        }));
        Assert.True(status == 200, text);
        var choice = body!["choices"]![0]!;
        Assert.Equal(expected[prompt.Length..], choice["token_ids"]!.AsArray().Select(n => n!.GetValue<long>()));
        Assert.Null(choice["text"]);   // no tokenizer: ids only
        Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
        Assert.Equal("text_completion", body["object"]!.GetValue<string>());
        Assert.Equal(prompt.Length, body["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(expected.Length, body["usage"]!["total_tokens"]!.GetValue<int>());
    }

    /// <summary>Continuous batching (the batched state's Slice/CopySlot) for Mamba-1 and Mamba-2 alike.</summary>
    [Theory]
    [InlineData("hf-mamba")]
    [InlineData("mamba2")]
    public async Task ConcurrentStreamsJoinAndLeaveTheBatchAndEachEqualsItsOwnGreedyRun(string fixture)
    {
        var dir = ServerHarness.Lm(fixture);
        using var model = MambaLM.FromPretrained(dir);
        var rng = new Random(11);
        var requests = Enumerable.Range(0, 10).Select(i => (
            Prompt: Enumerable.Range(0, 1 + rng.Next(12)).Select(_ => (long)rng.Next(96)).ToArray(),
            MaxTokens: 3 + rng.Next(25))).ToArray();
        var expected = requests.Select(r => Generator.Greedy(model, r.Prompt, r.MaxTokens)[r.Prompt.Length..]).ToArray();
        // 4 slots for 10 streams: some wait in the queue, and streams join and leave between steps.
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = dir, MaxStreams = 4, MaxQueue = 16 });
        var results = await Task.WhenAll(requests.Select(r => server.CompleteIdsAsync(new { prompt = r.Prompt, max_tokens = r.MaxTokens, temperature = 0 })));
        for (int i = 0; i < requests.Length; i++) Assert.Equal(expected[i], results[i]);
        double steps = await server.MetricAsync("mamba4_decode_steps_total");
        double tokens = await server.MetricAsync("mamba4_generated_tokens_total");
        Assert.Equal(requests.Sum(r => r.MaxTokens), tokens);
        // Every stream's first token comes from its prefill; the rest from batched steps, more than one stream per step.
        Assert.True(steps < tokens - requests.Length, $"{steps} steps for {tokens} tokens: the streams were not batched");
        Assert.Equal(0, await server.MetricAsync("mamba4_active_streams"));
    }

    [Fact]
    public async Task PromptsOfOneLengthArrivingTogetherArePrefilledTogetherAndStillEqualTheirOwnRuns()
    {
        using var model = MambaLM.FromPretrained(ServerHarness.HfMamba);
        var rng = new Random(21);
        var prompts = Enumerable.Range(0, 16).Select(_ => Enumerable.Range(0, 6).Select(_ => (long)rng.Next(96)).ToArray()).ToArray();
        var expected = prompts.Select(p => Generator.Greedy(model, p, 10)[p.Length..]).ToArray();
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, MaxStreams = 16 });
        var results = await Task.WhenAll(prompts.Select(p => server.CompleteIdsAsync(new { prompt = p, max_tokens = 10, temperature = 0 })));
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(expected[i], results[i]);
        Assert.InRange(await server.MetricAsync("mamba4_prefills_total"), 1, 16);
    }

    [Fact]
    public async Task SeededSamplingEqualsTheGeneratorWithTheSameOptions()
    {
        using var model = MambaLM.FromPretrained(ServerHarness.HfMamba);
        long[] prompt = [5, 17, 42];
        var options = new SamplingOptions { Temperature = 0.8f, TopK = 20, TopP = 0.9f, Seed = 7, RepetitionPenalty = 1.3f };
        var expected = Generator.Stream(model, prompt, 24, options).ToArray();
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba });
        var ids = await server.CompleteIdsAsync(new { prompt, max_tokens = 24, temperature = 0.8, top_k = 20, top_p = 0.9, seed = 7, repetition_penalty = 1.3 });
        Assert.Equal(expected, ids);
    }

    [Fact]
    public async Task StreamingSendsOneEventPerTokenThenDone()
    {
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba });
        var whole = await server.CompleteIdsAsync(new { prompt = new[] { 3, 1, 4, 1, 5 }, max_tokens = 9, temperature = 0 });
        var events = await server.StreamAsync("""{"prompt": [3, 1, 4, 1, 5], "max_tokens": 9, "temperature": 0, "stream": true}""", TestContext.Current.CancellationToken);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(10, events.Count);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.Equal(whole, chunks.Select(c => c["choices"]![0]!["token_ids"]![0]!.GetValue<long>()));
        Assert.All(chunks[..^1], c => Assert.Null(c["choices"]![0]!["finish_reason"]?.GetValue<string>()));
        Assert.Equal("length", chunks[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(9, chunks[^1]["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Single(chunks.Select(c => c["id"]!.GetValue<string>()).Distinct());
    }

    [Fact]
    public async Task StopTokenIdsEndTheStream()
    {
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba });
        var whole = await server.CompleteIdsAsync(new { prompt = new[] { 7, 7, 2 }, max_tokens = 12, temperature = 0 });
        var (status, body, text) = await server.PostAsync("/v1/completions", JsonSerializer.Serialize(new { prompt = new[] { 7, 7, 2 }, max_tokens = 12, temperature = 0, stop_token_ids = new[] { whole[4] } }));
        Assert.True(status == 200, text);
        int first = Array.IndexOf(whole, whole[4]);
        Assert.Equal(whole[..(first + 1)], body!["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<long>()));
        Assert.Equal("stop", body["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task ClientDisconnectCancelsItsStreamAndFreesTheSlot()
    {
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, MaxTokens = 1_000_000 });
        using (var cts = new CancellationTokenSource())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            {
                Content = new StringContent("""{"prompt": [1, 2], "max_tokens": 1000000, "stream": true, "seed": 1}""", System.Text.Encoding.UTF8, "application/json"),
            };
            using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
            Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token));
            Assert.Equal(1, await server.MetricAsync("mamba4_active_streams"));
            cts.Cancel();
        }
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (await server.MetricAsync("mamba4_active_streams") > 0 && DateTime.UtcNow < deadline) await Task.Delay(20, TestContext.Current.CancellationToken);
        Assert.Equal(0, await server.MetricAsync("mamba4_active_streams"));
        Assert.Equal(1, await server.MetricAsync("mamba4_streams_cancelled_total"));
        Assert.True(await server.MetricAsync("mamba4_generated_tokens_total") < 1_000_000);
    }

    [Fact]
    public async Task ShutdownWithoutDrainEndsActiveStreamsPromptly()
    {
        var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, MaxTokens = 1_000_000, DrainSeconds = 0 });
        var ct = TestContext.Current.CancellationToken;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent("""{"prompt": [1], "max_tokens": 1000000, "stream": true}""", System.Text.Encoding.UTF8, "application/json") };
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        await reader.ReadLineAsync(ct);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var stopping = server.App.StopAsync(ct);
        string? last = null;
        try { while (await reader.ReadLineAsync(ct) is { } line) if (line.Length > 0) last = line; }
        catch (IOException) { }
        catch (HttpRequestException) { }
        await stopping;
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(8), $"shutdown took {sw.Elapsed}");
        Assert.Contains("shutting down", last ?? "");
        await server.DisposeAsync();
    }

    [Fact]
    public async Task ACompletionPastTheTimeoutIsCancelledWithAJsonError()
    {
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, MaxTokens = 100_000_000, MaxStreams = 1, RequestTimeoutSeconds = 2 });   // long enough that the stream starts even on loaded cores
        var ct = TestContext.Current.CancellationToken;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        // Streaming: tokens flow, then the limit ends the stream with an error event naming it.
        var events = await server.StreamAsync("""{"prompt": [1, 2], "max_tokens": 100000000, "stream": true}""", ct);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"the timed-out stream ended after {sw.Elapsed}");
        Assert.True(events.Count >= 2, string.Join("\n", events));
        var error = ServerHarness.TryParse(events[^1])!["error"]!;
        Assert.Equal("timeout", (string?)error["code"]);
        Assert.Contains("--timeout", (string?)error["message"]);
        Assert.Null(ServerHarness.TryParse(events[^2])!["error"]);   // the tokens before it were ordinary events
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (await server.MetricAsync("mamba4_active_streams") > 0 && DateTime.UtcNow < deadline) await Task.Delay(20, ct);
        Assert.Equal(0, await server.MetricAsync("mamba4_active_streams"));   // its slot is free again

        // Not streaming: a 408 JSON error, and the stream is cancelled (the slot frees, the token count stops growing).
        var (status, body, text) = await server.PostAsync("/v1/completions", """{"prompt": [1, 2], "max_tokens": 100000000}""");
        Assert.Equal(408, status);
        Assert.Equal("timeout", (string?)body!["error"]!["code"]);
        Assert.Contains("2 s", text);
        deadline = DateTime.UtcNow.AddSeconds(10);
        while (await server.MetricAsync("mamba4_active_streams") > 0 && DateTime.UtcNow < deadline) await Task.Delay(20, ct);
        Assert.Equal(0, await server.MetricAsync("mamba4_active_streams"));
        double generated = await server.MetricAsync("mamba4_generated_tokens_total");
        await Task.Delay(200, ct);
        Assert.Equal(generated, await server.MetricAsync("mamba4_generated_tokens_total"));
        Assert.Equal(2, await server.MetricAsync("mamba4_timeouts_total"));
        // A short completion within the limit is unaffected.
        Assert.Equal(3, (await server.CompleteIdsAsync(new { prompt = new[] { 1, 2 }, max_tokens = 3, temperature = 0 })).Length);
    }

    [Fact]
    public async Task BeyondTheStreamLimitTheServerAnswers429()
    {
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = ServerHarness.HfMamba, MaxStreams = 1, MaxQueue = 0, MaxTokens = 1_000_000 });
        using var cts = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent("""{"prompt": [1], "max_tokens": 1000000, "stream": true}""", System.Text.Encoding.UTF8, "application/json") };
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        await reader.ReadLineAsync(cts.Token);
        using var second = await server.Client.PostAsync("/v1/completions", new StringContent("""{"prompt": [1], "max_tokens": 4}""", System.Text.Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal(429, (int)second.StatusCode);
        Assert.Contains("--max-streams", await second.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.True(second.Headers.RetryAfter is not null);
        cts.Cancel();
    }

    /// <summary>A small Mamba LM with a character tokenizer, saved as `mamba4 lm train` would.</summary>
    internal static string CharModelDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "mamba4-serve-char-" + Guid.NewGuid().ToString("N")[..8]);
        var tokenizer = CharTokenizer.FromText("abcdefghijklmnopqrstuvwxyz .,!?\n");
        using var model = new MambaLM(new MambaConfig { DModel = 16, NLayer = 2, DState = 8, VocabSize = tokenizer.VocabSize }, seed: 3);
        LanguageModelFiles.Save(model, tokenizer, dir);
        return dir;
    }

    [Fact]
    public async Task TextPromptsStopStringsTokenizeAndDetokenize()
    {
        var dir = CharModelDir();
        try
        {
            await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = dir });
            var (status, body, text) = await server.PostAsync("/tokenize", """{"content": "hello, world"}""");
            Assert.True(status == 200, text);
            var ids = body!["tokens"]!.AsArray().Select(n => n!.GetValue<long>()).ToArray();
            Assert.Equal(12, ids.Length);
            (status, body, text) = await server.PostAsync("/detokenize", JsonSerializer.Serialize(new { tokens = ids }));
            Assert.True(status == 200, text);
            Assert.Equal("hello, world", body!["content"]!.GetValue<string>());

            (status, body, text) = await server.PostAsync("/v1/completions", """{"prompt": "the cat", "max_tokens": 40, "temperature": 0}""");
            Assert.True(status == 200, text);
            var full = body!["choices"]![0]!["text"]!.GetValue<string>();
            var fullIds = body["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<long>()).ToArray();
            Assert.Equal(40, full.Length);
                        (status, body, _) = await server.PostAsync("/detokenize", JsonSerializer.Serialize(new { tokens = fullIds }));
            Assert.Equal(full, body!["content"]!.GetValue<string>());

            // A stop string cuts the text before its first occurrence (OpenAI semantics), streamed or not.
            var stop = full.Substring(10, 3);
            int cut = full.IndexOf(stop, StringComparison.Ordinal);
            var request = JsonSerializer.Serialize(new { prompt = "the cat", max_tokens = 40, temperature = 0, stop = new[] { "@@", stop } });
            (status, body, text) = await server.PostAsync("/v1/completions", request);
            Assert.True(status == 200, text);
            Assert.Equal(full[..cut], body!["choices"]![0]!["text"]!.GetValue<string>());
            Assert.Equal("stop", body["choices"]![0]!["finish_reason"]!.GetValue<string>());
            var events = await server.StreamAsync(request.Replace("\"temperature\":0", "\"temperature\":0,\"stream\":true"), TestContext.Current.CancellationToken);
            Assert.Equal("[DONE]", events[^1]);
            var streamed = string.Concat(events[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!["text"]?.GetValue<string>() ?? ""));
            Assert.Equal(full[..cut], streamed);

            // Streaming without a stop string yields exactly the non-streamed text.
            events = await server.StreamAsync("""{"prompt": "the cat", "max_tokens": 40, "temperature": 0, "stream": true}""", TestContext.Current.CancellationToken);
            Assert.Equal(full, string.Concat(events[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!["text"]!.GetValue<string>())));

            (status, _, text) = await server.PostAsync("/v1/completions", """{"prompt": "the cat~", "max_tokens": 4}""");
            Assert.Equal(400, status);
            Assert.Contains("U+007E", text);
            (status, _, text) = await server.PostAsync("/detokenize", """{"tokens": [1, 999]}""");
            Assert.Equal(400, status);
            Assert.Contains("999", text);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>Ids are UTF-8 bytes: a character may span several ids (as with byte-level BPE).</summary>
    private sealed class ByteTokenizer : ITokenizer
    {
        public int VocabSize => 256;
        public int[] Encode(string text) => System.Text.Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();
        public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
        {
            var bytes = new byte[ids.Length];
            for (int i = 0; i < ids.Length; i++) bytes[i] = (byte)ids[i];
            return System.Text.Encoding.UTF8.GetString(bytes);
        }
        public string? IdToToken(int id) => id is >= 0 and < 256 ? ((char)id).ToString() : null;
        public int? TokenToId(string token) => token.Length == 1 && token[0] < 256 ? token[0] : null;
        public bool IsSpecial(int id) => false;
        public bool DecodesByBytes => true;
        public ReadOnlySpan<byte> TokenBytes(int id, bool skipSpecialTokens = false) => id is >= 0 and < 256 ? new[] { (byte)id } : default;
    }

    [Fact]
    public void TextAssemblerWaitsForWholeCharactersAndStopsAcrossTokens()
    {
        var tok = new ByteTokenizer();
        var a = new Mamba4.Text.TextAssembler(tok, []);
        var deltas = tok.Encode("héllo wörld ✓").Select(id => a.Add(id)).ToList();
        deltas.Add(a.Flush());
        Assert.DoesNotContain(deltas, d => d.Contains('\uFFFD'));
        Assert.Equal("héllo wörld ✓", string.Concat(deltas));
        var b = new Mamba4.Text.TextAssembler(tok, ["ö"]);
        var text = string.Concat(tok.Encode("héllo wörld").Select(id => b.Add(id)));
        Assert.True(b.Stopped);
        Assert.Equal("héllo w", text + b.Flush());
    }

    [Fact]
    public void TextAssemblerHoldsBackPossibleStopStrings()
    {
        var tok = new CharTokenizer("abcdefgh".Select(c => c.ToString()));
        var a = new Mamba4.Text.TextAssembler(tok, ["cde"]);
        Assert.Equal("a", a.Add(0));
        Assert.Equal("b", a.Add(1));
        Assert.Equal("", a.Add(2));      // "c" may start "cde"
        Assert.Equal("", a.Add(3));      // "cd" too
        Assert.Equal("cdf", a.Add(5));   // "cdf" cannot
        Assert.Equal("", a.Add(2));
        Assert.Equal("", a.Add(3));
        Assert.Equal("", a.Add(4));      // "cde": stop
        Assert.True(a.Stopped);
        Assert.Equal("abcdf", a.Emitted);
        var b = new Mamba4.Text.TextAssembler(tok, ["cde"]);
        b.Add(0); b.Add(2);
        Assert.Equal("c", b.Flush());
        Assert.Equal("ac", b.Emitted);
    }
}
