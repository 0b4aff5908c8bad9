using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Models;

/// <summary>
/// A next-item recommender over right-padded item sequences (item 0 = padding), RecBole's SequentialRecommender
/// contract: <see cref="Forward"/> gives seq_output at position item_seq_len − 1, <see cref="Scores"/> the dot
/// product with every item embedding (item 0 included; evaluation excludes it).
/// </summary>
public interface ISequentialRecommender
{
    /// <summary>Number of items including the padding item 0 (RecBole's n_items, the rows of item_embedding).</summary>
    int NItems { get; }

    /// <summary>Hidden state at every position: itemSeq [b, L] I64 → [b, L, hidden]. Causal (position t sees items 0..t only), except BERT4Rec's (bidirectional).</summary>
    Tensor SequenceOutput(Tensor itemSeq);

    /// <summary>seq_output: the hidden state that predicts the item after the history (at position itemSeqLen[b] − 1; BERT4Rec: its appended [mask]) → [b, hidden].</summary>
    Tensor Forward(Tensor itemSeq, Tensor itemSeqLen);

    /// <summary>seqOutput [..., hidden] · item_embeddingᵀ → [..., n_items].</summary>
    Tensor Scores(Tensor seqOutput);
}

/// <summary>The two training objectives over an <see cref="ISequentialRecommender"/>.</summary>
public static class SequentialRecommenderLoss
{
    /// <summary>RecBole's objective: cross-entropy of the next item after each sample's last position (posItems [b]).</summary>
    public static Tensor NextItem(this ISequentialRecommender model, Tensor itemSeq, Tensor itemSeqLen, Tensor posItems) =>
        F.CrossEntropy(model.Scores(model.Forward(itemSeq, itemSeqLen)), posItems);

    /// <summary>
    /// "All positions": one causal forward, cross-entropy at every position against targets [b, L] (the next item;
    /// −100 at padded positions), averaged over the counted positions.
    /// </summary>
    public static Tensor AllPositions(this ISequentialRecommender model, Tensor itemSeq, Tensor targets) =>
        F.CrossEntropy(model.Scores(model.SequenceOutput(itemSeq)), targets);

    /// <summary>Rows h[b, len_b − 1] of h [b, L, hidden] as a differentiable gather → [b, hidden].</summary>
    public static Tensor GatherLast(Tensor h, Tensor itemSeqLen, string model)
    {
        int b = h.Shape[0], l = h.Shape[1], d = h.Shape[2];
        if (itemSeqLen.Shape != new Shape(b))
            throw new ArgumentException($"{model}: item_seq_len must have shape [{b}], got {itemSeqLen.Shape}");
        var lens = itemSeqLen.ToInt64Array();
        var rows = new long[b];
        for (int i = 0; i < b; i++)
        {
            if (lens[i] < 1 || lens[i] > l)
                throw new ArgumentOutOfRangeException(nameof(itemSeqLen), $"{model}: item_seq_len[{i}] = {lens[i]} is outside [1, {l}]");
            rows[i] = (long)i * l + lens[i] - 1;
        }
        return F.Embedding(h.Reshape(b * l, d), Tensor.From(rows, b));
    }
}
