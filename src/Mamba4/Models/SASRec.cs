using Mamba4.Backends;
using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>Sizes of SASRec, RecBole's names in comments; the defaults are RecBole's SASRec.yaml.</summary>
public sealed record SASRecConfig
{
    public int NItems { get; init; }                      // n_items, including the padding item 0
    public int MaxSeqLength { get; init; } = 50;          // MAX_ITEM_LIST_LENGTH (rows of position_embedding)
    public int HiddenSize { get; init; } = 64;            // hidden_size
    public int NLayers { get; init; } = 2;                // n_layers
    public int NHeads { get; init; } = 2;                 // n_heads
    public int InnerSize { get; init; } = 256;            // inner_size
    public float HiddenDropout { get; init; } = 0.5f;     // hidden_dropout_prob
    public float AttnDropout { get; init; } = 0.5f;       // attn_dropout_prob (on the attention probabilities)
    public float LayerNormEps { get; init; } = 1e-12f;    // layer_norm_eps
    public double InitializerRange { get; init; } = 0.02; // initializer_range
    /// <summary>Materialise the [L × L] attention scores and probabilities as RecBole does (F.AttentionMaterialized)
    /// instead of the fused op; same results, L² memory. A run setting (`--attention naive`), not saved in config.json.</summary>
    public bool NaiveAttention { get; init; }
}

/// <summary>
/// SASRec exactly as RecBole defines it (recbole/model/sequential_recommender/sasrec.py with layers.TransformerEncoder):
/// <code>
/// h = dropout(LayerNorm(item_embedding[item_seq] + position_embedding[0..L−1]))
/// mask[b, i, j] = 0 if j ≤ i and item_seq[b, j] ≠ 0 else −10000           (added to the scores)
/// each layer:  a = LayerNorm(dropout(dense(attn_dropout(softmax(q kᵀ/√d_head + mask)) v)) + h)
///              h = LayerNorm(dropout(dense_2(gelu(dense_1(a)))) + a)          (GELU in erf form)
/// seq_output = h[b, item_seq_len[b] − 1];   scores = seq_output · item_embeddingᵀ
/// </code>
/// Init as RecBole's _init_weights: every Linear and Embedding weight ~ N(0, initializer_range) — the padding
/// row of item_embedding included (RecBole re-draws it after nn.Embedding zeroed it) — Linear biases 0,
/// LayerNorm weight 1 and bias 0. The padding row still gets no gradient from the lookup (padding_idx = 0).
/// </summary>
public sealed class SASRec : Module, ISequentialRecommender
{

    public SASRec(SASRecConfig config, int seed = 0)
    {
        if (config.NItems < 2) throw new ArgumentOutOfRangeException(nameof(config), $"SASRec: n_items must be at least 2 (padding + one item), got {config.NItems}");
        if (config.HiddenSize % config.NHeads != 0)
            throw new ArgumentException($"SASRec: hidden_size {config.HiddenSize} is not a multiple of n_heads {config.NHeads}");
        Config = config;
        var rng = new Random(seed);
        ItemEmbedding = Child("item_embedding", new Nn.Embedding(config.NItems, config.HiddenSize, rng, paddingIndex: 0, std: config.InitializerRange));
        PositionEmbedding = Child("position_embedding", new Nn.Embedding(config.MaxSeqLength, config.HiddenSize, rng, std: config.InitializerRange));
        Encoder = Child("trm_encoder", new TransformerEncoder(config, rng));
        Norm = Child("LayerNorm", new Nn.LayerNorm(config.HiddenSize, config.LayerNormEps));
        // RecBole draws the padding row too (normal_ over the whole weight after nn.Embedding zeroed it).
        using (var w = Init.Normal(rng, ItemEmbedding.Weight.Shape, 0, config.InitializerRange))
            w.AsSpan<float>().CopyTo(ItemEmbedding.Weight.AsSpan<float>());
    }

    /// <summary>The parameters <see cref="SASRec(SASRecConfig, int)"/> creates, without creating them.</summary>
    public static ParameterShapes Shapes(SASRecConfig c)
    {
        int d = c.HiddenSize;
        var s = new ParameterShapes().Embedding("item_embedding", c.NItems, d).Embedding("position_embedding", c.MaxSeqLength, d);
        for (int i = 0; i < c.NLayers; i++)
        {
            string attention = $"trm_encoder.layer.{i}.multi_head_attention", ffn = $"trm_encoder.layer.{i}.feed_forward";
            s.Linear(attention + ".query", d, d).Linear(attention + ".key", d, d).Linear(attention + ".value", d, d).Linear(attention + ".dense", d, d)
             .LayerNorm(attention + ".LayerNorm", d).Linear(ffn + ".dense_1", d, c.InnerSize).Linear(ffn + ".dense_2", c.InnerSize, d).LayerNorm(ffn + ".LayerNorm", d);
        }
        return s.LayerNorm("LayerNorm", d);
    }

