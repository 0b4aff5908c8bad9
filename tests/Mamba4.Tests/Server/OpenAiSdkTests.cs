#pragma warning disable OPENAI001   // ChatCompletionOptions.Seed is marked experimental by the SDK
using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Server;
using Mamba4.Tests.AI;
using Mamba4.Text;
using OpenAI;
using OpenAI.Chat;
using MEAI = Microsoft.Extensions.AI;

namespace Mamba4.Tests.Server;

/// <summary>
/// The server driven by the official OpenAI .NET package, as a user's existing OpenAI code would drive it with only the
/// endpoint changed: chat (streaming and not), the model list, errors (a wrong key is a 401 through the SDK). The model is
/// transformers' hf-mamba fixture read through a one-character-per-id tokenizer, so replies are checked against the
/// reference's greedy ids.
/// </summary>
public sealed class OpenAiSdkTests : IDisposable
{
    private const string Key = "sk-mamba4-test";
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly string _dir;

    public OpenAiSdkTests()
    {
        _dir = ModelDir("{% for m in messages %}{{ m.content }}{% endfor %}");
    }

    /// <summary>The fixture's weights, the character tokenizer and a tokenizer_config.json holding <paramref name="template"/> (and <paramref name="eos"/>).</summary>
    internal static string ModelDir(string? template, string? eos = null)
    {
        var dir = Directory.CreateTempSubdirectory("mamba4-openai-").FullName;
        foreach (var f in new[] { "config.json", "model.safetensors" }) File.Copy(Path.Combine(ServerHarness.HfMamba, f), Path.Combine(dir, f));
        ChatClientTests.Chars.Save(Path.Combine(dir, "tokenizer.json"));
        var config = new JsonObject { ["chat_template"] = template, ["eos_token"] = eos };
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
        return dir;
    }

    public void Dispose() => Directory.Delete(_dir, true);

