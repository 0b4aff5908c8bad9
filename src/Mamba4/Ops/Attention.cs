using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Causal multi-head scaled dot-product attention (the core of the Transformer / SASRec baselines;
/// the q, k, v and output projections are separate Linear ops). q, k, v, y: [batch, L, heads·dHead],
/// head h owning columns h·dHead … (h+1)·dHead − 1:
///   s_ij = q_i · k_j / √dHead + bias_ij,   p_ij = softmax_j(s_ij),   y_i = Σ_j p_ij v_j
///   ds_ij = p_ij (dy_i · v_j − dy_i · y_i),   dq_i = Σ_j ds_ij k_j / √dHead,
///   dk_j = Σ_i ds_ij q_i / √dHead,   dv_j = Σ_i p_ij dy_i
/// bias: without <c>keyPadding</c>, keys j &gt; i are excluded. With <c>keyPadding</c> ([batch, L] I64 item ids,
/// 0 = padding) it is RecBole's additive mask: 0 where j ≤ i and ids[b, j] ≠ 0, else −10000 — so a query whose
/// visible keys are all padding attends (softly) to every key, as in RecBole. See CpuBackend.Attention.cs.
/// The forward keeps only the per-row log-sum-exp [batch, heads, L]; the backward recomputes p from it.
/// </summary>
public static class Attention
{
    public static Tensor Causal(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding = null) => Forward(q, k, v, heads, keyPadding, causal: true);

    /// <summary>
    /// Non-causal (encoder) attention: the same formulas with no bias at all — every query attends to all L keys
    /// (Transformer encoders, e.g. the forecasting baseline). Kernels: IBackend.AttentionForwardNonCausal / BackwardNonCausal.
    /// </summary>
    public static Tensor NonCausal(Tensor q, Tensor k, Tensor v, int heads) => Forward(q, k, v, heads, null, causal: false);

    private static Tensor Forward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, bool causal)
    {
        string op = causal ? "Attention" : "Attention (non-causal)";
        if (keyPadding is not null) keyPadding = OpCheck.OnDeviceOf(keyPadding, q);
        var (batch, l) = CheckArguments(op, q, k, v, heads, keyPadding);

        var backend = q.Backend;
        var y = Tensor.Empty(q.Shape, DType.F32, q.Device);
        var lse = Tensor.Empty(new Shape(batch, heads, l), DType.F32, q.Device);
        if (causal) backend.AttentionForward(q, k, v, heads, keyPadding, y, lse);
        else backend.AttentionForwardNonCausal(q, k, v, heads, y, lse);

        if (Tape.ShouldRecord(q, k, v))
            Tape.Record(op, () =>
            {
                var dq = Tensor.Empty(q.Shape, DType.F32, q.Device);
                var dk = Tensor.Empty(k.Shape, DType.F32, k.Device);
                var dv = Tensor.Empty(v.Shape, DType.F32, v.Device);
                if (causal) backend.AttentionBackward(q, k, v, heads, keyPadding, y, lse, y.Grad!, dq, dk, dv);
                else backend.AttentionBackwardNonCausal(q, k, v, heads, y, lse, y.Grad!, dq, dk, dv);
                Tape.Accumulate(q, dq, owned: true);
                Tape.Accumulate(k, dk, owned: true);
                Tape.Accumulate(v, dv, owned: true);
            }, y);
        else lse.Dispose();
        return y;
    }
    /// <summary>Validates q, k, v [batch, L, heads·dHead] and the optional keyPadding [batch, L] (I64); returns (batch, L).</summary>
    internal static (int Batch, int Length) CheckArguments(string op, Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding)
    {
        OpCheck.F32(op, "q", q);
        OpCheck.F32(op, "k", k);
        OpCheck.F32(op, "v", v);
        OpCheck.Rank(op, "q", q, 3);
        int batch = q.Shape[0], l = q.Shape[1], width = q.Shape[2];
        if (heads < 1) throw new ArgumentException($"{op}: heads must be at least 1, got {heads}");
        if (width == 0 || width % heads != 0)
            throw new ArgumentException($"{op}: the last axis of q must be heads·dHead with dHead ≥ 1; got {width} for {heads} heads (q {q.Shape})");
        OpCheck.SameDevice(op, q, k);
        OpCheck.SameDevice(op, q, v);
        OpCheck.Shape(op, "k", k, batch, l, width);
        OpCheck.Shape(op, "v", v, batch, l, width);
        if (keyPadding is not null)
        {
            if (keyPadding.DType != DType.I64)
                throw new ArgumentException($"{op}: keyPadding must be I64 item ids (0 = padding), got {keyPadding.DType} {keyPadding.Shape}");
            OpCheck.SameDevice(op, q, keyPadding);
            OpCheck.Shape(op, "keyPadding", keyPadding, batch, l);
        }
        return (batch, l);
    }
}
