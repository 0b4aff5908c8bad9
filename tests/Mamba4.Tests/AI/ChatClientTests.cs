using Mamba4.AI;
using Mamba4.Inference;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Mamba4.Tests.AI;

/// <summary>
/// <see cref="MambaChatClient"/> and <see cref="MambaEmbeddingGenerator"/> over transformers' hf-mamba fixture (vocabulary
/// 96), read through a character tokenizer whose id i is one character, so text and the reference's ids map one to one.
/// </summary>
public class ChatClientTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    /// <summary>Id i ↔ one character: ' '..'~' for 0..94, '\n' for 95.</summary>
    internal static readonly CharTokenizer Chars = new(Enumerable.Range(0, 96).Select(i => i < 95 ? ((char)(32 + i)).ToString() : "\n"));
    /// <summary>The prompt is the first message's text as it is.</summary>
    private static readonly ChatTemplate Verbatim = ChatTemplate.Parse("{{ messages[0].content }}");

    private static (string Prompt, string Reply) Reference()
    {
        using var reference = SafetensorsFile.Open(Path.Combine(Fixtures.Path_("hf-mamba"), "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var output = reference.Get("generate.output").ToInt64Array();
        return (Chars.Decode(prompt), Chars.Decode(output.AsSpan(prompt.Length)));
    }

    private static MambaChatClient Client(ChatTemplate? template = null) =>
        new(MambaLM.FromPretrained(Fixtures.Path_("hf-mamba")), Chars, template ?? Verbatim, ownsModel: true);

    [Fact]
    public async Task GreedyReplyEqualsTransformersGenerateAndCountsUsage()
    {
        var (prompt, reply) = Reference();
        using var client = Client();
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)], new ChatOptions { Temperature = 0, MaxOutputTokens = reply.Length }, Ct);
        Assert.Equal(reply, response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(ChatRole.Assistant, response.Messages.Single().Role);
        Assert.Equal((prompt.Length, reply.Length, prompt.Length + reply.Length),
            (response.Usage!.InputTokenCount, response.Usage.OutputTokenCount, response.Usage.TotalTokenCount));
    }

    [Fact]
    public async Task ASeedMakesSamplingRepeatableAndItEqualsTheGeneratorWithTheSameOptions()
    {
        var (prompt, _) = Reference();
        using var client = Client();
        var options = new ChatOptions { Temperature = 0.8f, TopP = 0.9f, TopK = 20, Seed = 7, MaxOutputTokens = 30 };
        var first = await client.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)], options, Ct);
        var second = await client.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)], options.Clone(), Ct);
        Assert.Equal(first.Text, second.Text);
        var sampling = new SamplingOptions { Temperature = 0.8f, TopP = 0.9f, TopK = 20, Seed = 7 };
        var ids = Generator.Stream(client.Model, Chars.Encode(prompt).Select(i => (long)i).ToArray(), 30, sampling).ToArray();
        Assert.Equal(Chars.Decode(ids), first.Text);
        var other = await client.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)], new ChatOptions { Temperature = 0.8f, TopP = 0.9f, TopK = 20, Seed = 8, MaxOutputTokens = 30 }, Ct);
        Assert.NotEqual(first.Text, other.Text);
    }

    [Fact]
    public async Task AStopSequenceEndsTheReplyBeforeItsFirstOccurrence()
    {
        var (prompt, reply) = Reference();
        var stop = reply.Substring(5, 2);
        int at = reply.IndexOf(stop, StringComparison.Ordinal);
        using var client = Client();
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 100, StopSequences = ["never there", stop] }, Ct);
        Assert.Equal(reply[..at], response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal(at + stop.Length, response.Usage!.OutputTokenCount);   // one character per token, up to the stop's end
    }

    [Fact]
    public async Task StreamingUpdatesAddUpToTheNonStreamingResponse()
    {
        var (prompt, _) = Reference();
        using var client = Client();
        var options = new ChatOptions { Temperature = 0.7f, Seed = 3, MaxOutputTokens = 25, StopSequences = ["zz"] };
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, prompt)], options, Ct)) updates.Add(u);
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)], options.Clone(), Ct);
        Assert.True(updates.Count > 2, $"{updates.Count} updates: not streamed");
        Assert.Equal(response.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(response.FinishReason, updates[^1].FinishReason);
        var usage = updates.SelectMany(u => u.Contents).OfType<UsageContent>().Single().Details;
        Assert.Equal(response.Usage!.OutputTokenCount, usage.OutputTokenCount);
        Assert.All(updates, u => Assert.Equal(updates[0].ResponseId, u.ResponseId));
    }

    [Fact]
    public async Task TheTemplateRendersTheConversationAndInstructionsBecomeASystemMessage()
    {
        var (_, reply) = Reference();
        // The reference prompt is three characters: split over a system instruction and two messages by a template.
        var (prompt, _) = Reference();
        var template = ChatTemplate.Parse("{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}{% else %}{{ m.content | trim }}{% endif %}{% endfor %}");
        using var client = Client(template);
        var response = await client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, "  " + prompt[1..2] + " "), new ChatMessage(ChatRole.Assistant, prompt[2..])],
            new ChatOptions { Instructions = prompt[..1], Temperature = 0, MaxOutputTokens = reply.Length }, Ct);
        Assert.Equal(reply, response.Text);
    }

    /// <summary>The client in Microsoft.Extensions.AI's pipeline: options set by a middleware, a custom middleware, and the distributed cache.</summary>
    [Fact]
    public async Task ComposesWithChatClientBuilderMiddlewareAndCaching()
    {
        var (prompt, reply) = Reference();
        using var inner = Client();
        int innerCalls = 0;
        using var pipeline = new ChatClientBuilder(inner)
            .UseDistributedCache(new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions())))
            .ConfigureOptions(o => { o.Temperature = 0; o.MaxOutputTokens = reply.Length; })
            .Use(async (messages, options, next, ct) => { innerCalls++; await next(messages, options, ct); })
            .Build();
        var first = await pipeline.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)], cancellationToken: Ct);
        var second = await pipeline.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)], cancellationToken: Ct);
        Assert.Equal(reply, first.Text);
        Assert.Equal(reply, second.Text);
        Assert.Equal(1, innerCalls);   // the second came from the cache
        Assert.Same(inner, pipeline.GetService<MambaChatClient>());
    }

    [Theory]
    [InlineData(20f, null, "temperature")]
    [InlineData(null, 0, "MaxOutputTokens")]
    public async Task OptionsOutOfRangeAreRefusedNamingTheOption(float? temperature, int? maxTokens, string named)
    {
        using var client = Client();
        var e = await Assert.ThrowsAnyAsync<ArgumentException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], new ChatOptions { Temperature = temperature, MaxOutputTokens = maxTokens }, Ct));
        Assert.Contains(named, e.Message);
    }

    [Theory]
    [InlineData(EmbeddingPooling.Last)]
    [InlineData(EmbeddingPooling.Mean)]
    public async Task EmbeddingsAreTheFinalHiddenStatePooledAsTransformersComputesIt(EmbeddingPooling pooling)
    {
        using var reference = SafetensorsFile.Open(Path.Combine(Fixtures.Path_("hf-mamba"), "reference.safetensors"));
        var ids = reference.Get("input_ids").ToInt64Array();   // [2, 13]
        var hidden = reference.Get("hidden_states.2").ToDoubleArray();   // [2, 13, 32]: norm_f of the last block
        const int L = 13, D = 32;
        var texts = new[] { Chars.Decode(ids.AsSpan(0, L)), Chars.Decode(ids.AsSpan(L, L)) };
        using var generator = new MambaEmbeddingGenerator(MambaLM.FromPretrained(Fixtures.Path_("hf-mamba")), Chars, pooling, ownsModel: true);
        var embeddings = await generator.GenerateAsync(texts, cancellationToken: Ct);
        Assert.Equal(2 * L, embeddings.Usage!.InputTokenCount);
        for (int b = 0; b < 2; b++)
        {
            var expected = new double[D];
            for (int j = 0; j < D; j++)
                if (pooling == EmbeddingPooling.Last) expected[j] = hidden[(b * L + L - 1) * D + j];
                else { for (int t = 0; t < L; t++) expected[j] += hidden[(b * L + t) * D + j]; expected[j] /= L; }
            var actual = embeddings[b].Vector.ToArray();
            Assert.Equal(D, actual.Length);
            for (int j = 0; j < D; j++) Assert.True(Math.Abs(expected[j] - actual[j]) <= 1e-5 + 1e-5 * Math.Abs(expected[j]), $"text {b}, [{j}]: {actual[j]} vs {expected[j]}");
        }
    }

    [Fact]
    public async Task AnEmptyTextIsRefusedNamingItsIndex()
    {
        using var generator = new MambaEmbeddingGenerator(MambaLM.FromPretrained(Fixtures.Path_("hf-mamba")), Chars, ownsModel: true);
        var e = await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateAsync(["ok", ""], cancellationToken: Ct));
        Assert.Contains("text 1 is empty", e.Message);
    }
}
