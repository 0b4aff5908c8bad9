using System.Buffers;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Text;
using Microsoft.AspNetCore.Http;

namespace Mamba4.Server.Text;

/// <summary>The text endpoints: /v1/completions (JSON or server-sent events), /tokenize, /detokenize.</summary>
public sealed class TextService : IDisposable
{
    private readonly ServerOptions _options;
    private readonly ServerMetrics _metrics;

    /// <param name="modelDir">Where tokenizer_config.json's chat_template is read from (null: the default template).</param>
    public TextService(MambaLM model, ITokenizer? tokenizer, string name, ServerOptions options, ServerMetrics metrics, string? modelDir = null)
    {
        Model = model;
        Tokenizer = tokenizer;
        Name = name;
        _options = options;
        _metrics = metrics;
        // A template outside the supported subset leaves the other endpoints working; chat requests get the reason.
        try { Template = modelDir is null ? ChatTemplate.Default : ChatTemplate.ForModelDirectory(modelDir); }
        catch (Exception e) when (e is ChatTemplateException or InvalidDataException or IOException) { _templateProblem = e.Message; }
        if (Template?.EosToken is { } eos && tokenizer?.TokenToId(eos) is int eosId) _chatStopIds = [eosId];
        Scheduler = new BatchScheduler(model, options.MaxStreams, options.MaxQueue, metrics) { StallSeconds = options.StallSeconds };
    }

    public MambaLM Model { get; }
    public ITokenizer? Tokenizer { get; }
    public string Name { get; }
    public BatchScheduler Scheduler { get; }
    /// <summary>How /v1/chat/completions turns messages into a prompt; null when the directory's template cannot be used (<see cref="_templateProblem"/> says why).</summary>
    public ChatTemplate? Template { get; }
    private readonly string? _templateProblem;
    /// <summary>The template's eos_token: a chat reply ends there (the token is not shown).</summary>
    private readonly HashSet<long>? _chatStopIds;
    private int Vocab => Model.Config.VocabSize;

    private sealed record Plan(long[] Prompt, SamplingOptions Sampling, int MaxTokens, IReadOnlySet<long>? StopIds, string[] Stops, bool Stream);

    /// <summary>Checks every field; each problem is a 400 (or 413 for a prompt over the limit) naming the field. The sampling
    /// fields are checked as the floats the sampler reads (<see cref="SamplingOptions.Problem"/>): a temperature below
    /// 1e-5 (0 included) takes the most likely token; one that is 0 only as a float (1e-50) does too.</summary>
    private Plan Validate(CompletionRequest r)
    {
        return NewPlan(r, r.MaxTokens, "max_tokens", Math.Min(16, _options.MaxTokens), () => StopIds(r.StopTokenIds), () => ParsePrompt(r.Prompt));
    }

    /// <summary>The fields both endpoints share, checked in this order: n, max tokens, sampling, stop, then the stop ids and the prompt.</summary>
    private Plan NewPlan(SamplingRequest r, int? maxTokens, string maxTokensField, int defaultMaxTokens, Func<HashSet<long>?> stopIds, Func<long[]> prompt)
    {
        if (r.N is int n && n != 1) throw ApiException.BadRequest($"n must be 1 (one completion per request), got {n}", "n");
        int max = maxTokens ?? defaultMaxTokens;
        if (max < 1 || max > _options.MaxTokens)
            throw ApiException.BadRequest($"{maxTokensField} must be in [1, {_options.MaxTokens}] (--max-tokens), got {max}", maxTokensField);
        var sampling = new SamplingOptions
        {
            Temperature = (float)(r.Temperature ?? 1.0), TopK = r.TopK ?? 0, TopP = (float)(r.TopP ?? 1.0),
            RepetitionPenalty = (float)(r.RepetitionPenalty ?? 1.0), Seed = r.Seed ?? Random.Shared.Next(),
        };
        if (sampling.Problem() is { } problem) throw ApiException.BadRequest($"{problem.Field} {problem.Rule}", problem.Field);
        var stops = ParseStops(r.Stop);
        var ids = stopIds();
        return new Plan(prompt(), sampling, max, ids, stops, r.Stream ?? false);
    }

