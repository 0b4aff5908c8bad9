using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Causal multi-head attention with dropout on the attention probabilities, as RecBole's MultiHeadAttention
/// (attn_dropout between the softmax and the product with v). Same inputs, mask and layout as
/// <see cref="Attention.Causal"/>; with p = 0 or outside training it is <see cref="Attention.Causal"/> itself.
///   y_i = Σ_j p_ij · m_ij / (1 − p) · v_j,   m_ij ~ Bernoulli(1 − p) from a counter-based hash of the seed
///   ds_ij = p_ij (m_ij/(1 − p) · dy_i·v_j − dy_i·y_i),   dq_i = Σ_j ds_ij k_j/√d,   dk_j = Σ_i ds_ij q_i/√d,
///   dv_j = Σ_i p_ij m_ij/(1 − p) dy_i
/// The mask is regenerated in the backward (nothing but y is kept); see CpuBackend.AttentionDropout.cs.
/// </summary>
public static class AttentionDropout
{
    public static Tensor Causal(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, bool training = true)
    {
        if (p is < 0f or >= 1f) throw new ArgumentOutOfRangeException(nameof(p), p, "AttentionDropout: p must be in [0, 1)");
        if (!training || p == 0f) return Attention.Causal(q, k, v, heads, keyPadding);
        return Forward(q, k, v, heads, keyPadding, p, seed);
    }

    /// <summary>The dropout kernel unconditionally (p = 0 included: tests compare it with the fused kernel).</summary>
    internal static Tensor Forward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed)
    {
        const string op = "AttentionDropout";
        if (keyPadding is not null) keyPadding = OpCheck.OnDeviceOf(keyPadding, q);
        Attention.CheckArguments(op, q, k, v, heads, keyPadding);
        var backend = q.Backend;
        var y = Tensor.Empty(q.Shape, DType.F32, q.Device);
        backend.AttentionDropoutForward(q, k, v, heads, keyPadding, p, seed, y);
        if (Tape.ShouldRecord(q, k, v))
            Tape.Record(op, () =>
            {
                var dq = Tensor.Empty(q.Shape, DType.F32, q.Device);
                var dk = Tensor.Empty(k.Shape, DType.F32, k.Device);
                var dv = Tensor.Empty(v.Shape, DType.F32, v.Device);
                backend.AttentionDropoutBackward(q, k, v, heads, keyPadding, p, seed, y, y.Grad!, dq, dk, dv);
                Tape.Accumulate(q, dq, owned: true);
                Tape.Accumulate(k, dk, owned: true);
                Tape.Accumulate(v, dv, owned: true);
            }, y);
        return y;
    }
}
