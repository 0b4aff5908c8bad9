using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>Sizes of GRU4Rec, RecBole's names in comments; the defaults are RecBole's GRU4Rec.yaml.</summary>
public sealed record GRU4RecConfig
{
    public int NItems { get; init; }                  // n_items, including the padding item 0
    public int EmbeddingSize { get; init; } = 64;     // embedding_size
    public int HiddenSize { get; init; } = 128;       // hidden_size
    public int NumLayers { get; init; } = 1;          // num_layers
    public float Dropout { get; init; } = 0.3f;       // dropout_prob (on the item embeddings)
}

/// <summary>
/// GRU4Rec as RecBole defines it (recbole/model/sequential_recommender/gru4rec.py):
/// <code>
/// e = emb_dropout(item_embedding[item_seq])                       [b, L, embedding_size]
/// g = gru_layers(e)        nn.GRU(embedding_size, hidden_size, num_layers, bias=False, batch_first=True)
/// seq_output = dense(g)[b, item_seq_len[b] − 1]                    dense: hidden_size → embedding_size
/// scores = seq_output · item_embeddingᵀ
/// </code>
/// Parameter names: <c>item_embedding.weight</c>, <c>gru_layers.weight_ih_l{k}</c>, <c>gru_layers.weight_hh_l{k}</c>,
/// <c>dense.weight</c>, <c>dense.bias</c>. Init as RecBole: item_embedding xavier_normal_ (all rows, the padding row
/// included), weight_ih_l0 and weight_hh_l0 xavier_uniform_, deeper GRU layers and dense keep PyTorch's defaults.
/// Right padding is harmless: the GRU is causal, so the state at len − 1 never sees the padded steps.
/// </summary>
public sealed class GRU4Rec : Module, ISequentialRecommender
{

    public GRU4Rec(GRU4RecConfig config, int seed = 0)
    {
        if (config.NItems < 2) throw new ArgumentOutOfRangeException(nameof(config), $"GRU4Rec: n_items must be at least 2 (padding + one item), got {config.NItems}");
        Config = config;
        var rng = new Random(seed);
        int n = config.NItems, e = config.EmbeddingSize, h = config.HiddenSize;
        // xavier_normal_: std = √(2 / (fan_in + fan_out)), fan_in = embedding_size, fan_out = n_items.
        ItemEmbedding = Child("item_embedding", new Nn.Embedding(n, e, rng, paddingIndex: 0, std: Math.Sqrt(2.0 / (n + e))));
        using (var w = Init.Normal(rng, ItemEmbedding.Weight.Shape, 0, Math.Sqrt(2.0 / (n + e))))
            w.AsSpan<float>().CopyTo(ItemEmbedding.Weight.AsSpan<float>());
        GruLayers = Child("gru_layers", new Nn.Gru(e, h, config.NumLayers, bias: false, rng));
        // xavier_uniform_ on layer 0: bound = √(6 / (fan_in + fan_out)), weight [3H, in] → fan_in = in, fan_out = 3H.
        foreach (var w in new[] { GruLayers.WeightIh(0), GruLayers.WeightHh(0) })
        {
            double bound = Math.Sqrt(6.0 / (w.Shape[0] + w.Shape[1]));
            using var u = Init.Uniform(rng, w.Shape, -bound, bound);
            u.AsSpan<float>().CopyTo(w.AsSpan<float>());
        }
        Dense = Child("dense", new Nn.Linear(h, e, true, rng));
    }

    /// <summary>The parameters <see cref="GRU4Rec(GRU4RecConfig, int)"/> creates, without creating them.</summary>
    public static ParameterShapes Shapes(GRU4RecConfig c)
    {
        int e = c.EmbeddingSize, h = c.HiddenSize;
        var s = new ParameterShapes().Embedding("item_embedding", c.NItems, e);
        for (int k = 0; k < c.NumLayers; k++) s.Add($"gru_layers.weight_ih_l{k}", 3 * h, k == 0 ? e : h).Add($"gru_layers.weight_hh_l{k}", 3 * h, h);
        return s.Linear("dense", h, e);
    }

    public GRU4RecConfig Config { get; }
    public int NItems => Config.NItems;
    public Nn.Embedding ItemEmbedding { get; }
    public Nn.Gru GruLayers { get; }
    public Nn.Linear Dense { get; }

    public Tensor SequenceOutput(Tensor itemSeq)
    {
        if (itemSeq.DType != DType.I64 || itemSeq.Rank != 2)
            throw new ArgumentException($"GRU4Rec: item_seq must be [batch, L] I64, got {itemSeq.DType} {itemSeq.Shape}");
        var e = F.Dropout(ItemEmbedding.Forward(itemSeq), Config.Dropout, DropoutSeed++, Training);
        var seed = DropoutSeed;
        var output = Dense.Forward(GruLayers.Forward(e, ref seed));
        DropoutSeed = seed;
        return output;
    }

    public Tensor Forward(Tensor itemSeq, Tensor itemSeqLen) =>
        SequentialRecommenderLoss.GatherLast(SequenceOutput(itemSeq), itemSeqLen, "GRU4Rec");

    public Tensor Scores(Tensor seqOutput) => F.Linear(seqOutput, ItemEmbedding.Weight);

    public Tensor Loss(Tensor itemSeq, Tensor itemSeqLen, Tensor posItems) => this.NextItem(itemSeq, itemSeqLen, posItems);
}