    public SASRecConfig Config { get; }
    public int NItems => Config.NItems;
    public Nn.Embedding ItemEmbedding { get; }
    public Nn.Embedding PositionEmbedding { get; }
    public TransformerEncoder Encoder { get; }
    public Nn.LayerNorm Norm { get; }

    public Tensor SequenceOutput(Tensor itemSeq) =>
        Encode(this, "SASRec", itemSeq, Config.MaxSeqLength, Config.HiddenDropout, ItemEmbedding, PositionEmbedding, Norm, Encoder);

    /// <summary>
    /// RecBole's transformer recommenders' trunk (SASRec, BERT4Rec): item + learned position embeddings, LayerNorm,
    /// dropout, then the encoder over itemSeq [b, L] I64 (0 = padding) → [b, L, hidden]; the model's dropout seed advances.
    /// </summary>
    internal static Tensor Encode(Module model, string name, Tensor itemSeq, int maxSeqLength, float hiddenDropout,
        Nn.Embedding items, Nn.Embedding positions, Nn.LayerNorm norm, TransformerEncoder encoder)
    {
        if (itemSeq.DType != DType.I64 || itemSeq.Rank != 2)
            throw new ArgumentException($"{name}: item_seq must be [batch, L] I64, got {itemSeq.DType} {itemSeq.Shape}");
        int b = itemSeq.Shape[0], l = itemSeq.Shape[1];
        if (l > maxSeqLength)
            throw new ArgumentException($"{name}: sequences of length {l} exceed max_seq_length {maxSeqLength} (the rows of position_embedding)");
        var ids = new long[b * l];
        for (int i = 0; i < b; i++)
            for (int t = 0; t < l; t++) ids[i * l + t] = t;
        var emb = F.Add(items.Forward(itemSeq), positions.Forward(Tensor.From(ids, b, l)));
        var h = F.Dropout(norm.Forward(emb), hiddenDropout, model.DropoutSeed++, model.Training);
        var seed = model.DropoutSeed;
        var output = encoder.Forward(h, itemSeq, ref seed);
        model.DropoutSeed = seed;
        return output;
    }

    public Tensor Forward(Tensor itemSeq, Tensor itemSeqLen) =>
        SequentialRecommenderLoss.GatherLast(SequenceOutput(itemSeq), itemSeqLen, "SASRec");

    public Tensor Scores(Tensor seqOutput) => F.Linear(seqOutput, ItemEmbedding.Weight);

    public Tensor Loss(Tensor itemSeq, Tensor itemSeqLen, Tensor posItems) => this.NextItem(itemSeq, itemSeqLen, posItems);
}

/// <summary>RecBole's TransformerEncoder: children <c>layer.0</c>, <c>layer.1</c>, …; causal (SASRec) or bidirectional (BERT4Rec).</summary>
public sealed class TransformerEncoder : Module
{
    public TransformerEncoder(SASRecConfig config, Random rng, bool causal = true)
    {
        Layers = Child("layer", new ModuleList<TransformerLayer>(Enumerable.Range(0, config.NLayers).Select(_ => new TransformerLayer(config, rng, causal))));
    }

    public ModuleList<TransformerLayer> Layers { get; }

    /// <summary>h [b, L, hidden]; itemSeq [b, L] gives the key-padding mask.</summary>
    public Tensor Forward(Tensor h, Tensor itemSeq, ref ulong seed)
    {
        foreach (var layer in Layers.Items) h = layer.Forward(h, itemSeq, ref seed);
        return h;
    }
}

/// <summary>RecBole's TransformerLayer: <c>multi_head_attention</c> then <c>feed_forward</c>, each post-LayerNorm with a residual.</summary>
public sealed class TransformerLayer : Module
{
    public TransformerLayer(SASRecConfig config, Random rng, bool causal = true)
    {
        MultiHeadAttention = Child("multi_head_attention", new MultiHeadAttention(config, rng, causal));
        FeedForward = Child("feed_forward", new PointWiseFeedForward(config, rng));
    }

