using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// y[..., :] = weight[ids[...], :]   (ids I64 or I32, weight [num, dim]).
/// dweight[i, :] = Σ_{positions p with ids[p] = i} dy[p, :], except the padding row, which gets no gradient.
/// A BF16, F16 or I8 weight (inference only) gives F32 rows (an I8 row times its scale).
/// Ids on another device than the weight (host ids for a GPU model) are copied to the weight's device.
/// </summary>
public static partial class F
{
    public static Tensor Embedding(Tensor weight, Tensor ids, long paddingIndex = -1)
    {
        if (weight.DType.IsNarrowWeight()) NarrowWeightCheck("Embedding", weight);
        else OpCheck.F32("Embedding", "weight", weight);
        OpCheck.Rank("Embedding", "weight", weight, 2);
        if (ids.DType is not (DType.I64 or DType.I32))
            throw new ArgumentException($"Embedding: ids must be I64 or I32, got {ids.DType} {ids.Shape}");
        if (ids.Device != weight.Device) ids = ids.To(weight.Device);
        var y = Tensor.Empty(new Shape([.. ids.Shape.Dims, weight.Shape[1]]), DType.F32, weight.Device);
        weight.Backend.EmbeddingForward(weight, ids, y);
        if (Tape.ShouldRecord(weight))
            Tape.Record("Embedding", () =>
            {
                var dw = Tensor.Zeros(weight.Shape, weight.DType, weight.Device);
                weight.Backend.EmbeddingBackward(y.Grad!, ids, dw, paddingIndex);
                Tape.Accumulate(weight, dw, owned: true);
            }, y);
        return y;
    }

    /// <summary>h (b, l, d) → h[:, l − 1] (b, d): each sequence's last position, a differentiable row gather (the head of a
    /// prefill or of a forecast needs no other).</summary>
    public static Tensor LastPosition(Tensor h)
    {
        OpCheck.Rank("LastPosition", "h", h, 3);
        int b = h.Shape[0], l = h.Shape[1], d = h.Shape[2];
        if (l == 0) throw new ArgumentException($"LastPosition: h {h.Shape} has no positions");
        var rows = new long[b];
        for (int i = 0; i < b; i++) rows[i] = (long)i * l + l - 1;
        return Embedding(h.Reshape(b * l, d), Tensor.From(rows, b));
    }
}
