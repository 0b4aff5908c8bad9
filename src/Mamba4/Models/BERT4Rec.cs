using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>Sizes of BERT4Rec, RecBole's names in comments; the defaults are RecBole's BERT4Rec.yaml.</summary>
public sealed record BERT4RecConfig
{
    public int NItems { get; init; }                      // n_items, including the padding item 0 (the [mask] item is n_items)
    public int MaxSeqLength { get; init; } = 50;          // MAX_ITEM_LIST_LENGTH (rows of position_embedding)
    public int HiddenSize { get; init; } = 64;            // hidden_size
    public int NLayers { get; init; } = 2;                // n_layers
    public int NHeads { get; init; } = 2;                 // n_heads
    public int InnerSize { get; init; } = 256;            // inner_size
    public float HiddenDropout { get; init; } = 0.2f;     // hidden_dropout_prob
    public float AttnDropout { get; init; } = 0.2f;       // attn_dropout_prob
    public float LayerNormEps { get; init; } = 1e-12f;    // layer_norm_eps
    public double InitializerRange { get; init; } = 0.02; // initializer_range
    public float MaskRatio { get; init; } = 0.2f;         // mask_ratio
    /// <summary>As <see cref="SASRecConfig.NaiveAttention"/>.</summary>
    public bool NaiveAttention { get; init; }

    /// <summary>RecBole's mask_item_length = int(mask_ratio · max_seq_length): the most masked positions a sequence's loss counts (at least 1).</summary>
    public int MaskItemLength => Math.Max(1, (int)(MaskRatio * MaxSeqLength));

    /// <summary>The encoder's sizes, in the shape the shared Transformer layers take.</summary>
    public SASRecConfig Encoder => new()
    {
        NItems = NItems, MaxSeqLength = MaxSeqLength, HiddenSize = HiddenSize, NLayers = NLayers, NHeads = NHeads, InnerSize = InnerSize,
        HiddenDropout = HiddenDropout, AttnDropout = AttnDropout, LayerNormEps = LayerNormEps, InitializerRange = InitializerRange,
        NaiveAttention = NaiveAttention,
    };
}

/// <summary>One cloze batch: the masked sequences, and the flat positions (b·L + t) whose original items the loss predicts.</summary>
public sealed record ClozeBatch(long[] MaskedSeq, long[] Positions, long[] Targets);

/// <summary>
/// BERT4Rec as RecBole defines it (recbole/model/sequential_recommender/bert4rec.py, with the MaskItemSequence transform):
/// <code>
/// h = dropout(LayerNorm(item_embedding[seq] + position_embedding[0..L−1]))          (item_embedding: n_items + 1 rows, [mask] = n_items)
/// h = trm_encoder(h) with the bidirectional mask: key j gets −10000 iff seq[b, j] = 0
/// out = output_ln(gelu(output_ffn(h)))                                               (SequenceOutput)
/// logits = out · item_embedding[0..n_items−1]ᵀ + output_bias                          (Scores)
/// </code>
/// Training (cloze): each non-padding item of the sequence is replaced by [mask] with probability mask_ratio; the loss is
/// the mean cross-entropy over all items at the masked positions, counting per sequence its last mask_item_length masked
/// positions other than position 0 (RecBole pads masked_index with 0 and counts index &gt; 0 only).
/// Evaluation (reconstruct_test_data): [mask] is written at position item_seq_len, then the first column is dropped, so
/// the history loses its first item and [mask] sits at item_seq_len − 1, where the scores are read.
/// Init as RecBole's _init_weights (every Linear and Embedding weight ~ N(0, initializer_range), biases 0, LayerNorm 1/0).
/// </summary>
public sealed class BERT4Rec : Module, ISequentialRecommender
{
    public BERT4Rec(BERT4RecConfig config, int seed = 0)
    {
        if (config.NItems < 2) throw new ArgumentOutOfRangeException(nameof(config), $"BERT4Rec: n_items must be at least 2 (padding + one item), got {config.NItems}");
        if (config.HiddenSize % config.NHeads != 0)
            throw new ArgumentException($"BERT4Rec: hidden_size {config.HiddenSize} is not a multiple of n_heads {config.NHeads}");
        Config = config;
        var rng = new Random(seed);
        int d = config.HiddenSize;
        ItemEmbedding = Child("item_embedding", new Nn.Embedding(config.NItems + 1, d, rng, paddingIndex: 0, std: config.InitializerRange));
        PositionEmbedding = Child("position_embedding", new Nn.Embedding(config.MaxSeqLength, d, rng, std: config.InitializerRange));
        Encoder = Child("trm_encoder", new TransformerEncoder(config.Encoder, rng, causal: false));
        Norm = Child("LayerNorm", new Nn.LayerNorm(d, config.LayerNormEps));
        OutputFfn = Child("output_ffn", RecBoleInit.Linear(d, d, rng, config.InitializerRange));
        OutputLn = Child("output_ln", new Nn.LayerNorm(d, config.LayerNormEps));
        OutputBias = Parameter("output_bias", Tensor.Zeros(new Shape(config.NItems)));
        // RecBole draws the padding row too (normal_ over the whole weight after nn.Embedding zeroed it).
        using (var w = Init.Normal(rng, ItemEmbedding.Weight.Shape, 0, config.InitializerRange))
            w.AsSpan<float>().CopyTo(ItemEmbedding.Weight.AsSpan<float>());
    }