    public MultiHeadAttention MultiHeadAttention { get; }
    public PointWiseFeedForward FeedForward { get; }

    public Tensor Forward(Tensor h, Tensor itemSeq, ref ulong seed) =>
        FeedForward.Forward(MultiHeadAttention.Forward(h, itemSeq, ref seed), ref seed);
}

/// <summary>
/// RecBole's MultiHeadAttention: out = LayerNorm(dropout(dense(attn_dropout(softmax(q kᵀ/√d + mask)) v)) + h),
/// q, k, v = query(h), key(h), value(h); the heads split the hidden size. The mask is RecBole's get_attention_mask:
/// causal (SASRec) or bidirectional (BERT4Rec: every real key, padding keys −10000).
/// </summary>
public sealed class MultiHeadAttention : Module
{
    public MultiHeadAttention(SASRecConfig config, Random rng, bool causal = true)
    {
        Causal = causal;
        int d = config.HiddenSize;
        Query = Child("query", RecBoleInit.Linear(d, d, rng, config.InitializerRange));
        Key = Child("key", RecBoleInit.Linear(d, d, rng, config.InitializerRange));
        Value = Child("value", RecBoleInit.Linear(d, d, rng, config.InitializerRange));
        Dense = Child("dense", RecBoleInit.Linear(d, d, rng, config.InitializerRange));
        Norm = Child("LayerNorm", new Nn.LayerNorm(d, config.LayerNormEps));
        Heads = config.NHeads;
        Naive = config.NaiveAttention;
        AttnDropout = config.AttnDropout;
        HiddenDropout = config.HiddenDropout;
    }

    public Nn.Linear Query { get; }
    public Nn.Linear Key { get; }
    public Nn.Linear Value { get; }
    public Nn.Linear Dense { get; }
    public Nn.LayerNorm Norm { get; }
    public int Heads { get; }
    public bool Causal { get; }
    /// <summary>F.AttentionMaterialized (RecBole's way, L² memory) instead of the fused F.Attention.</summary>
    public bool Naive { get; }
    public float AttnDropout { get; }
    public float HiddenDropout { get; }

    public Tensor Forward(Tensor h, Tensor itemSeq, ref ulong seed)
    {
        var spec = new AttentionSpec(Heads, Causal, KeyPadding: itemSeq, DropoutP: Training ? AttnDropout : 0f, Seed: seed++);
        var (q, k, v) = (Query.Forward(h), Key.Forward(h), Value.Forward(h));
        var context = Naive ? F.AttentionMaterialized(q, k, v, spec, Training) : F.Attention(q, k, v, spec);
        var o = F.Dropout(Dense.Forward(context), HiddenDropout, seed++, Training);
        return Norm.Forward(F.Add(o, h));
    }
}

/// <summary>RecBole's FeedForward: out = LayerNorm(dropout(dense_2(gelu(dense_1(a)))) + a), GELU in erf form.</summary>
public sealed class PointWiseFeedForward : Module
{
    public PointWiseFeedForward(SASRecConfig config, Random rng)
    {
        Dense1 = Child("dense_1", RecBoleInit.Linear(config.HiddenSize, config.InnerSize, rng, config.InitializerRange));
        Dense2 = Child("dense_2", RecBoleInit.Linear(config.InnerSize, config.HiddenSize, rng, config.InitializerRange));
        Norm = Child("LayerNorm", new Nn.LayerNorm(config.HiddenSize, config.LayerNormEps));
        DropoutP = config.HiddenDropout;
    }

    public Nn.Linear Dense1 { get; }
    public Nn.Linear Dense2 { get; }
    public Nn.LayerNorm Norm { get; }
    public float DropoutP { get; }

    public Tensor Forward(Tensor a, ref ulong seed)
    {
        var f = F.Dropout(Dense2.Forward(F.Gelu(Dense1.Forward(a))), DropoutP, seed++, Training);
        return Norm.Forward(F.Add(f, a));
    }
}

/// <summary>RecBole's _init_weights for Linear layers: weight ~ N(0, std), bias 0.</summary>
internal static class RecBoleInit
{
    public static Nn.Linear Linear(int inFeatures, int outFeatures, Random rng, double std)
    {
        var lin = new Nn.Linear(inFeatures, outFeatures, true, rng);
        using (var w = Init.Normal(rng, lin.Weight.Shape, 0, std)) w.AsSpan<float>().CopyTo(lin.Weight.AsSpan<float>());
        lin.Bias!.AsSpan<float>().Clear();
        return lin;
    }
}
