using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// The language-model head fused with its loss: <c>CrossEntropy(Linear(hidden, weight), targets)</c> without ever holding
/// the [rows × V] logits whole. hidden [..., D] (F32), weight [V, D] (F32), targets [...] (I64, hidden's leading shape).
/// Rows are taken <c>chunkRows</c> at a time; for each chunk r:
///   logits_r = hidden_r Wᵀ,   lse, loss as <see cref="CrossEntropy"/> (mean over the N rows whose target ≠ ignore)
/// and, when a gradient is wanted, the chunk's share of it at once (the loss is a scalar, so only its upstream factor g
/// is unknown until the backward; Liger-Kernel's fused linear cross-entropy does the same):
///   dlogits_r = (softmax(logits_r) − onehot(t_r)) / N,   dhidden_r = dlogits_r W,   dW += dlogits_rᵀ hidden_r
/// The backward multiplies dhidden and dW by g. Memory: one [chunkRows × V] buffer (dlogits overwrite the chunk's logits,
/// an elementwise rewrite in both backends) and the [rows × D] + [V × D]
/// gradients, instead of the [rows × V] logits and their gradient; the GEMM work is the same as Linear then CrossEntropy.
/// A narrow (BF16/F16/I8, inference-only) weight takes the unfused path. Every target ignored: NaN loss, zero gradient.
/// </summary>
public static partial class F
{
    /// <summary>Rows per chunk by default: about 2^25 logits (128 MiB of F32) at a time.</summary>
    public static int DefaultCrossEntropyChunkRows(int vocab) => Math.Max(1, (1 << 25) / Math.Max(1, vocab));

    public static Tensor LinearCrossEntropy(Tensor hidden, Tensor weight, Tensor targets, long ignoreIndex = -100, int chunkRows = 0)
    {
        const string op = "LinearCrossEntropy";
        if (weight.DType.IsNarrowWeight()) return CrossEntropy(Linear(hidden, weight), targets, ignoreIndex);
        OpCheck.F32(op, "hidden", hidden);
        OpCheck.F32(op, "weight", weight);
        OpCheck.Rank(op, "weight", weight, 2);
        hidden = OpCheck.OnDeviceOf(hidden, weight);
        int vocab = weight.Shape[0], dim = weight.Shape[1];
        if (hidden.Rank < 1 || hidden.Shape.Last != dim)
            throw new ArgumentException($"{op}: hidden {hidden.Shape} must end in {dim} features to match weight {weight.Shape}");
        CheckTargetShape(op, targets, "hidden", hidden);
        if (chunkRows < 0) throw new ArgumentOutOfRangeException(nameof(chunkRows), chunkRows, $"{op}: chunkRows must be ≥ 0 (0 = default)");

        int rows = (int)(hidden.NumElements / dim);
        long counted = CountCheckedTargets(op, targets, ignoreIndex, vocab);
        if (targets.Device != hidden.Device) targets = targets.To(hidden.Device);
        int chunk = Math.Min(Math.Max(1, rows), chunkRows > 0 ? chunkRows : DefaultCrossEntropyChunkRows(vocab));
        bool wantGrad = Tape.ShouldRecord(hidden, weight);
        var backend = hidden.Backend;
        var h2 = hidden.ViewOf(new Shape(rows, dim), 0);
        var t1 = targets.ViewOf(new Shape(rows), 0);
        var dHidden = wantGrad && hidden.RequiresGrad ? Tensor.Empty(new Shape(rows, dim), DType.F32, hidden.Device) : null;
        var dWeight = wantGrad && weight.RequiresGrad ? Tensor.Zeros(weight.Shape, DType.F32, weight.Device) : null;
        var y = Tensor.Empty(new Shape(), DType.F32, hidden.Device);
        float scale = counted == 0 ? 0f : (float)(1.0 / counted);
        // the weight serves two products a chunk (logits, dhidden): rounded once where the backend rounds operands, else null
        using var w16 = backend.ProductOperand(weight);
        var w = w16 ?? weight;
        // where the products round their operands (BF16), the cross-entropy writes dlogits in that type itself: the bits a
        // rounding pass over F32 dlogits would give, without the pass or the F32 write
        bool narrowGrad = wantGrad && backend.ProductOperandType != DType.F32;
        using (var losses = Tensor.Empty(new Shape(rows), DType.F32, hidden.Device))
        using (var logits = Tensor.Empty(new Shape(chunk, vocab), DType.F32, hidden.Device))
        using (var narrowLogits = narrowGrad ? Tensor.Empty(new Shape(chunk, vocab), backend.ProductOperandType, hidden.Device) : null)
        using (var lse = Tensor.Empty(new Shape(chunk), DType.F32, hidden.Device))
        {
            for (int r0 = 0; r0 < rows; r0 += chunk)
            {
                int n = Math.Min(chunk, rows - r0);
                using var h = h2.ViewOf(new Shape(n, dim), (long)r0 * dim * sizeof(float));
                using var t = t1.ViewOf(new Shape(n), (long)r0 * sizeof(long));
                using var z = logits.ViewOf(new Shape(n, vocab), 0);
                using var l = losses.ViewOf(new Shape(n), (long)r0 * sizeof(float));
                using var m = lse.ViewOf(new Shape(n), 0);
                using var h16 = dWeight is not null ? backend.ProductOperand(h) : null;   // logits and dW
                backend.Gemm(h16 ?? h, false, w, true, z, 1f, 0f);
                backend.CrossEntropyForward(z, t, ignoreIndex, l, m, targetsChecked: true);   // by CountCheckedTargets
                if (!wantGrad) continue;
                // F32: in place (each element of dlogits is made from the same element of the logits); else in the products'
                // operand type, which both products (dhidden, dW) read as it is
                using var dzNarrow = narrowLogits?.ViewOf(new Shape(n, vocab), 0);
                var dz = dzNarrow ?? z;
                backend.CrossEntropyBackward(z, t, ignoreIndex, m, scale, dz);
                if (dHidden is not null)
                {
                    using var dh = dHidden.ViewOf(new Shape(n, dim), (long)r0 * dim * sizeof(float));
                    backend.Gemm(dz, false, w, false, dh, 1f, 0f);
                }
                if (dWeight is not null) backend.Gemm(dz, true, h16 ?? h, false, dWeight, 1f, 1f);
            }
            if (counted == 0) backend.Fill(y, float.NaN);
            else
            {
                backend.Sum(losses, y);
                backend.Scale(y, scale, y);
            }
        }
        h2.Dispose();
        t1.Dispose();

        if (wantGrad)
            Tape.Record(op, () =>
            {
                float g = y.Grad!.Item();
                if (dHidden is not null)
                {
                    if (g != 1f) backend.Scale(dHidden, g, dHidden);
                    Tape.Accumulate(hidden, dHidden.ViewOf(hidden.Shape, 0), owned: true);
                    dHidden.Dispose();
                }
                if (dWeight is not null)
                {
                    if (g != 1f) backend.Scale(dWeight, g, dWeight);
                    Tape.Accumulate(weight, dWeight, owned: true);
                }
            }, y);
        return y;
    }
}
