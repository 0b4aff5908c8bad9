using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// The decoding step of a Mamba-1 block and of the LM head, fused (inference only: no tape). One token per stream,
/// h (b, d); e d_inner, K d_conv, r dt_rank, n d_state; the weights as <see cref="MambaStepWeights"/>:
/// <code>
/// x̂       = h / √(mean h² + ε) · norm.weight
/// x, z    = (x̂ · in_projᵀ + b_in).split(e, e)
/// u       = silu(Σ_{j&lt;K−1} conv_w[:, j]·conv_state[:, j] + conv_w[:, K−1]·x + conv_b);   conv_state ← (conv_state[:, 1:], x)
/// dt, B, C = (u · x_projᵀ).split(r, n, n)
/// Δ       = softplus(dt · dt_projᵀ + dt_proj.bias),   A = −exp(A_log)
/// s       ← exp(Δ·A) ⊙ s + Δ·u·B                        (ssm_state, per channel: n values)
/// y       = (⟨C, s⟩ + D·u) · silu(z)
/// h'      = h + y · out_projᵀ + b_out
/// </code>
/// Exactly MambaBlock.Step (the unfused ops), which the CPU backend runs as the reference twin; the CUDA backend reads
/// each weight once in four kernels (or one persistent kernel, which asks the GPU's L2 for `prefetch`, the next layer's
/// in_proj weight, while it runs; a hint that changes no result). The head: logits = RMSNorm(h)·norm_f.weight · lm_headᵀ, and the greedy ids (each
/// row's arg-max, the first of equal largest; −1 for a row holding NaN or ±∞) computed where the logits are.
/// </summary>
public static partial class F
{
    public static Tensor MambaStep(Tensor h, in MambaStepWeights w, Tensor convState, Tensor ssmState, Tensor? prefetch = null)
    {
        const string op = "MambaStep";
        OpCheck.F32(op, "h", h);
        OpCheck.Rank(op, "h", h, 2);
        int batch = h.Shape[0], d = h.Shape[1];
        OpCheck.Rank(op, "conv1d.weight", w.ConvWeight, 3);
        OpCheck.Rank(op, "A_log", w.ALog, 2);
        OpCheck.Rank(op, "dt_proj.weight", w.DtProj, 2);
        int e = w.DInner, k = w.DConv, n = w.DState, r = w.DtRank;
        foreach (var (arg, t, shape) in (ReadOnlySpan<(string, Tensor?, int[])>)[
            ("norm.weight", w.NormWeight, [d]), ("in_proj.bias", w.InProjBias, [2 * e]), ("conv1d.weight", w.ConvWeight, [e, 1, k]),
            ("conv1d.bias", w.ConvBias, [e]), ("dt_proj.bias", w.DtBias, [e]), ("A_log", w.ALog, [e, n]), ("D", w.D, [e]),
            ("out_proj.bias", w.OutProjBias, [d]), ("conv_state", convState, [batch, e, k - 1]), ("ssm_state", ssmState, [batch, e, n])])
        {
            if (t is null) continue;
            OpCheck.F32(op, arg, t);
            OpCheck.Shape(op, arg, t, shape);
            OpCheck.SameDevice(op, h, t);
        }
        foreach (var (arg, t, shape) in (ReadOnlySpan<(string, Tensor, int[])>)[
            ("in_proj.weight", w.InProj, [2 * e, d]), ("x_proj.weight", w.XProj, [r + 2 * n, e]), ("dt_proj.weight", w.DtProj, [e, r]),
            ("out_proj.weight", w.OutProj, [d, e])])
        {
            if (t.DType is not (DType.F32 or DType.BF16 or DType.F16))
                throw new ArgumentException($"{op}: {arg} must be F32, BF16 or F16, got {t.DType} {t.Shape}");
            OpCheck.Shape(op, arg, t, shape);
            OpCheck.SameDevice(op, h, t);
        }
        if (prefetch is not null) OpCheck.SameDevice(op, h, prefetch);
        InferenceOnly(op);
        var output = Tensor.Empty(h.Shape, DType.F32, h.Device);
        Backend.Require<IMambaStepBackend>(h.Backend, op).MambaLayerStep(h, w, convState, ssmState, output, prefetch);
        return output;
    }

    /// <summary>logits (b, vocab) of the last hidden state h (b, d); with <paramref name="greedyIds"/> (I64 [b], on h's
    /// device) also each row's arg-max there, −1 where a logit is NaN or ±∞.</summary>
    public static Tensor MambaHeadStep(Tensor h, Tensor normWeight, float eps, Tensor lmHead, Tensor? greedyIds = null)
    {
        const string op = "MambaHeadStep";
        OpCheck.F32(op, "h", h);
        OpCheck.Rank(op, "h", h, 2);
        int batch = h.Shape[0], d = h.Shape[1];
        OpCheck.F32(op, "norm_f.weight", normWeight);
        OpCheck.Shape(op, "norm_f.weight", normWeight, d);
        OpCheck.SameDevice(op, h, normWeight);
        if (lmHead.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentException($"{op}: lm_head.weight must be F32, BF16 or F16, got {lmHead.DType} {lmHead.Shape}");
        OpCheck.Rank(op, "lm_head.weight", lmHead, 2);
        if (lmHead.Shape[1] != d) throw new ArgumentException($"{op}: lm_head.weight must be [vocab, {d}] to match h {h.Shape}, got {lmHead.Shape}");
        OpCheck.SameDevice(op, h, lmHead);
        if (greedyIds is not null)
        {
            if (greedyIds.DType != DType.I64) throw new ArgumentException($"{op}: greedyIds must be I64, got {greedyIds.DType}");
            OpCheck.Shape(op, "greedyIds", greedyIds, batch);
            OpCheck.SameDevice(op, h, greedyIds);
        }
        InferenceOnly(op);
        var logits = Tensor.Empty(new Shape(batch, lmHead.Shape[0]), DType.F32, h.Device);
        Backend.Require<IMambaStepBackend>(h.Backend, op).MambaHeadStep(h, normWeight, eps, lmHead, logits, greedyIds);
        return logits;
    }

    private static void InferenceOnly(string op)
    {
        if (GradMode.IsEnabled) throw new InvalidOperationException($"{op} is a decoding step without gradients: call it under GradMode.NoGrad()");
    }
}
