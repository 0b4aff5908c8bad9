using Mamba4.Autograd;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tensors;
using Mamba4.Text;
using Microsoft.Extensions.AI;

namespace Mamba4.AI;

/// <summary>How a text's per-token hidden states become one vector.</summary>
public enum EmbeddingPooling
{
    /// <summary>The average over the text's tokens of the final hidden state (norm_f's output).</summary>
    Mean,
    /// <summary>The final hidden state at the last token: a recurrent model has read the whole text there.</summary>
    Last,
}

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/> over a local Mamba model: each text is
/// tokenized and run through the model once; its embedding is the final hidden state (what transformers returns as the
/// last of output_hidden_states: norm_f of the last block's output, d_model floats) pooled by <see cref="Pooling"/> —
/// the mean over the tokens (default) or the last token's. Texts are embedded one at a time (no padding), at most
/// <see cref="MaxTokens"/> tokens each (longer is an ArgumentException naming the text's index).
/// </summary>
public sealed class MambaEmbeddingGenerator(MambaLM model, ITokenizer tokenizer, EmbeddingPooling pooling = EmbeddingPooling.Mean,
    string modelId = "mamba4", bool ownsModel = false, int maxTokens = 8192) : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly SemaphoreSlim _turn = new(1, 1);

    /// <summary>A Mamba model directory with its tokenizer.json; the generator owns the model.</summary>
    public static MambaEmbeddingGenerator FromDirectory(string dir, EmbeddingPooling pooling = EmbeddingPooling.Mean, ModelLoadOptions? options = null)
    {
        var tokenizer = LanguageModelFiles.LoadTokenizer(dir) ?? throw new FileNotFoundException($"{dir}: no tokenizer.json: an embedding generator needs a tokenizer", Path.Combine(dir, "tokenizer.json"));
        var model = MambaLM.FromPretrained(dir, options);
        model.Eval();
        return new MambaEmbeddingGenerator(model, tokenizer, pooling, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))), ownsModel: true);
    }

    public MambaLM Model => model;
    public EmbeddingPooling Pooling => pooling;
    public int MaxTokens => maxTokens;
    public EmbeddingGeneratorMetadata Metadata { get; } = new("mamba4", null, modelId, model.Config.DModel);

    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        var texts = values.ToList();
        var result = new GeneratedEmbeddings<Embedding<float>>(texts.Count);
        long tokens = 0;
        await _turn.WaitAsync(cancellationToken);
        try
        {
            for (int i = 0; i < texts.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var ids = tokenizer.Encode(texts[i] ?? throw new ArgumentNullException(nameof(values), $"text {i} is null"));
                if (ids.Length == 0) throw new ArgumentException($"text {i} is empty: it has no token to embed", nameof(values));
                if (ids.Length > maxTokens) throw new ArgumentException($"text {i} has {ids.Length} tokens; at most {maxTokens}", nameof(values));
                tokens += ids.Length;
                result.Add(new Embedding<float>(Embed(ids)) { ModelId = Metadata.DefaultModelId, CreatedAt = DateTimeOffset.UtcNow });
            }
        }
        finally { _turn.Release(); }
        result.Usage = new UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens };
        return result;
    }

    /// <summary>Mean: e_j = (1/L) Σ_t h[t, j]; Last: e_j = h[L−1, j], with h the final hidden state [L, d_model].</summary>
    private float[] Embed(int[] ids)
    {
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        var h = model.Hidden(Tensor.From(ids.Select(i => (long)i).ToArray(), 1, ids.Length)).ToFloatArray();
        int d = model.Config.DModel;
        if (pooling == EmbeddingPooling.Last) return h.AsSpan((ids.Length - 1) * d, d).ToArray();
        var sum = new double[d];
        for (int t = 0; t < ids.Length; t++)
            for (int j = 0; j < d; j++) sum[j] += h[t * d + j];
        return sum.Select(s => (float)(s / ids.Length)).ToArray();
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(EmbeddingGeneratorMetadata) ? Metadata
        : serviceType.IsInstanceOfType(this) ? this
        : null;

    public void Dispose()
    {
        if (ownsModel) model.Dispose();
        _turn.Dispose();
    }
}
