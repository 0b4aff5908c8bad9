using System.Runtime.CompilerServices;
using Mamba4.Inference;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Text;
using Microsoft.Extensions.AI;

namespace Mamba4.AI;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over a local Mamba language model: the conversation goes
/// through the model directory's chat template (<see cref="ChatTemplate"/>; ChatOptions.Instructions becomes a leading
/// system message), is tokenized, and the reply is generated on the recurrent path (<see cref="Generator.Stream"/>).
/// <see cref="ChatOptions"/>: Temperature (default 1; 0 = greedy), TopP, TopK, MaxOutputTokens (default
/// <see cref="DefaultMaxOutputTokens"/>), StopSequences (the text ends before the first one, as OpenAI's stop), Seed
/// (an int; without one each call draws its own). Generation ends at the template's eos_token. Usage counts prompt
/// and generated tokens. One generation runs at a time per client (calls wait their turn); cancellation is checked
/// between tokens. Non-text content, tools and response formats are ignored.
/// </summary>
public sealed class MambaChatClient : IChatClient
{
    public const int DefaultMaxOutputTokens = 256;
    public const int MaxStopSequences = 16;
    private readonly SemaphoreSlim _turn = new(1, 1);
    private readonly bool _ownsModel;
    private readonly long? _eosId;

    /// <param name="ownsModel">Dispose the model with the client.</param>
    public MambaChatClient(MambaLM model, ITokenizer tokenizer, ChatTemplate? template = null, string modelId = "mamba4", bool ownsModel = false)
    {
        Model = model;
        Tokenizer = tokenizer;
        Template = template ?? ChatTemplate.Default;
        _ownsModel = ownsModel;
        _eosId = Template.EosToken is { } eos ? tokenizer.TokenToId(eos) : null;
        Metadata = new ChatClientMetadata("mamba4", null, modelId);
    }

    /// <summary>A Mamba model directory with its tokenizer.json (and tokenizer_config.json's chat_template, if any); the client owns the model.</summary>
    public static MambaChatClient FromDirectory(string dir, ModelLoadOptions? options = null)
    {
        var tokenizer = LanguageModelFiles.LoadTokenizer(dir) ?? throw new FileNotFoundException($"{dir}: no tokenizer.json: a chat client needs a tokenizer", Path.Combine(dir, "tokenizer.json"));
        var template = ChatTemplate.ForModelDirectory(dir);
        var model = MambaLM.FromPretrained(dir, options);
        model.Eval();
        return new MambaChatClient(model, tokenizer, template, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))), ownsModel: true);
    }

    public MambaLM Model { get; }
    public ITokenizer Tokenizer { get; }
    public ChatTemplate Template { get; }
    public ChatClientMetadata Metadata { get; }

    /// <summary>The prompt ids of a conversation: Instructions as a system message first, then the template's rendering, tokenized.</summary>
    public long[] PromptIds(IEnumerable<ChatMessage> messages, ChatOptions? options = null)
    {
        var turns = new List<ChatTurn>();
        if (options?.Instructions is { Length: > 0 } instructions) turns.Add(new ChatTurn("system", instructions));
        turns.AddRange(messages.Select(m => new ChatTurn(m.Role.Value, m.Text)));
        return Tokenizer.Encode(Template.Render(turns)).Select(i => (long)i).ToArray();
    }

    /// <summary>The sampler's options for <paramref name="options"/> (Temperature 0 = greedy); ArgumentException naming the option outside its range.</summary>
    public static SamplingOptions Sampling(ChatOptions? options)
    {
        long seed = options?.Seed ?? Random.Shared.Next();
        if (seed is < int.MinValue or > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(options), $"ChatOptions.Seed must fit in 32 bits, got {seed}");
        var sampling = new SamplingOptions
        {
            Temperature = options?.Temperature ?? 1f, TopP = options?.TopP ?? 1f, TopK = options?.TopK ?? 0, Seed = (int)seed,
        };
        sampling.Validate();
        return sampling;
    }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        await GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prompt = PromptIds(messages, options);
        if (prompt.Length == 0) throw new ArgumentException("the conversation renders to an empty prompt: give at least one message", nameof(messages));
        var sampling = Sampling(options) with { EosTokenId = _eosId };
        int maxTokens = options?.MaxOutputTokens ?? DefaultMaxOutputTokens;
        if (maxTokens < 1) throw new ArgumentOutOfRangeException(nameof(options), $"ChatOptions.MaxOutputTokens must be ≥ 1, got {maxTokens}");
        var stops = (options?.StopSequences ?? []).ToArray();
        if (stops.Length > MaxStopSequences || stops.Any(s => string.IsNullOrEmpty(s)))
            throw new ArgumentException($"ChatOptions.StopSequences: at most {MaxStopSequences} non-empty strings", nameof(options));

        string id = "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
        var created = DateTimeOffset.UtcNow;
        ChatResponseUpdate Update(IList<AIContent> contents, ChatFinishReason? finish = null) =>
            new(ChatRole.Assistant, contents) { ResponseId = id, MessageId = id, ModelId = Metadata.DefaultModelId, CreatedAt = created, FinishReason = finish };

        await _turn.WaitAsync(cancellationToken);
        try
        {
            var assembler = new TextAssembler(Tokenizer, stops);
            int generated = 0;
            var finish = ChatFinishReason.Length;
            foreach (var token in Generator.Stream(Model, prompt, maxTokens, sampling))
            {
                cancellationToken.ThrowIfCancellationRequested();
                generated++;
                if (token == _eosId) { finish = ChatFinishReason.Stop; break; }
                var delta = assembler.Add(token);
                if (delta.Length > 0) yield return Update([new TextContent(delta)]);
                if (assembler.Stopped) { finish = ChatFinishReason.Stop; break; }
            }
            var rest = assembler.Flush();
            var usage = new UsageContent(new UsageDetails { InputTokenCount = prompt.Length, OutputTokenCount = generated, TotalTokenCount = prompt.Length + generated });
            yield return Update(rest.Length > 0 ? [new TextContent(rest), usage] : [usage], finish);
        }
        finally { _turn.Release(); }
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? Metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType == typeof(MambaLM) ? Model
        : null;

    public void Dispose()
    {
        if (_ownsModel) Model.Dispose();
        _turn.Dispose();
    }
}