    /// <summary>The parameters <see cref="BERT4Rec(BERT4RecConfig, int)"/> creates, without creating them.</summary>
    public static ParameterShapes Shapes(BERT4RecConfig c)
    {
        int d = c.HiddenSize;
        var s = SASRec.Shapes(c.Encoder with { NItems = c.NItems + 1 });
        return s.Linear("output_ffn", d, d).LayerNorm("output_ln", d).Add("output_bias", c.NItems);
    }

    public BERT4RecConfig Config { get; }
    public int NItems => Config.NItems;
    /// <summary>The [mask] item: the extra last row of item_embedding.</summary>
    public int MaskToken => Config.NItems;
    public Nn.Embedding ItemEmbedding { get; }
    public Nn.Embedding PositionEmbedding { get; }
    public TransformerEncoder Encoder { get; }
    public Nn.LayerNorm Norm { get; }
    public Nn.Linear OutputFfn { get; }
    public Nn.LayerNorm OutputLn { get; }
    public Tensor OutputBias { get; }

    /// <summary>itemSeq [b, L] I64 (items, [mask] = n_items, 0 = padding) → [b, L, hidden]; every position sees every real item.</summary>
    public Tensor SequenceOutput(Tensor itemSeq) =>
        OutputLn.Forward(F.Gelu(OutputFfn.Forward(
            SASRec.Encode(this, "BERT4Rec", itemSeq, Config.MaxSeqLength, Config.HiddenDropout, ItemEmbedding, PositionEmbedding, Norm, Encoder))));

    /// <summary>RecBole's full_sort_predict before the scores: [mask] appended after each history (first column dropped), its output → [b, hidden].</summary>
    public Tensor Forward(Tensor itemSeq, Tensor itemSeqLen)
    {
        if (itemSeq.DType != DType.I64 || itemSeq.Rank != 2)
            throw new ArgumentException($"BERT4Rec: item_seq must be [batch, L] I64, got {itemSeq.DType} {itemSeq.Shape}");
        var seq = WithMaskAppended(itemSeq.ToInt64Array(), itemSeqLen.ToInt64Array(), itemSeq.Shape[0], itemSeq.Shape[1], MaskToken);
        return SequentialRecommenderLoss.GatherLast(SequenceOutput(Tensor.From(seq, itemSeq.Shape[0], itemSeq.Shape[1])), itemSeqLen, "BERT4Rec");
    }

