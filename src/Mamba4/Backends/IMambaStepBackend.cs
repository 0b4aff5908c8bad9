using Mamba4.Tensors;

namespace Mamba4.Backends;

/// <summary>The weights of one Mamba-1 block that its decoding step reads (PyTorch/HF names: norm.weight,
/// mixer.in_proj, mixer.conv1d, mixer.x_proj, mixer.dt_proj, mixer.A_log, mixer.D, mixer.out_proj). The four
/// projections may be F32, BF16 or F16; everything else is F32.</summary>
public readonly record struct MambaStepWeights(
    Tensor NormWeight, float NormEps, Tensor InProj, Tensor? InProjBias, Tensor ConvWeight, Tensor? ConvBias,
    Tensor XProj, Tensor DtProj, Tensor DtBias, Tensor ALog, Tensor? D, Tensor OutProj, Tensor? OutProjBias)
{
    public int DModel => InProj.Shape[1];
    public int DInner => ConvWeight.Shape[0];
    public int DConv => ConvWeight.Shape[2];
    public int DtRank => DtProj.Shape[1];
    public int DState => ALog.Shape[1];
}

/// <summary>
/// An optional capability: the fused decoding step of a Mamba-1 block and of the LM head (Ops/MambaStep.cs has the
/// math). The CPU backend runs it as the composition of the unfused ops (the reference twin); the CUDA backend as four
/// kernels a layer (or one persistent kernel) that read each weight once (Kernels/mamba_step.cu).
/// </summary>
public interface IMambaStepBackend : IBackend
{
    /// <summary>output (batch, d) = h + out_proj(mixer_step(RMSNorm(h))); convState [batch, e, K−1] and ssmState [batch, e, n]
    /// are updated in place. <paramref name="prefetch"/>: a weight the next layer reads first (its in_proj), which a GPU
    /// may bring into its cache meanwhile; it changes no result.</summary>
    void MambaLayerStep(Tensor h, in MambaStepWeights w, Tensor convState, Tensor ssmState, Tensor output, Tensor? prefetch);

    /// <summary>logits (batch, vocab) = RMSNorm(h)·normWeight·lmHeadᵀ and, when given, ids (I64 [batch]) = each row's
    /// arg-max (the first of equal largest), −1 for a row holding NaN or ±∞.</summary>
    void MambaHeadStep(Tensor h, Tensor normWeight, float eps, Tensor lmHead, Tensor logits, Tensor? ids);
}
