using System.Text;
using Mamba4.Server;

namespace Mamba4.Tests.Server;

/// <summary>Bad requests get a 4xx JSON error that names the problem — never a 500.</summary>
public class ServerErrorTests : IAsyncLifetime
{
    private ServerHarness _server = null!;

    public async ValueTask InitializeAsync() =>
        _server = await ServerHarness.StartAsync(new ServerOptions
        {
            ModelDir = ServerHarness.HfMamba, MaxTokens = 512, MaxPromptTokens = 64, MaxRequestBytes = 4096,
        });

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Theory]
    [InlineData("{", 400, "malformed JSON")]
    [InlineData("", 400, "empty")]
    [InlineData("  \n", 400, "empty")]
    [InlineData("null", 400, "null")]
    [InlineData("[1]", 400, "expected a JSON object")]
    [InlineData("{\"prompt\": [1], \"foo\": 1}", 400, "unknown field 'foo'")]
    [InlineData("{\"prompt\": [1],}", 400, "malformed JSON")]
    [InlineData("{\"max_tokens\": 3}", 400, "prompt is required")]
    [InlineData("{\"prompt\": []}", 400, "prompt is empty")]
    [InlineData("{\"prompt\": [96]}", 400, "outside the vocabulary [0, 96)")]
    [InlineData("{\"prompt\": [-1]}", 400, "outside the vocabulary")]
    [InlineData("{\"prompt\": [1.5]}", 400, "integer token id")]
    [InlineData("{\"prompt\": [[1, 2]]}", 400, "batched prompts")]
    [InlineData("{\"prompt\": {\"a\": 1}}", 400, "prompt must be")]
    [InlineData("{\"prompt\": \"hello\"}", 400, "no tokenizer")]
    [InlineData("{\"prompt\": [1], \"stop\": \"x\"}", 400, "stop strings need a tokenizer")]
    [InlineData("{\"prompt\": [1], \"stop\": 5}", 400, "stop must be")]
    [InlineData("{\"prompt\": [1], \"max_tokens\": -1}", 400, "max_tokens must be in [1, 512]")]
    [InlineData("{\"prompt\": [1], \"max_tokens\": 0}", 400, "max_tokens must be")]
    [InlineData("{\"prompt\": [1], \"max_tokens\": 100000000}", 400, "max_tokens must be")]
    [InlineData("{\"prompt\": [1], \"max_tokens\": 1e30}", 400, "field 'max_tokens'")]
    [InlineData("{\"prompt\": [1], \"max_tokens\": \"7\"}", 400, "field 'max_tokens'")]
    [InlineData("{\"prompt\": [1], \"temperature\": -0.5}", 400, "temperature must be")]
    [InlineData("{\"prompt\": [1], \"temperature\": 1e9}", 400, "temperature must be")]
    [InlineData("{\"prompt\": [1], \"top_p\": 0}", 400, "top_p must be")]
    [InlineData("{\"prompt\": [1], \"top_p\": 1.5}", 400, "top_p must be")]
    [InlineData("{\"prompt\": [1], \"top_k\": -5}", 400, "top_k must be")]
    [InlineData("{\"prompt\": [1], \"repetition_penalty\": 0}", 400, "repetition_penalty")]
    [InlineData("{\"prompt\": [1], \"repetition_penalty\": 1e-40}", 400, "repetition_penalty must be in [0.1, 10]")]
    [InlineData("{\"prompt\": [1], \"repetition_penalty\": 1e30}", 400, "repetition_penalty must be in [0.1, 10]")]
    [InlineData("{\"prompt\": [1], \"temperature\": 1e39}", 400, "temperature must be in [0, 10]")]   // +inf as a float
    [InlineData("{\"prompt\": [1], \"top_p\": 1e-50}", 400, "top_p must be in (0, 1], got 0")]   // 0 as a float
    [InlineData("{\"prompt\": [1], \"n\": 2}", 400, "n must be 1")]
    [InlineData("{\"prompt\": [1], \"seed\": 99999999999}", 400, "field 'seed'")]
    [InlineData("{\"prompt\": [1], \"stream\": \"yes\"}", 400, "field 'stream'")]
    [InlineData("{\"prompt\": [1], \"stop_token_ids\": [1000]}", 400, "stop_token_ids")]
    public async Task CompletionRequestIsRefusedWithAReason(string body, int status, string reason)
    {
        var (code, json, text) = await _server.PostAsync("/v1/completions", body);
        Assert.True(code == status, $"{code}: {text}");
        Assert.Contains(reason, json!["error"]!["message"]!.GetValue<string>());
        Assert.Equal("invalid_request_error", json["error"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task OversizedBodiesAndPromptsAre413()
    {
        var big = "{\"prompt\": [" + string.Join(",", Enumerable.Repeat("1", 3000)) + "]}";
        var (code, _, text) = await _server.PostAsync("/v1/completions", big);
        Assert.Equal(413, code);
        Assert.Contains("4096 bytes", text);
        var longPrompt = "{\"prompt\": [" + string.Join(",", Enumerable.Repeat("1", 65)) + "]}";
        (code, _, text) = await _server.PostAsync("/v1/completions", longPrompt);
        Assert.Equal(413, code);
        Assert.Contains("65 tokens", text);
        Assert.Contains("--max-prompt-tokens", text);
        // A body without Content-Length is counted as it arrives.
        using var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        content.Headers.ContentType = new("application/json");
        using var response = await _server.Client.PostAsync("/v1/completions", content, TestContext.Current.CancellationToken);
        Assert.Equal(413, (int)response.StatusCode);
    }

    [Fact]
    public async Task UnknownRoutesMethodsAndAbsentServicesAreJson4xx()
    {
        var (code, json, _) = await _server.GetAsync("/v2/nothing");
        Assert.Equal(404, code);
        Assert.Contains("/v2/nothing", json!["error"]!["message"]!.GetValue<string>());
        (code, json, _) = await _server.GetAsync("/v1/completions");
        Assert.Equal(405, code);
        Assert.NotNull(json!["error"]);
        (code, json, _) = await _server.PostAsync("/tokenize", "{\"content\": \"a\"}");
        Assert.Equal(404, code);
        Assert.Contains("no tokenizer", json!["error"]!["message"]!.GetValue<string>());
        (code, json, _) = await _server.PostAsync("/v1/recommend", "{\"history\": [1]}");
        Assert.Equal(404, code);
        Assert.Contains("--rec", json!["error"]!["message"]!.GetValue<string>());
        (code, _, _) = await _server.GetAsync("/v1/users/u/recommendations");
        Assert.Equal(404, code);
    }

    [Fact]
    public async Task HealthAndMetricsDescribeTheServer()
    {
        await _server.CompleteIdsAsync(new { prompt = new[] { 1, 2 }, max_tokens = 3, temperature = 0 });
        await _server.PostAsync("/v1/completions", "{");
        var (code, json, _) = await _server.GetAsync("/health");
        Assert.Equal(200, code);
        Assert.Equal("ok", json!["status"]!.GetValue<string>());
        Assert.Equal("hf-mamba", json["model"]!.GetValue<string>());
        Assert.Equal(32, json["stream_capacity"]!.GetValue<int>());
        // OpenTelemetry's exporter has histograms where the hand-written exporter had summaries (OpenTelemetry has no
        // summary): the names are the same, the quantile lines are now buckets.
        var metrics = await _server.Client.GetStringAsync("/metrics", TestContext.Current.CancellationToken);
        foreach (var name in new[]
                 {
                     "mamba4_requests_total{route=\"/v1/completions\",status=\"200\"}", "mamba4_requests_total{route=\"/v1/completions\",status=\"400\"}",
                     "mamba4_active_streams", "mamba4_batch_size", "mamba4_tokens_per_second", "mamba4_generated_tokens_total",
                     "mamba4_request_duration_seconds_bucket{route=\"/v1/completions\",le=\"+Inf\"}", "mamba4_time_to_first_token_seconds_count",
                     "mamba4_inter_token_seconds_bucket{le=\"0.001\"}", "mamba4_queue_seconds_count", "mamba4_decode_steps_total", "mamba4_timeouts_total",
                 })
            Assert.Contains(name, metrics);
        Assert.Contains("# TYPE mamba4_request_duration_seconds histogram", metrics);
        Assert.True(await _server.MetricAsync("mamba4_generated_tokens_total") >= 3);
        Assert.True(await _server.MetricAsync("mamba4_tokens_per_second") > 0);
    }

    [Fact]
    public async Task ThePlaygroundIsServedAtTheRoot()
    {
        using var response = await _server.Client.GetAsync("/", TestContext.Current.CancellationToken);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        var html = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("Mamba4 playground", html);
        Assert.Contains("/v1/completions", html);
        Assert.Contains("/v1/recommend", html);
    }

    [Fact]
    public async Task ABadModelDirectoryFailsBeforeServingAndNamesTheFile()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => ServerHarness.StartAsync(new ServerOptions { ModelDir = "/nonexistent/model" }));
        Assert.Contains("/nonexistent/model", e.Message);
        var dir = Path.Combine(Path.GetTempPath(), "mamba4-corrupt-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(ServerHarness.HfMamba, "config.json"), Path.Combine(dir, "config.json"));
            File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), [1, 2, 3]);
            e = await Assert.ThrowsAnyAsync<Exception>(() => ServerHarness.StartAsync(new ServerOptions { ModelDir = dir }));
            Assert.Contains("model.safetensors", e.Message);
            Assert.True(e is IOException or InvalidDataException or FormatException, e.GetType().Name);
        }
        finally { Directory.Delete(dir, true); }
        var none = Assert.Throws<ArgumentException>(() => new ServerOptions().Validate());
        Assert.Contains("--model", none.Message);
        Assert.Contains("expected 'cpu', 'cuda' or 'cuda:N'", Assert.Throws<ArgumentException>(() => new ServerOptions { ModelDir = "x", Device = "gpu" }.Validate()).Message);
        Assert.StartsWith("--device cuda:99: ", Assert.Throws<NotSupportedException>(() => new ServerOptions { ModelDir = "x", Device = "cuda:99" }.Validate()).Message);
        Assert.Contains("--timeout", Assert.Throws<ArgumentException>(() => new ServerOptions { ModelDir = "x", RequestTimeoutSeconds = 0 }.Validate()).Message);
        Assert.Contains("--forecast", none.Message);
    }
}
