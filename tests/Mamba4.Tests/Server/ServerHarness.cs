using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.Models;
using Mamba4.Server;
using Mamba4.Server.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;

namespace Mamba4.Tests.Server;

/// <summary>`mamba4 serve`'s application in-process on a TestServer, with an HttpClient to it.</summary>
public sealed class ServerHarness : IAsyncDisposable
{
    private ServerHarness(WebApplication app, HttpClient client)
    {
        App = app;
        Client = client;
    }

    public WebApplication App { get; }
    public HttpClient Client { get; }

    /// <summary>Serves <paramref name="model"/> (owned by the server from here on) when given, else options.ModelDir.</summary>
    public static async Task<ServerHarness> StartAsync(ServerOptions options, MambaLM? model = null)
    {
        var app = MambaServer.Build(options with { Log = false }, b => b.WebHost.UseTestServer(), model);
        await app.StartAsync();
        var client = app.GetTestClient();
        client.Timeout = TimeSpan.FromSeconds(60);
        return new ServerHarness(app, client);
    }

    /// <summary>The text service's continuous-batching scheduler (its test seams).</summary>
    public BatchScheduler Scheduler => App.Services.GetService(typeof(TextService)) is TextService t ? t.Scheduler : throw new InvalidOperationException("no language model is served");

    public static string HfMamba => Fixtures.Path_("hf-mamba");
    /// <summary>transformers' Mamba2ForCausalLM fixture (tests/fixtures/mamba2), same vocabulary (96) as hf-mamba.</summary>
    public static string Mamba2 => Fixtures.Repo("mamba2");
    /// <summary>"hf-mamba" or "mamba2" → its directory.</summary>
    public static string Lm(string fixture) => fixture == "mamba2" ? Mamba2 : HfMamba;
    public static string Rec1 => Fixtures.Path_("mamba4rec-1layer");

    public async Task<(int Status, JsonNode? Body, string Text)> PostAsync(string path, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await Client.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, TryParse(text), text);
    }

    public async Task<(int Status, JsonNode? Body, string Text)> GetAsync(string path)
    {
        using var response = await Client.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, TryParse(text), text);
    }

    public static JsonNode? TryParse(string text)
    {
        try { return JsonNode.Parse(text); }
        catch (JsonException) { return null; }
    }

    /// <summary>The generated ids of a non-streaming completion.</summary>
    public async Task<long[]> CompleteIdsAsync(object request)
    {
        var (status, body, text) = await PostAsync("/v1/completions", JsonSerializer.Serialize(request));
        Assert.True(status == 200, text);
        return body!["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<long>()).ToArray();
    }

    /// <summary>Reads a server-sent-events completion: every data payload in order ("[DONE]" included).</summary>
    public async Task<List<string>> StreamAsync(string json, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        var events = new List<string>();
        while (await reader.ReadLineAsync(ct) is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(line[6..]);
        return events;
    }

    public async Task<double> MetricAsync(string name)
    {
        var text = await Client.GetStringAsync("/metrics");
        // (OpenTelemetry's exporter writes a series without labels with an empty label set: name{} value.)
        foreach (var line in text.Replace("{} ", " ").Split('\n'))
            if (line.StartsWith(name + " ", StringComparison.Ordinal)) return double.Parse(line[(name.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        throw new KeyNotFoundException($"metric {name} not in /metrics");
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
