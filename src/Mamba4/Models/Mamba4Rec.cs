using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>Sizes of the Mamba4Rec recommender (RecBole/Mamba4Rec config names in comments).</summary>
public sealed record Mamba4RecConfig
{
    public int NItems { get; init; }               // n_items, including the padding item 0
    public int HiddenSize { get; init; } = 64;     // hidden_size
    public int NumLayers { get; init; } = 1;       // num_layers
    public int DState { get; init; } = 32;         // d_state
    public int DConv { get; init; } = 4;           // d_conv
    public int Expand { get; init; } = 2;          // expand
    public int InnerSize { get; init; } = 256;     // inner_size (FFN), 4·hidden
    public float Dropout { get; init; } = 0.2f;    // dropout_prob
    public float LayerNormEps { get; init; } = 1e-12f;
    public bool Selective { get; init; } = true;
    /// <summary>Residual around each Mamba block; null = the reference's rule (only when num_layers > 1).</summary>
    public bool? Residual { get; init; }
    public bool UsesResidual => Residual ?? NumLayers > 1;
    /// <summary>The layers' mixer: Mamba-1 (the reference's) or Mamba-2's SSD with heads of <see cref="HeadDim"/> (null = <see cref="MambaConfig.DefaultHeadDim"/>).</summary>
    public MixerKind MixerKind { get; init; }
    public int? HeadDim { get; init; }

    /// <summary>The Mamba4Rec paper's configuration (its config.yaml: hidden 64, 1 layer, d_state 32, d_conv 4, expand 2,
    /// dropout 0.2), pinned here so `--preset paper` keeps it whatever the defaults above become.</summary>
    public static Mamba4RecConfig Paper => new() { HiddenSize = 64, NumLayers = 1, DState = 32, DConv = 4, Expand = 2, InnerSize = 256, Dropout = 0.2f };

    public MambaConfig Mixer => new MambaConfig
    {
        DModel = HiddenSize, DState = DState, DConv = DConv, Expand = Expand, NLayer = NumLayers,
        Bias = false, ConvBias = true, Selective = Selective, VocabSize = NItems,
    }.WithMixer(MixerKind, HeadDim);
}

/// <summary>
/// Mamba4Rec: h = LayerNorm(dropout(item_embedding[seq])); h = Mamba4Layer(h) × num_layers;
/// seq_output = h[b, len_b − 1];  scores = seq_output · item_embeddingᵀ.  Parameter names as the reference code.
/// </summary>
public sealed class Mamba4Rec : Module, ISequentialRecommender
{
    public int NItems => Config.NItems;

    public Mamba4Rec(Mamba4RecConfig config, int seed = 0)
    {
        Config = config;
        var rng = new Random(seed);
        ItemEmbedding = Child("item_embedding", new Nn.Embedding(config.NItems, config.HiddenSize, rng, paddingIndex: 0, std: 0.02));
        Norm = Child("LayerNorm", new Nn.LayerNorm(config.HiddenSize, config.LayerNormEps));
        Layers = Child("mamba_layers", new ModuleList<Mamba4Layer>(Enumerable.Range(0, config.NumLayers).Select(_ =>
            new Mamba4Layer(config.Mixer, config.InnerSize, config.Dropout, config.LayerNormEps, residual: config.UsesResidual, rng))));
        // The reference re-initialises every Linear weight ~ N(0, 0.02) with zero bias (RecBole's _init_weights).
        foreach (var layer in Layers.Items)
            foreach (var lin in layer.Mamba.Linears.Concat([layer.Ffn.W1, layer.Ffn.W2]))
            {
                var w = lin.Weight.AsSpan<float>();
                using (var n = Init.Normal(rng, lin.Weight.Shape, 0, 0.02)) n.AsSpan<float>().CopyTo(w);
                lin.Bias?.AsSpan<float>().Clear();
            }
    }

    /// <summary>The parameters <see cref="Mamba4Rec(Mamba4RecConfig, int)"/> creates, without creating them.</summary>
    public static ParameterShapes Shapes(Mamba4RecConfig c)
    {
        var s = new ParameterShapes().Embedding("item_embedding", c.NItems, c.HiddenSize).LayerNorm("LayerNorm", c.HiddenSize);
        for (int i = 0; i < c.NumLayers; i++) s.Mamba4Layer($"mamba_layers.{i}", c.Mixer, c.InnerSize, bidirectional: false);
        return s;
    }

    public Mamba4RecConfig Config { get; }
    public Nn.Embedding ItemEmbedding { get; }
    public Nn.LayerNorm Norm { get; }
    public ModuleList<Mamba4Layer> Layers { get; }

    /// <summary>The hidden state at every position: itemSeq (b, l) → (b, l, hidden); causal.</summary>
    public Tensor SequenceOutput(Tensor itemSeq)
    {
        var h = Norm.Forward(F.Dropout(ItemEmbedding.Forward(itemSeq), Config.Dropout, DropoutSeed++, Training));
        var seed = DropoutSeed;
        foreach (var layer in Layers.Items) h = layer.Forward(h, ref seed);
        DropoutSeed = seed;
        return h;
    }

    /// <summary>itemSeq (b, l) I64 right-padded with 0; itemSeqLen (b) → seq_output (b, hidden).</summary>
    public Tensor Forward(Tensor itemSeq, Tensor itemSeqLen) => SequentialRecommenderLoss.GatherLast(SequenceOutput(itemSeq), itemSeqLen, "Mamba4Rec");

    /// <summary>A fresh recurrent state for <paramref name="batch"/> users.</summary>
    public Inference.MambaState NewState(int batch)
        => new(Config.NumLayers, batch, Config.Mixer, ItemEmbedding.Weight.Device);

    /// <summary>
    /// Appends one interaction per user at O(1) cost: items (b) → that position's seq_output (b, hidden), which
    /// equals <see cref="Forward"/> over the whole history (eval mode).
    /// </summary>
    public Tensor Step(Tensor items, Inference.MambaState state)
    {
        var h = Norm.Forward(ItemEmbedding.Forward(items));
        var seed = DropoutSeed;
        for (int i = 0; i < Layers.Count; i++) h = Layers[i].Step(h, state.Layers[i], ref seed);
        DropoutSeed = seed;
        state.Position++;
        return h;
    }

    /// <summary>Scores over all items: seq_output · item_embeddingᵀ → (b, n_items).</summary>
    public Tensor Scores(Tensor seqOutput) => F.Linear(seqOutput, ItemEmbedding.Weight);

    public Tensor Loss(Tensor itemSeq, Tensor itemSeqLen, Tensor posItems) => this.NextItem(itemSeq, itemSeqLen, posItems);
}