    private HashSet<long>? StopIds(long[]? ids)
    {
        if (ids is null) return null;
        if (ids.Length > 64) throw ApiException.BadRequest($"stop_token_ids holds {ids.Length} ids; at most 64", "stop_token_ids");
        foreach (var t in ids) CheckId(t, "stop_token_ids");
        return [.. ids];
    }

    /// <summary>The chat request's fields, then the prompt: the messages rendered by the template, tokenized, bounded like a completion's prompt.</summary>
    private (Plan Plan, bool IncludeUsage) ValidateChat(ChatCompletionRequest r)
    {
        if (Tokenizer is null) throw ApiException.NotFound("this model directory has no tokenizer (tokenizer.json): chat needs one; send token ids to /v1/completions");
        if (Template is null) throw new ApiException(501, $"the model's chat template cannot be used: {_templateProblem}");
        var turns = ParseMessages(r.Messages);
        bool includeUsage = ParseStreamOptions(r.StreamOptions);
        var plan = NewPlan(r, r.MaxCompletionTokens ?? r.MaxTokens, r.MaxCompletionTokens is null ? "max_tokens" : "max_completion_tokens",
            Math.Min(Mamba4.AI.MambaChatClient.DefaultMaxOutputTokens, _options.MaxTokens), () => _chatStopIds, () => ChatPrompt(turns));
        return (plan, includeUsage);
    }

    private long[] ChatPrompt(List<ChatTurn> turns)
    {
        string text;
        try { text = Template!.Render(turns); }
        catch (ChatTemplateException e) { throw ApiException.BadRequest("messages: the chat template refused them: " + e.Message, "messages"); }
        if (text.Length > _options.MaxPromptTokens * 16L)
            throw ApiException.TooLarge($"the messages make a prompt of {text.Length} characters; the limit is {_options.MaxPromptTokens} tokens (--max-prompt-tokens)", "messages");
        long[] ids;
        try { ids = Tokenizer!.Encode(text).Select(i => (long)i).ToArray(); }
        catch (ArgumentException e) { throw ApiException.BadRequest("messages: " + e.Message, "messages"); }
        if (ids.Length == 0) throw ApiException.BadRequest("messages make an empty prompt: it needs at least one token", "messages");
        if (ids.Length > _options.MaxPromptTokens)
            throw ApiException.TooLarge($"the messages make a prompt of {ids.Length} tokens; the limit is {_options.MaxPromptTokens} (--max-prompt-tokens)", "messages");
        return ids;
    }

