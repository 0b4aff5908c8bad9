using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mamba4.Server.Text;

/// <summary>The fields /v1/completions and /v1/chat/completions share: model, sampling, stop, stream, n, user.</summary>
public abstract class SamplingRequest
{
    [JsonPropertyName("model")] public string? Model { get; set; }
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; set; }
    [JsonPropertyName("temperature")] public double? Temperature { get; set; }
    [JsonPropertyName("top_p")] public double? TopP { get; set; }
    [JsonPropertyName("top_k")] public int? TopK { get; set; }
    [JsonPropertyName("repetition_penalty")] public double? RepetitionPenalty { get; set; }
    [JsonPropertyName("seed")] public int? Seed { get; set; }
    /// <summary>A string or an array of up to 4 strings.</summary>
    [JsonPropertyName("stop")] public JsonElement? Stop { get; set; }
    [JsonPropertyName("stream")] public bool? Stream { get; set; }
    [JsonPropertyName("n")] public int? N { get; set; }
    [JsonPropertyName("user")] public string? User { get; set; }
}

/// <summary>POST /v1/completions — the OpenAI completions body (plus llama.cpp's top_k and vLLM's stop_token_ids).</summary>
public sealed class CompletionRequest : SamplingRequest
{
    /// <summary>A string (needs a tokenizer) or an array of token ids.</summary>
    [JsonPropertyName("prompt")] public JsonElement? Prompt { get; set; }
    [JsonPropertyName("stop_token_ids")] public long[]? StopTokenIds { get; set; }
}

/// <summary>POST /tokenize (llama.cpp shape).</summary>
public sealed class TokenizeRequest
{
    [JsonPropertyName("content")] public string? Content { get; set; }
}

/// <summary>POST /detokenize (llama.cpp shape).</summary>
public sealed class DetokenizeRequest
{
    [JsonPropertyName("tokens")] public long[]? Tokens { get; set; }
}

public sealed record CompletionChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("text")] string? Text,
    [property: JsonPropertyName("token_ids")] IReadOnlyList<long> TokenIds,
    [property: JsonPropertyName("finish_reason"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

public sealed record Usage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

public sealed record CompletionResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<CompletionChoice> Choices,
    [property: JsonPropertyName("usage")] Usage? Usage);

/// <summary>POST /v1/chat/completions — OpenAI's chat body (plus top_k and repetition_penalty). messages and
/// stream_options are read field by field (<see cref="TextService"/>), so errors name e.g. messages[2].content.</summary>
public sealed class ChatCompletionRequest : SamplingRequest
{
    /// <summary>[{"role": "user", "content": "text" or [{"type": "text", "text": "…"}]}, …]</summary>
    [JsonPropertyName("messages")] public JsonElement? Messages { get; set; }
    [JsonPropertyName("max_completion_tokens")] public int? MaxCompletionTokens { get; set; }
    /// <summary>{"include_usage": true}: one more chunk before [DONE], with empty choices and the usage.</summary>
    [JsonPropertyName("stream_options")] public JsonElement? StreamOptions { get; set; }
}

public sealed record ChatMessageOut(
    [property: JsonPropertyName("role")] string? Role,
    [property: JsonPropertyName("content")] string? Content);

public sealed record ChatChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("message")] ChatMessageOut Message,
    [property: JsonPropertyName("finish_reason")] string FinishReason);

public sealed record ChatChunkChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("delta")] ChatMessageOut Delta,
    [property: JsonPropertyName("finish_reason"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

/// <summary>"chat.completion" (choices of <see cref="ChatChoice"/>) or "chat.completion.chunk" (choices of <see cref="ChatChunkChoice"/>).</summary>
public sealed record ChatCompletionResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<object> Choices,
    [property: JsonPropertyName("usage")] Usage? Usage);
