using Mamba4.Tensors;

namespace Mamba4.Backends;

public enum Activation
{
    SiLU,
    /// <summary>GELU, erf form (PyTorch's default): x · Φ(x).</summary>
    Gelu,
    Softplus,
    /// <summary>eˣ (A = −exp(A_log)).</summary>
    Exp,
}

/// <summary>
/// The kernel set every device implements; the only seam between the math in <c>Ops/</c> and the
/// hardware. All compute tensors are F32 and contiguous; shapes are validated by the op before the
/// call. "rows" means the product of all but the last dimension.
/// </summary>
public interface IBackend
{
    Device Device { get; }
    string Name { get; }

    // ---- memory ----
    Storage Allocate(long bytes);
    void Fill(Tensor t, float value);
    /// <summary>dst[r, dstCol + j] = src[r, srcCol + j] for j &lt; cols (both viewed as [rows, last]).</summary>
    void CopyColumns(Tensor src, int srcCol, Tensor dst, int dstCol, int cols);

    // ---- elementwise ----
    void Add(Tensor a, Tensor b, Tensor y);
    void Mul(Tensor a, Tensor b, Tensor y);
    void Scale(Tensor x, float alpha, Tensor y);
    /// <summary>dst += alpha · src.</summary>
    void AddInPlace(Tensor dst, Tensor src, float alpha);
    void ActivationForward(Activation kind, Tensor x, Tensor y);
    /// <summary>dx = dy · f'(x).</summary>
    void ActivationBackward(Activation kind, Tensor x, Tensor dy, Tensor dx);
    /// <summary>out = y · silu(z).</summary>
    void GateForward(Tensor y, Tensor z, Tensor output);
    void GateBackward(Tensor y, Tensor z, Tensor dOut, Tensor dy, Tensor dz);
    /// <summary>y = x · mask / (1 − p), mask ~ Bernoulli(1 − p) drawn from <paramref name="seed"/>; mask kept (U8).</summary>
    void DropoutForward(Tensor x, float p, ulong seed, Tensor y, Tensor mask);
    void DropoutBackward(Tensor dy, Tensor mask, float p, Tensor dx);

    // ---- reductions ----
    /// <summary>Sum of all elements, accumulated in double, written to the one-element <paramref name="y"/>.</summary>
    void Sum(Tensor x, Tensor y);
    /// <summary>y[j] (+)= Σ_r x[r, j].</summary>
    void SumRows(Tensor x, Tensor y, bool accumulate);
    /// <summary>y[r, :] += bias.</summary>
    void AddRowVector(Tensor y, Tensor bias);
    /// <summary>Σ x² over every element of every tensor, accumulated in double (the global gradient norm²); one host read.</summary>
    double SumOfSquares(IReadOnlyList<Tensor> xs);

    // ---- optimizer ----
    /// <summary>
    /// One AdamW update in place of every parameter (one multi-tensor kernel on a GPU):
    /// m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; p −= lr·wd·p; p −= (lr/bc₁)·m / (√v/√bc₂ + ε), with bc₁ = 1 − β₁ᵗ,
    /// bc₂ = 1 − β₂ᵗ. A parameter's row <see cref="AdamWParameter.SkipDecayRow"/> (−1: none) gets no weight decay.
    /// </summary>
    void AdamWStep(IReadOnlyList<AdamWParameter> parameters, float lr, float beta1, float beta2, float eps, float bc1, float bc2);

    // ---- matrix products ----
    /// <summary>C = alpha · op(A) · op(B) + beta · C, with A, B, C viewed as matrices [rows, last].</summary>
    void Gemm(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta);