    /// <summary>messages: 1 to --max-messages objects {role, content, name?}; content a string, null, or an array of {"type": "text", "text"} parts.</summary>
    private List<ChatTurn> ParseMessages(JsonElement? messages)
    {
        if (messages is not { ValueKind: JsonValueKind.Array } list)
            throw ApiException.BadRequest("messages is required: an array of {\"role\", \"content\"} objects", "messages");
        int count = list.GetArrayLength();
        if (count == 0) throw ApiException.BadRequest("messages is empty: it needs at least one message", "messages");
        if (count > _options.MaxMessages) throw ApiException.TooLarge($"messages holds {count} messages; the limit is {_options.MaxMessages} (--max-messages)", "messages");
        var turns = new List<ChatTurn>(count);
        int i = 0;
        foreach (var m in list.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (m.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"{at} must be an object with role and content", "messages");
            foreach (var field in m.EnumerateObject())
                if (field.Name is not ("role" or "content" or "name"))
                    throw ApiException.BadRequest($"{at}: unknown field '{field.Name}'; allowed fields: role, content, name (no tool calls)", "messages");
            if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String || role.GetString() is not { Length: >= 1 and <= 64 } roleText)
                throw ApiException.BadRequest($"{at}.role must be a string of 1 to 64 characters (system, user, assistant, …)", "messages");
            var content = m.TryGetProperty("content", out var c) ? Content(c, at) : "";
            if (content.Length > _options.MaxPromptTokens * 16L)
                throw ApiException.TooLarge($"{at}.content has {content.Length} characters; the limit is {_options.MaxPromptTokens} tokens (--max-prompt-tokens)", "messages");
            turns.Add(new ChatTurn(roleText, content));
        }
        return turns;
    }

    private static string Content(JsonElement c, string at)
    {
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest($"{at}.content must be a string or an array of text parts", "messages");
        var text = new StringBuilder();
        int j = 0;
        foreach (var part in c.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || !type.ValueEquals("text")
                || !part.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                throw ApiException.BadRequest($"{at}.content[{j}]: only text parts ({{\"type\": \"text\", \"text\": \"…\"}}) are supported", "messages");
            text.Append(t.GetString());
            j++;
        }
        return text.ToString();
    }

    private static bool ParseStreamOptions(JsonElement? options)
    {
        if (options is not { } o || o.ValueKind == JsonValueKind.Null) return false;
        if (o.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest("stream_options must be an object like {\"include_usage\": true}", "stream_options");
        bool include = false;
        foreach (var field in o.EnumerateObject())
            include = field.Name == "include_usage" && field.Value.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? field.Value.GetBoolean()
                : throw ApiException.BadRequest($"stream_options: only include_usage (true or false) is supported, got '{field.Name}'", "stream_options");
        return include;
    }

    private void CheckId(long t, string field)
    {
        if (t < 0 || t >= Vocab) throw ApiException.BadRequest($"{field}: token id {t} is outside the vocabulary [0, {Vocab})", field.Split('[')[0]);
    }

    private string[] ParseStops(JsonElement? stop)
    {
        if (stop is not { } e || e.ValueKind == JsonValueKind.Null) return [];
        string[] stops = e.ValueKind switch
        {
            JsonValueKind.String => [e.GetString()!],
            JsonValueKind.Array when e.EnumerateArray().All(x => x.ValueKind == JsonValueKind.String) => e.EnumerateArray().Select(x => x.GetString()!).ToArray(),
            _ => throw ApiException.BadRequest("stop must be a string or an array of strings", "stop"),
        };
        if (stops.Length == 0) return [];
        if (Tokenizer is null) throw ApiException.BadRequest("stop strings need a tokenizer and this model directory has none; use stop_token_ids", "stop");
        if (stops.Length > 4) throw ApiException.BadRequest($"stop holds {stops.Length} strings; at most 4", "stop");
        if (stops.Any(s => s.Length == 0 || s.Length > 256)) throw ApiException.BadRequest("each stop string must hold 1 to 256 characters", "stop");
        return stops;
    }

    private long[] ParsePrompt(JsonElement? prompt)
    {
        if (prompt is not { } e || e.ValueKind == JsonValueKind.Null) throw ApiException.BadRequest("prompt is required: a string or an array of token ids", "prompt");
        long[] ids;
        if (e.ValueKind == JsonValueKind.String)
        {
            if (Tokenizer is null) throw ApiException.BadRequest("this model directory has no tokenizer: send prompt as an array of token ids", "prompt");
            var text = e.GetString()!;
            if (text.Length > _options.MaxPromptTokens * 16L)
                throw ApiException.TooLarge($"prompt has {text.Length} characters; the limit is {_options.MaxPromptTokens} tokens (--max-prompt-tokens)", "prompt");
            try { ids = Tokenizer.Encode(text).Select(i => (long)i).ToArray(); }
            catch (ArgumentException ex) { throw ApiException.BadRequest("prompt: " + ex.Message, "prompt"); }
        }
        else if (e.ValueKind == JsonValueKind.Array)
        {
            int count = e.GetArrayLength();
            if (count > _options.MaxPromptTokens)
                throw ApiException.TooLarge($"prompt has {count} tokens; the limit is {_options.MaxPromptTokens} (--max-prompt-tokens)", "prompt");
            ids = new long[count];
            int i = 0;
            foreach (var x in e.EnumerateArray())
            {
                if (x.ValueKind == JsonValueKind.String || x.ValueKind == JsonValueKind.Array)
                    throw ApiException.BadRequest("prompt must be one string or one array of token ids (batched prompts are not supported: send one request per prompt)", "prompt");
                if (x.ValueKind != JsonValueKind.Number || !x.TryGetInt64(out ids[i]))
                    throw ApiException.BadRequest($"prompt[{i}] must be an integer token id, got {x.GetRawText()}", "prompt");
                CheckId(ids[i], $"prompt[{i}]");
                i++;
            }
        }
        else throw ApiException.BadRequest($"prompt must be a string or an array of token ids, got {e.ValueKind.ToString().ToLowerInvariant()}", "prompt");
        if (ids.Length == 0) throw ApiException.BadRequest("prompt is empty: it needs at least one token", "prompt");
        if (ids.Length > _options.MaxPromptTokens)
            throw ApiException.TooLarge($"prompt has {ids.Length} tokens; the limit is {_options.MaxPromptTokens} (--max-prompt-tokens)", "prompt");
        return ids;
    }

    public async Task CompleteAsync(HttpContext ctx)
    {
        var request = await JsonBody.ReadAsync<CompletionRequest>(ctx, _options.MaxRequestBytes);
        await RunAsync(ctx, Validate(request), new CompletionFormat(Name));
    }

    /// <summary>POST /v1/chat/completions: the messages through the chat template (<see cref="Template"/>), then as a completion, in OpenAI's chat shapes.</summary>
    public async Task ChatAsync(HttpContext ctx)
    {
        var request = await JsonBody.ReadAsync<ChatCompletionRequest>(ctx, _options.MaxRequestBytes);
        var (plan, includeUsage) = ValidateChat(request);
        await RunAsync(ctx, plan, new ChatFormat(Name, includeUsage));
    }

    /// <summary>Submits the plan's stream and answers with one JSON body, or server-sent events (<paramref name="format"/> gives the shapes).</summary>
    private async Task RunAsync(HttpContext ctx, Plan plan, IReplyFormat format)
    {
        // Ends the request (and cancels the stream: it leaves the batch) when the client goes, at --timeout, and when the
        // server stops decoding (the end of --drain), whatever the decoding loop is doing.
        var stopping = Scheduler.Stopping;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, stopping);
        cts.CancelAfter(TimeSpan.FromSeconds(_options.RequestTimeoutSeconds));
        var stream = new TextStream(plan.Prompt, plan.Sampling, plan.MaxTokens, plan.StopIds, cts.Token);
        Scheduler.Submit(stream);
        var assembler = Tokenizer is null ? null : new TextAssembler(Tokenizer, plan.Stops);
        string id = format.IdPrefix + Guid.NewGuid().ToString("N")[..24];
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var tokens = new List<long>();
        int count = 0;   // tokens sent so far
        string? finish = null;
        try
        {
            if (!plan.Stream)
            {
                await foreach (var ev in stream.Events.Reader.ReadAllAsync(cts.Token))
                {
                    tokens.Add(ev.Token);
                    count++;
                    finish = ev.FinishReason;
                    if (plan.StopIds?.Contains(ev.Token) == true && format.HidesStopTokens) break;
                    if (assembler is not null)
                    {
                        assembler.Add(ev.Token);
                        if (assembler.Stopped) { finish = "stop"; break; }
                    }
                }
                assembler?.Flush();
                var response = format.Whole(id, created, assembler?.Emitted, tokens, finish ?? "length", new Usage(plan.Prompt.Length, tokens.Count, plan.Prompt.Length + tokens.Count));
                ctx.Response.ContentType = "application/json; charset=utf-8";
                await JsonSerializer.SerializeAsync(ctx.Response.Body, response, JsonBody.Output, ctx.RequestAborted);   // done decoding: the answer goes out whole (see below)
                return;
            }

            ctx.Response.ContentType = "text/event-stream; charset=utf-8";
            ctx.Response.Headers.CacheControl = "no-cache";
            ctx.Response.Headers["X-Accel-Buffering"] = "no";
            await ctx.Response.StartAsync(cts.Token);
            // Writes wait on the client (ctx.RequestAborted), never on cts: Kestrel aborts the connection when a write's token is
            // cancelled mid-flush, and a client reading slowly would lose the error event that says why its stream ended (the
            // drain's end, --timeout). The loop looks at cts between events; Kestrel's minimum response data rate cuts off a
            // client that stops reading.
            if (format.First(id, created) is { } first) await WriteEventAsync(ctx, first, ctx.RequestAborted);
            // a stream keeps no list of its tokens: each goes out as it comes
            await foreach (var ev in stream.Events.Reader.ReadAllAsync(cts.Token))
            {
                cts.Token.ThrowIfCancellationRequested();   // ReadAllAsync hands out queued tokens without looking at cts
                count++;
                finish = ev.FinishReason;
                string? delta = null;
                bool hidden = plan.StopIds?.Contains(ev.Token) == true && format.HidesStopTokens;
                if (hidden) finish = "stop";
                if (assembler is not null)
                {
                    delta = hidden ? "" : assembler.Add(ev.Token);
                    if (assembler.Stopped) finish = "stop";
                    else if (finish is not null) delta += assembler.Flush();
                }
                var usage = finish is null ? null : new Usage(plan.Prompt.Length, count, plan.Prompt.Length + count);
                foreach (var chunk in format.Chunk(id, created, delta, ev.Token, finish, usage)) await WriteEventAsync(ctx, chunk, ctx.RequestAborted);
                if (finish is not null) break;
            }
            ctx.Response.BodyWriter.Write("data: [DONE]\n\n"u8);
            await ctx.Response.BodyWriter.FlushAsync(ctx.RequestAborted);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away: the linked token cancels the stream, the scheduler frees its slot.
        }
        catch (Exception e) when (ctx.Response.HasStarted || e is OperationCanceledException or ApiException)
        {
            // The stream ended early: a JSON error (an error event once streaming) says why.
            var error = e switch
            {
                OperationCanceledException when stopping.IsCancellationRequested => new ApiException(503, "the server is shutting down"),
                OperationCanceledException when cts.IsCancellationRequested => TimedOut(count),
                ApiException api => api,   // the model's logits could not be sampled (500)
                _ => new ApiException(503, e.Message),
            };
            if (!ctx.Response.HasStarted) throw error;
            await WriteErrorEventAsync(ctx, error.Status, error.Message);
        }
        finally
        {
            cts.Cancel();   // a finished stream is already gone; a stopped or abandoned one leaves the batch
        }
    }

    private ApiException TimedOut(int count)
    {
        _metrics.Timeout();
        return new ApiException(408, $"the completion took longer than the server's limit of {_options.RequestTimeoutSeconds:G} s (--timeout) and was cancelled after {count} tokens");
    }

    /// <summary>One server-sent event: "data: {json}\n\n" serialized straight into the response pipe and flushed once
    /// (one chunk, one send per token; three writes each flushing cost 3–4 sends per token per stream).</summary>
    private static async Task WriteEventAsync(HttpContext ctx, object chunk, CancellationToken ct)
    {
        var pipe = ctx.Response.BodyWriter;
        pipe.Write("data: "u8);
        using (var json = new Utf8JsonWriter(pipe, new JsonWriterOptions { Encoder = JsonBody.Output.Encoder, SkipValidation = true })) JsonSerializer.Serialize(json, chunk, JsonBody.Output);
        pipe.Write("\n\n"u8);
        await pipe.FlushAsync(ct);
    }

    private static async Task WriteErrorEventAsync(HttpContext ctx, int status, string message)
    {
        try
        {
            var bytes = Encoding.UTF8.GetBytes("data: " + Encoding.UTF8.GetString(ApiErrors.Json(status, message)) + "\n\n");
            await ctx.Response.Body.WriteAsync(bytes);
            await ctx.Response.Body.FlushAsync();
        }
        catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { }
    }

    public async Task TokenizeAsync(HttpContext ctx)
    {
        var tok = Tokenizer ?? throw ApiException.NotFound("this model directory has no tokenizer (char_tokenizer.json): prompts are token ids");
        var r = await JsonBody.ReadAsync<TokenizeRequest>(ctx, _options.MaxRequestBytes);
        if (r.Content is null) throw ApiException.BadRequest("content is required: the text to tokenize", "content");
        int[] ids;
        try { ids = tok.Encode(r.Content); }
        catch (ArgumentException e) { throw ApiException.BadRequest("content: " + e.Message, "content"); }
        await ctx.Response.WriteAsJsonAsync(new Dictionary<string, object> { ["tokens"] = ids }, JsonBody.Output);
    }

    public async Task DetokenizeAsync(HttpContext ctx)
    {
        var tok = Tokenizer ?? throw ApiException.NotFound("this model directory has no tokenizer (char_tokenizer.json): completions answer with token ids");
        var r = await JsonBody.ReadAsync<DetokenizeRequest>(ctx, _options.MaxRequestBytes);
        if (r.Tokens is null) throw ApiException.BadRequest("tokens is required: an array of token ids", "tokens");
        for (int i = 0; i < r.Tokens.Length; i++)
            if (r.Tokens[i] < 0 || r.Tokens[i] >= tok.VocabSize)
                throw ApiException.BadRequest($"tokens[{i}] = {r.Tokens[i]} is outside the tokenizer's vocabulary [0, {tok.VocabSize})", "tokens");
        await ctx.Response.WriteAsJsonAsync(new Dictionary<string, object> { ["content"] = tok.Decode(r.Tokens.Select(t => (int)t).ToArray()) }, JsonBody.Output);
    }

    /// <summary>The JSON shapes of an endpoint: the whole reply, and the server-sent events of a stream.</summary>
    private interface IReplyFormat
    {
        string IdPrefix { get; }
        /// <summary>A stop token id ends the reply without being shown (chat's eos_token); completions show it.</summary>
        bool HidesStopTokens { get; }
        object Whole(string id, long created, string? text, List<long> tokens, string finish, Usage usage);
        object? First(string id, long created);
        IEnumerable<object> Chunk(string id, long created, string? delta, long token, string? finish, Usage? usage);
    }

    /// <summary>"text_completion": text and token_ids per choice; the last event carries the usage.</summary>
    private sealed record CompletionFormat(string Model) : IReplyFormat
    {
        public string IdPrefix => "cmpl-";
        public bool HidesStopTokens => false;
        public object Whole(string id, long created, string? text, List<long> tokens, string finish, Usage usage) =>
            new CompletionResponse(id, "text_completion", created, Model, [new CompletionChoice(0, text, tokens, finish)], usage);
        public object? First(string id, long created) => null;
        public IEnumerable<object> Chunk(string id, long created, string? delta, long token, string? finish, Usage? usage) =>
            [new CompletionResponse(id, "text_completion", created, Model, [new CompletionChoice(0, delta, [token], finish)], usage)];
    }

    /// <summary>OpenAI's "chat.completion" and "chat.completion.chunk": a first chunk with the role, one per text delta,
    /// one with finish_reason, then (stream_options.include_usage) one with empty choices and the usage.</summary>
    private sealed record ChatFormat(string Model, bool IncludeUsage) : IReplyFormat
    {
        public string IdPrefix => "chatcmpl-";
        public bool HidesStopTokens => true;
        public object Whole(string id, long created, string? text, List<long> tokens, string finish, Usage usage) =>
            new ChatCompletionResponse(id, "chat.completion", created, Model, [new ChatChoice(0, new ChatMessageOut("assistant", text ?? ""), finish)], usage);
        public object? First(string id, long created) =>
            new ChatCompletionResponse(id, "chat.completion.chunk", created, Model, [new ChatChunkChoice(0, new ChatMessageOut("assistant", ""), null)], null);
        public IEnumerable<object> Chunk(string id, long created, string? delta, long token, string? finish, Usage? usage)
        {
            if (!string.IsNullOrEmpty(delta) || finish is not null)
                yield return new ChatCompletionResponse(id, "chat.completion.chunk", created, Model, [new ChatChunkChoice(0, new ChatMessageOut(null, string.IsNullOrEmpty(delta) ? null : delta), finish)], null);
            if (finish is not null && IncludeUsage) yield return new ChatCompletionResponse(id, "chat.completion.chunk", created, Model, [], usage);
        }
    }

    public void Dispose()
    {
        Scheduler.Dispose();
        if (!Scheduler.Running) Model.Dispose();   // a decoding thread stuck in a step keeps using it: left to the process's exit
    }
}