    /// <summary>logits over the real items (the [mask] row left out): seqOutput · item_embedding[0..n_items−1]ᵀ + output_bias.</summary>
    public Tensor Scores(Tensor seqOutput) =>
        F.Linear(seqOutput, F.Slice(ItemEmbedding.Weight, 0, NItems), OutputBias);

    /// <summary>
    /// RecBole's reconstruct_test_data: row b gets [mask] at column len_b of the sequence widened by one column, then
    /// column 0 is dropped: [i₁ … i_len 0 …] → [i₂ … i_len mask 0 …], same width L.
    /// </summary>
    public static long[] WithMaskAppended(long[] itemSeq, long[] lens, int batch, int l, long maskToken)
    {
        var seq = new long[batch * l];
        for (int b = 0; b < batch; b++)
        {
            if (lens[b] < 1 || lens[b] > l)
                throw new ArgumentOutOfRangeException(nameof(lens), $"BERT4Rec: item_seq_len[{b}] = {lens[b]} is outside [1, {l}]");
            int len = (int)lens[b];
            Array.Copy(itemSeq, b * l + 1, seq, b * l, len - 1);
            seq[b * l + len - 1] = maskToken;
        }
        return seq;
    }

    /// <summary>
    /// RecBole's MaskItemSequence over right-padded sequences [batch, L]: each item before the first padding is
    /// replaced by [mask] with probability <paramref name="maskRatio"/> (one draw per item, in order, from
    /// <paramref name="rng"/>); the loss counts each row's last <paramref name="maskItemLength"/> masked positions,
    /// position 0 excluded (RecBole's masked_index is padded with 0 and only index &gt; 0 counts).
    /// </summary>
    public static ClozeBatch Mask(long[] itemSeq, int batch, int l, long maskToken, double maskRatio, int maskItemLength, Random rng)
    {
        var masked = (long[])itemSeq.Clone();
        var positions = new List<long>();
        var targets = new List<long>();
        var rowPositions = new List<int>();
        for (int b = 0; b < batch; b++)
        {
            rowPositions.Clear();
            for (int t = 0; t < l && itemSeq[b * l + t] != 0; t++)
                if (rng.NextDouble() < maskRatio)
                {
                    masked[b * l + t] = maskToken;
                    rowPositions.Add(t);
                }
            for (int r = Math.Max(0, rowPositions.Count - maskItemLength); r < rowPositions.Count; r++)
                if (rowPositions[r] > 0)
                {
                    positions.Add((long)b * l + rowPositions[r]);
                    targets.Add(itemSeq[b * l + rowPositions[r]]);
                }
        }
        return new ClozeBatch(masked, positions.ToArray(), targets.ToArray());
    }

    /// <summary>
    /// The cloze loss (RecBole's CE loss_type) of itemSeq [b, L] masked with <paramref name="rng"/>: the masked
    /// sequence's outputs at the counted positions, logits over all items, mean cross-entropy against the original
    /// items. Returns the loss and how many positions it counts (0: no counted mask in the batch, the loss is 0).
    /// </summary>
    public (Tensor Loss, long Positions) ClozeLoss(Tensor itemSeq, Random rng)
    {
        int b = itemSeq.Shape[0], l = itemSeq.Shape[1];
        var cloze = Mask(itemSeq.ToInt64Array(), b, l, MaskToken, Config.MaskRatio, Config.MaskItemLength, rng);
        var h = SequenceOutput(Tensor.From(cloze.MaskedSeq, b, l));
        // RecBole would divide by zero here; a batch without a counted mask contributes a zero loss instead.
        if (cloze.Positions.Length == 0) return (F.Scale(F.Sum(h), 0f), 0);
        var picked = F.Embedding(h.Reshape(b * l, h.Shape[2]), Tensor.From(cloze.Positions, cloze.Positions.Length));
        return (F.CrossEntropy(Scores(picked), Tensor.From(cloze.Targets, cloze.Targets.Length)), cloze.Positions.Length);
    }
}
