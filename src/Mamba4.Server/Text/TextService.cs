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

    public TextService(MambaLM model, ITokenizer? tokenizer, string name, ServerOptions options, ServerMetrics metrics)
    {
        Model = model;
        Tokenizer = tokenizer;
        Name = name;
        _options = options;
        _metrics = metrics;
        Scheduler = new BatchScheduler(model, options.MaxStreams, options.MaxQueue, metrics) { StallSeconds = options.StallSeconds };
    }

    public MambaLM Model { get; }
    public ITokenizer? Tokenizer { get; }
    public string Name { get; }
    public BatchScheduler Scheduler { get; }
    private int Vocab => Model.Config.VocabSize;

    private sealed record Plan(long[] Prompt, SamplingOptions Sampling, int MaxTokens, IReadOnlySet<long>? StopIds, string[] Stops, bool Stream);

    /// <summary>Checks every field; each problem is a 400 (or 413 for a prompt over the limit) naming the field. The sampling
    /// fields are checked as the floats the sampler reads (<see cref="SamplingOptions.Problem"/>): a temperature below
    /// 1e-5 (0 included) takes the most likely token; one that is 0 only as a float (1e-50) does too.</summary>
    private Plan Validate(CompletionRequest r)
    {
        if (r.N is int n && n != 1) throw ApiException.BadRequest($"n must be 1 (one completion per request), got {n}", "n");
        int maxTokens = r.MaxTokens ?? Math.Min(16, _options.MaxTokens);
        if (maxTokens < 1 || maxTokens > _options.MaxTokens)
            throw ApiException.BadRequest($"max_tokens must be in [1, {_options.MaxTokens}] (--max-tokens), got {maxTokens}", "max_tokens");
        var sampling = new SamplingOptions
        {
            Temperature = (float)(r.Temperature ?? 1.0), TopK = r.TopK ?? 0, TopP = (float)(r.TopP ?? 1.0),
            RepetitionPenalty = (float)(r.RepetitionPenalty ?? 1.0), Seed = r.Seed ?? Random.Shared.Next(),
        };
        if (sampling.Problem() is { } problem) throw ApiException.BadRequest($"{problem.Field} {problem.Rule}", problem.Field);

        var stops = ParseStops(r.Stop);
        HashSet<long>? stopIds = null;
        if (r.StopTokenIds is { } ids)
        {
            if (ids.Length > 64) throw ApiException.BadRequest($"stop_token_ids holds {ids.Length} ids; at most 64", "stop_token_ids");
            foreach (var t in ids) CheckId(t, "stop_token_ids");
            stopIds = [.. ids];
        }
        var prompt = ParsePrompt(r.Prompt);
        return new Plan(prompt, sampling, maxTokens, stopIds, stops, r.Stream ?? false);
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
        var plan = Validate(request);
        // Ends the request (and cancels the stream: it leaves the batch) when the client goes, at --timeout, and when the
        // server stops decoding (the end of --drain), whatever the decoding loop is doing.
        var stopping = Scheduler.Stopping;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, stopping);
        cts.CancelAfter(TimeSpan.FromSeconds(_options.RequestTimeoutSeconds));
        var stream = new TextStream(plan.Prompt, plan.Sampling, plan.MaxTokens, plan.StopIds, cts.Token);
        Scheduler.Submit(stream);
        var assembler = Tokenizer is null ? null : new TextAssembler(Tokenizer, plan.Stops);
        string id = "cmpl-" + Guid.NewGuid().ToString("N")[..24];
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
                    if (assembler is not null)
                    {
                        assembler.Add(ev.Token);
                        if (assembler.Stopped) { finish = "stop"; break; }
                    }
                }
                assembler?.Flush();
                var response = new CompletionResponse(id, "text_completion", created, Name,
                    [new CompletionChoice(0, assembler?.Emitted, tokens, finish ?? "length")],
                    new Usage(plan.Prompt.Length, tokens.Count, plan.Prompt.Length + tokens.Count));
                ctx.Response.ContentType = "application/json; charset=utf-8";
                await JsonSerializer.SerializeAsync(ctx.Response.Body, response, JsonBody.Output, cts.Token);
                return;
            }

            ctx.Response.ContentType = "text/event-stream; charset=utf-8";
            ctx.Response.Headers.CacheControl = "no-cache";
            ctx.Response.Headers["X-Accel-Buffering"] = "no";
            await ctx.Response.StartAsync(cts.Token);
            // a stream keeps no list of its tokens: each goes out as it comes
            await foreach (var ev in stream.Events.Reader.ReadAllAsync(cts.Token))
            {
                count++;
                finish = ev.FinishReason;
                string? delta = null;
                if (assembler is not null)
                {
                    delta = assembler.Add(ev.Token);
                    if (assembler.Stopped) finish = "stop";
                    else if (finish is not null) delta += assembler.Flush();
                }
                var usage = finish is null ? null : new Usage(plan.Prompt.Length, count, plan.Prompt.Length + count);
                await WriteEventAsync(ctx, new CompletionResponse(id, "text_completion", created, Name, [new CompletionChoice(0, delta, [ev.Token], finish)], usage), cts.Token);
                if (finish is not null) break;
            }
            ctx.Response.BodyWriter.Write("data: [DONE]\n\n"u8);
            await ctx.Response.BodyWriter.FlushAsync(cts.Token);
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
    private static async Task WriteEventAsync(HttpContext ctx, CompletionResponse chunk, CancellationToken ct)
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

    public void Dispose()
    {
        Scheduler.Dispose();
        if (!Scheduler.Running) Model.Dispose();   // a decoding thread stuck in a step keeps using it: left to the process's exit
    }
}