    // ---- layers ----
    void EmbeddingForward(Tensor weight, Tensor ids, Tensor y);
    void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dWeight, long paddingIndex);
    void LayerNormForward(Tensor x, Tensor weight, Tensor? bias, float eps, Tensor y, Tensor mean, Tensor rstd);
    void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight, Tensor? dBias);
    void RmsNormForward(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd);
    void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dWeight);
    /// <summary>x, y: [batch, L, D] (channels last); weight [D, 1, K]; y_t = Σ_k w[k] x_{t-K+1+k} + b, optional SiLU.</summary>
    void CausalConv1dForward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor y);
    void CausalConv1dBackward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias);
    void SelectiveScanForward(in SelectiveScanArgs args);
    void SelectiveScanBackward(in SelectiveScanArgs args, in SelectiveScanGrads grads);

    // ---- recurrent step (inference: O(1) per token, state updated in place) ----
    /// <summary>x, y: [batch, D]; convState [batch, D, K−1] holds the previous K−1 inputs (oldest first) and is shifted in place.</summary>
    void CausalConv1dStep(Tensor x, Tensor convState, Tensor weight, Tensor? bias, bool silu, Tensor y);
    /// <summary>One scan step: u, delta, z, y: [batch, D]; B, C: [batch, N] (selective) or [D, N] (time-invariant); ssmState [batch, D, N] updated in place.</summary>
    void SelectiveScanStep(Tensor u, Tensor delta, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? z, Tensor? deltaBias, bool deltaSoftplus, bool selective, Tensor ssmState, Tensor y);

    // ---- losses ----
    /// <summary>Per-row log-sum-exp and loss = lse − logit[target] (0 where target == ignoreIndex).</summary>
    void CrossEntropyForward(Tensor logits, Tensor targets, long ignoreIndex, Tensor losses, Tensor logSumExp);
    /// <summary>dlogits = scale · (softmax − onehot(target)), zero rows for ignored targets.</summary>
    void CrossEntropyBackward(Tensor logits, Tensor targets, long ignoreIndex, Tensor logSumExp, float scale, Tensor dLogits);
    void LogSoftmaxForward(Tensor x, Tensor y);
    void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx);

    // ---- attention ----
    /// <summary>q, k, v, y: [batch, L, heads·dHead]; causal softmax(q kᵀ/√dHead) v; keyPadding [batch, L] (I64 ids, 0 = padding) optional; lse [batch, heads, L].</summary>
    void AttentionForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp);
    void AttentionBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp, Tensor dy, Tensor dq, Tensor dk, Tensor dv);
    /// <summary>Decoding with a KV cache: q, y [batch, heads·dHead] attend to the first <paramref name="length"/> rows of kCache, vCache [batch, capacity, heads·dHead].</summary>
    void AttentionStep(Tensor q, Tensor kCache, Tensor vCache, int length, int heads, Tensor y);

    // ---- recurrent (GRU4Rec) ----
    /// <summary>
    /// The GRU recurrence (torch.nn.GRU, gates ordered r, z, n) given the input projection gi = x W_ihᵀ + b_ih
    /// [batch, L, 3H]; wHh [3H, H]; bHh [3H] and h0 [batch, H] optional (null: zero). Writes y [batch, L, H]
    /// (h_t for every t) and gates [batch, L, 4H] = (r, z, n, W_hn h_{t−1} + b_hn) per step, kept for the backward.
    /// </summary>
    void GruForward(Tensor gi, Tensor wHh, Tensor? bHh, Tensor? h0, Tensor y, Tensor gates);
    /// <summary>Backward through time from dy [batch, L, H]: overwrites dGi [batch, L, 3H], dWhh [3H, H], dBhh [3H] and dH0 [batch, H] (each optional where its input was).</summary>
    void GruBackward(Tensor wHh, Tensor? h0, Tensor y, Tensor gates, Tensor dy, Tensor dGi, Tensor dWhh, Tensor? dBhh, Tensor? dH0);

    // ---- attention with dropout on the probabilities (SASRec training; RecBole's attn_dropout) ----
    /// <summary>
    /// As <see cref="AttentionForward"/> (same layout and mask) with the probabilities dropped: y_i = Σ_j p_ij·m_ij/(1−p)·v_j,
    /// m_ij kept with probability 1 − p by a counter-based hash of (seed, ((b·heads + h)·L + i)·L + j), so the backward
    /// regenerates the mask. Nothing is stored for the backward beyond y.
    /// </summary>
    void AttentionDropoutForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y);
    /// <summary>Gradients of <see cref="AttentionDropoutForward"/> (same p and seed): overwrites dq, dk, dv.</summary>
    void AttentionDropoutBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y, Tensor dy, Tensor dq, Tensor dk, Tensor dv);

    // ---- non-causal attention (Transformer encoders, e.g. the forecasting baseline) ----
    /// <summary>As <see cref="AttentionForward"/> with no mask at all: every query attends to all L keys.</summary>
    void AttentionForwardNonCausal(Tensor q, Tensor k, Tensor v, int heads, Tensor y, Tensor logSumExp);
    void AttentionBackwardNonCausal(Tensor q, Tensor k, Tensor v, int heads, Tensor y, Tensor logSumExp, Tensor dy, Tensor dq, Tensor dk, Tensor dv);
}

/// <summary>One parameter of an AdamW step: the tensor, its gradient, both moments, its weight decay and the row exempt from it (−1: none).</summary>
public readonly record struct AdamWParameter(Tensor Param, Tensor Grad, Tensor M, Tensor V, float WeightDecay, long SkipDecayRow);

/// <summary>
/// Inputs and outputs of the fused selective scan (layout channels-last, as the model produces them):
/// u, delta, z, y: [batch, L, D]; A: [D, N]; B, C: [batch, L, N] (selective) or [D, N] (time-invariant);
/// D: [D]; deltaBias: [D]; lastState: [batch, D, N].
/// </summary>
public readonly record struct SelectiveScanArgs(
    Tensor U, Tensor Delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? Z, Tensor? DeltaBias,
    bool DeltaSoftplus, Tensor Y, Tensor? LastState)
{
    public int Batch => U.Shape[0];
    public int Length => U.Shape[1];
    public int Channels => U.Shape[2];
    public int StateSize => A.Shape[1];
    public bool Selective => B.Rank == 3;
}

/// <summary>Gradients of the selective scan given dY; every non-null tensor is overwritten.</summary>
public readonly record struct SelectiveScanGrads(
    Tensor DY, Tensor DU, Tensor DDelta, Tensor DA, Tensor DB, Tensor DC, Tensor? DD, Tensor? DZ, Tensor? DDeltaBias);