    private static (string Prompt, string Reply, long[] PromptIds, long[] ReplyIds) Reference()
    {
        using var reference = SafetensorsFile.Open(Path.Combine(ServerHarness.HfMamba, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var output = reference.Get("generate.output").ToInt64Array()[prompt.Length..];
        return (ChatClientTests.Chars.Decode(prompt), ChatClientTests.Chars.Decode(output), prompt, output);
    }

    private static OpenAIClient Sdk(ServerHarness server, string key = Key) => new(new ApiKeyCredential(key), new OpenAIClientOptions
    {
        Endpoint = new Uri(server.Client.BaseAddress!, "/v1"),
        Transport = new HttpClientPipelineTransport(server.Client),
        RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
    });

    private Task<ServerHarness> Start(string? dir = null, int maxMessages = 256) =>
        ServerHarness.StartAsync(new ServerOptions { ModelDir = dir ?? _dir, ApiKey = Key, MaxMessages = maxMessages });

    [Fact]
    public async Task ChatGreedyReplyEqualsTransformersGenerateWithUsage()
    {
        var (prompt, reply, _, _) = Reference();
        await using var server = await Start();
        var chat = Sdk(server).GetChatClient("anything");
        // The template joins the contents: a system message and a user message make the reference prompt.
        ChatCompletion completion = await chat.CompleteChatAsync(
            [new SystemChatMessage(prompt[..1]), new UserChatMessage(prompt[1..])],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = reply.Length }, Ct);
        Assert.Equal(reply, completion.Content.Single().Text);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.StartsWith("chatcmpl-", completion.Id);
        Assert.Equal((prompt.Length, reply.Length, prompt.Length + reply.Length), (completion.Usage.InputTokenCount, completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount));
    }

    [Fact]
    public async Task StreamingChatAddsUpToTheSameReplyAsNonStreaming()
    {
        var (prompt, _, _, _) = Reference();
        await using var server = await Start();
        var chat = Sdk(server).GetChatClient("anything");
        var options = new ChatCompletionOptions { Temperature = 0.9f, TopP = 0.95f, Seed = 5, MaxOutputTokenCount = 20 };
        ChatCompletion whole = await chat.CompleteChatAsync([new UserChatMessage(prompt)], options, Ct);
        var text = new System.Text.StringBuilder();
        var updates = new List<StreamingChatCompletionUpdate>();
        await foreach (var u in chat.CompleteChatStreamingAsync([new UserChatMessage(prompt)], options, Ct))
        {
            updates.Add(u);
            foreach (var part in u.ContentUpdate) text.Append(part.Text);
        }
        Assert.Equal(whole.Content.Single().Text, text.ToString());
        Assert.True(updates.Count(u => u.ContentUpdate.Count > 0) > 2, "the reply was not streamed");
        Assert.Equal(ChatFinishReason.Length, updates.Single(u => u.FinishReason is not null).FinishReason);
        var usage = updates.Single(u => u.Usage is not null).Usage;
        Assert.Equal((whole.Usage.InputTokenCount, whole.Usage.OutputTokenCount), (usage.InputTokenCount, usage.OutputTokenCount));
    }

    [Fact]
    public async Task StopSequencesAndTheTemplatesEosTokenEndTheReplyWithoutShowingThem()
    {
        var (prompt, reply, _, _) = Reference();
        await using (var server = await Start())
        {
            var stop = reply.Substring(4, 2);
            int at = reply.IndexOf(stop, StringComparison.Ordinal);
            var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 50 };
            options.StopSequences.Add(stop);
            ChatCompletion c = await Sdk(server).GetChatClient("m").CompleteChatAsync([new UserChatMessage(prompt)], options, Ct);
            Assert.Equal(reply[..at], c.Content.Single().Text);
            Assert.Equal(ChatFinishReason.Stop, c.FinishReason);
        }
        // The template's eos_token (one character of the reply here) ends it: counted in usage, not shown.
        var eos = reply[6].ToString();
        int eosAt = reply.IndexOf(eos, StringComparison.Ordinal);
        var dir = ModelDir("{% for m in messages %}{{ m.content }}{% endfor %}", eos);
        try
        {
            await using var server = await Start(dir);
            ChatCompletion c = await Sdk(server).GetChatClient("m").CompleteChatAsync([new UserChatMessage(prompt)], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 50 }, Ct);
            Assert.Equal(reply[..eosAt], c.Content.Single().Text);
            Assert.Equal(ChatFinishReason.Stop, c.FinishReason);
            Assert.Equal(eosAt + 1, c.Usage.OutputTokenCount);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Microsoft.Extensions.AI's OpenAI adapter over the SDK's client: the server as an IChatClient.</summary>
    [Fact]
    public async Task MicrosoftExtensionsAIsOpenAIAdapterServesAsAnIChatClient()
    {
        var (prompt, reply, _, _) = Reference();
        await using var server = await Start();
        using var chat = MEAI.OpenAIClientExtensions.AsIChatClient(Sdk(server).GetChatClient("m"));
        var options = new MEAI.ChatOptions { Temperature = 0, MaxOutputTokens = reply.Length };
        var response = await chat.GetResponseAsync([new MEAI.ChatMessage(MEAI.ChatRole.User, prompt)], options, Ct);
        Assert.Equal(reply, response.Text);
        Assert.Equal(reply.Length, response.Usage!.OutputTokenCount);
        var streamed = new System.Text.StringBuilder();
        await foreach (var u in chat.GetStreamingResponseAsync([new MEAI.ChatMessage(MEAI.ChatRole.User, prompt)], options, Ct)) streamed.Append(u.Text);
        Assert.Equal(reply, streamed.ToString());
    }

    /// <summary>The event sequence OpenAI documents: a role chunk, content chunks, a finish chunk, a usage chunk with empty choices, [DONE].</summary>
    [Fact]
    public async Task StreamedChunksHaveOpenAIsShapesAndOrder()
    {
        var (prompt, reply, _, _) = Reference();
        await using var server = await Start();
        server.Client.DefaultRequestHeaders.Authorization = new("Bearer", Key);
        var body = new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = prompt }) }),
            ["max_completion_tokens"] = reply.Length, ["temperature"] = 0, ["stream"] = true, ["stream_options"] = new JsonObject { ["include_usage"] = true },
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = (await response.Content.ReadAsStringAsync(Ct)).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c["object"]!.GetValue<string>()));
        Assert.All(chunks, c => Assert.Equal(chunks[0]["id"]!.GetValue<string>(), c["id"]!.GetValue<string>()));
        Assert.Equal("assistant", chunks[0]["choices"]![0]!["delta"]!["role"]!.GetValue<string>());
        var usage = chunks[^1];
        Assert.Empty(usage["choices"]!.AsArray());
        Assert.Equal(reply.Length, usage["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal(prompt.Length, usage["usage"]!["prompt_tokens"]!.GetValue<int>());
        var finish = chunks[^2]["choices"]![0]!;
        Assert.Equal("length", finish["finish_reason"]!.GetValue<string>());
        var content = chunks[1..^1].Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>() ?? "");
        Assert.Equal(reply, string.Concat(content));
        Assert.All(chunks[..^2], c => Assert.Null(c["choices"]![0]!["finish_reason"]?.GetValue<string>()));
    }

    [Fact]
    public async Task TheModelListNamesTheServedDirectory()
    {
        await using var server = await Start();
        var models = await Sdk(server).GetOpenAIModelClient().GetModelsAsync(Ct);
        Assert.Equal(Path.GetFileName(_dir), models.Value.Single().Id);
    }

    /// <summary>The SDK (2.x) has no public client for the legacy completions endpoint: the request goes through the SDK's own pipeline (its key, its transport).</summary>
    [Fact]
    public async Task CompletionsThroughTheSdksPipelineEqualTransformersGenerate()
    {
        var (_, _, promptIds, replyIds) = Reference();
        await using var server = await Start();
        var pipeline = Sdk(server).GetChatClient("m").Pipeline;
        using var message = pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(server.Client.BaseAddress!, "/v1/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromObjectAsJson(new { prompt = promptIds, max_tokens = replyIds.Length, temperature = 0 }));
        await pipeline.SendAsync(message);
        Assert.Equal(200, message.Response!.Status);
        var body = JsonNode.Parse(message.Response.Content.ToString())!;
        Assert.Equal(replyIds, body["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<long>()));
        Assert.Equal(ChatClientTests.Chars.Decode(replyIds), body["choices"]![0]!["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task ErrorsReachTheSdkAsClientResultExceptionsWithTheServersStatusAndMessage()
    {
        await using var server = await Start(maxMessages: 3);
        var wrongKey = await Assert.ThrowsAsync<ClientResultException>(() => Sdk(server, "sk-wrong").GetChatClient("m").CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Ct));
        Assert.Equal(401, wrongKey.Status);
        var chat = Sdk(server).GetChatClient("m");
        var hot = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 20 }, Ct));
        Assert.Equal(400, hot.Status);
        Assert.Contains("temperature", hot.Message);
        var many = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync(Enumerable.Range(0, 4).Select(_ => (ChatMessage)new UserChatMessage("x")), cancellationToken: Ct));
        Assert.Equal(413, many.Status);
        Assert.Contains("--max-messages", many.Message);
        var tooLong = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("x")], new ChatCompletionOptions { MaxOutputTokenCount = 1_000_000 }, Ct));
        Assert.Contains("max_completion_tokens", tooLong.Message);
    }

    [Fact]
    public async Task AChatPastTheTimeoutIsA408AsForCompletions()
    {
        await using var server = await ServerHarness.StartAsync(new ServerOptions { ModelDir = _dir, ApiKey = Key, MaxTokens = 100_000_000, RequestTimeoutSeconds = 1 });
        var e = await Assert.ThrowsAsync<ClientResultException>(() => Sdk(server).GetChatClient("m").CompleteChatAsync([new UserChatMessage("ab")], new ChatCompletionOptions { MaxOutputTokenCount = 100_000_000 }, Ct));
        Assert.Equal(408, e.Status);
        Assert.Contains("--timeout", e.Message);
    }

    [Fact]
    public async Task ATemplatesRaiseExceptionIsA400AndAnUnsupportedTemplateA501NamingTheConstructWhileCompletionsStillWork()
    {
        var strict = ModelDir("{% for m in messages %}{% if m.role != 'user' %}{{ raise_exception('only user messages, got ' + m.role) }}{% endif %}{{ m.content }}{% endfor %}");
        var unsupported = ModelDir("{% macro turn(m) %}{{ m.content }}{% endmacro %}");
        try
        {
            await using (var server = await Start(strict))
            {
                var e = await Assert.ThrowsAsync<ClientResultException>(() => Sdk(server).GetChatClient("m").CompleteChatAsync([new AssistantChatMessage("a")], cancellationToken: Ct));
                Assert.Equal(400, e.Status);
                Assert.Contains("only user messages, got assistant", e.Message);
            }
            await using (var server = await Start(unsupported))
            {
                var e = await Assert.ThrowsAsync<ClientResultException>(() => Sdk(server).GetChatClient("m").CompleteChatAsync([new UserChatMessage("a")], cancellationToken: Ct));
                Assert.Equal(501, e.Status);
                Assert.Contains("'{% macro %}' is not supported", e.Message);
                server.Client.DefaultRequestHeaders.Authorization = new("Bearer", Key);
                var (status, _, text) = await server.PostAsync("/v1/completions", """{"prompt": "ab", "max_tokens": 2}""");
                Assert.True(status == 200, text);
            }
        }
        finally
        {
            Directory.Delete(strict, true);
            Directory.Delete(unsupported, true);
        }
    }

    [Fact]
    public async Task WithoutAChatTemplateTheDefaultRoleColonContentFormatIsUsed()
    {
        // "user: " + content + "\nassistant:" is the prompt; its greedy reply equals the library's generate on those ids.
        var dir = ModelDir(null);
        try
        {
            await using var server = await Start(dir);
            ChatCompletion c = await Sdk(server).GetChatClient("m").CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 }, Ct);
            var promptIds = ChatClientTests.Chars.Encode("user: hi\nassistant:").Select(i => (long)i).ToArray();
            using var model = Mamba4.Models.MambaLM.FromPretrained(dir);
            var expected = Mamba4.Inference.Generator.Greedy(model, promptIds, 8)[promptIds.Length..];
            Assert.Equal(ChatClientTests.Chars.Decode(expected), c.Content.Single().Text);
            Assert.Equal(promptIds.Length, c.Usage.InputTokenCount);
        }
        finally { Directory.Delete(dir, true); }
    }
}
