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
    /// One AdamW update in place of every parameter (one multi-tensor kernel on a GPU), each gradient read as
    /// g = gradScale·grad (gradient clipping's factor, applied here instead of by a pass over every gradient; the same F32
    /// product): m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; p −= lr·wd·p; p −= (lr/bc₁)·m / (√v/√bc₂ + ε), with bc₁ = 1 − β₁ᵗ,
    /// bc₂ = 1 − β₂ᵗ. A parameter's row <see cref="AdamWParameter.SkipDecayRow"/> (−1: none) gets no weight decay.
    /// </summary>
    void AdamWStep(IReadOnlyList<AdamWParameter> parameters, float lr, float beta1, float beta2, float eps, float bc1, float bc2, float gradScale = 1f);

    // ---- matrix products ----
    /// <summary>C = alpha · op(A) · op(B) + beta · C, with A, B, C viewed as matrices [rows, last].</summary>
    void Gemm(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta);
    /// <summary>x rounded as this backend rounds a product's operands, made once to serve several products: on CUDA with
    /// MatmulPrecision Bf16 a BF16 copy, which <see cref="Gemm"/> takes as it is (the same bits its own rounding pass would
    /// give); null where products read F32 as it is (the CPU; CUDA in F32 or TF32). The caller disposes it.</summary>
    Tensor? ProductOperand(Tensor x);
    /// <summary>The type <see cref="ProductOperand"/> rounds to: BF16 on CUDA with MatmulPrecision Bf16, else F32 (products
    /// read F32 as it is). A kernel that makes a product's operand may write it in this type directly.</summary>
    DType ProductOperandType { get; }
    /// <summary>The type an activation whose only reader is a product is written in by the op that makes it (the block's
    /// RMSNorm for in_proj, the scan for out_proj): BF16 on CUDA with BF16 products (and <c>Bf16Activations</c>), so that no
    /// F32 copy exists and nothing rounds it twice; else F32. Its gradient stays F32.</summary>
    DType ActivationType { get; }
    /// <summary>As <see cref="Gemm"/> for each i of a batch: C[i] = alpha · op(A[i]) · op(B[i]) + beta · C[i], with A, B, C
    /// [batch, rows, last] (contiguous).</summary>
    void GemmBatched(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta);
    /// <summary>y = x · Wᵀ with x [rows, in] and y [rows, out] F32 and W [out, in] BF16, F16 or I8 (scaled by
    /// <see cref="Tensor.RowScale"/>): the weights are read in their own type, the sums are F32.</summary>
    void GemmNarrowWeight(Tensor x, Tensor weight, Tensor y);

    // ---- layers ----
    /// <summary>y[p, :] = weight[ids[p], :] widened to F32 (times the row's scale for an I8 weight).</summary>
    void EmbeddingForward(Tensor weight, Tensor ids, Tensor y);
    void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dWeight, long paddingIndex);
    void LayerNormForward(Tensor x, Tensor weight, Tensor? bias, float eps, Tensor y, Tensor mean, Tensor rstd);
    void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight, Tensor? dBias);
    /// <summary>y = x·r·w, r = 1/√(mean x² + ε) per row (into rstd); y F32, or BF16 rounded from the same F32 values (the
    /// operand of BF16 products).</summary>
    void RmsNormForward(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd);
    /// <summary>dx = r·(g − x̂·mean(g·x̂)), g = dy·w, written (or with <paramref name="accumulate"/> added to dx's values: the
    /// residual stream's gradient, which the block's addition gave it first); dWeight = Σ_rows dy·x̂.</summary>
    void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dWeight, bool accumulate = false);
    /// <summary>x, y: [batch, L, D] (channels last); weight [D, 1, K]; y_t = Σ_k w[k] x_{t-K+1+k} + b, optional SiLU; and, where
    /// <paramref name="yBf16"/> is given, y rounded to BF16 there too (for a product that multiplies y in BF16).</summary>
    void CausalConv1dForward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor y, Tensor? yBf16 = null);
    void CausalConv1dBackward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias);
    void SelectiveScanForward(in SelectiveScanArgs args);
    void SelectiveScanBackward(in SelectiveScanArgs args, in SelectiveScanGrads grads);
    /// <summary>Mamba-2's SSD scan (Ops/SsdScan.cs has the math); writes Y and, when given, LastState.</summary>
    void SsdScanForward(in SsdScanArgs args);
    void SsdScanBackward(in SsdScanArgs args, in SsdScanGrads grads);

    // ---- recurrent step (inference: O(1) per token, state updated in place) ----
    /// <summary>x, y: [batch, D]; convState [batch, D, K−1] holds the previous K−1 inputs (oldest first) and is shifted in place.</summary>
    void CausalConv1dStep(Tensor x, Tensor convState, Tensor weight, Tensor? bias, bool silu, Tensor y);
    /// <summary>convState [batch, D, W] ← the last W rows of x [batch, L, D] per stream, transposed, oldest first; zeros
    /// before the sequence's start where L &lt; W (the state a prefill leaves).</summary>
    void CausalConv1dSaveState(Tensor x, Tensor convState);
    /// <summary>rows [batch, W, D] ← convState [batch, D, W] transposed (the inputs before a sequence that continues from it).</summary>
    void CausalConv1dStateRows(Tensor convState, Tensor rows);
    /// <summary>One scan step: u, delta, z, y: [batch, D]; B, C: [batch, N] (selective) or [D, N] (time-invariant); ssmState [batch, D, N] updated in place.</summary>
    void SelectiveScanStep(Tensor u, Tensor delta, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? z, Tensor? deltaBias, bool deltaSoftplus, bool selective, Tensor ssmState, Tensor y);
    /// <summary>One SSD step: x, y: [batch, H, P]; dt: [batch, H]; B, C: [batch, G, N]; ssmState [batch, H, P, N] updated in place.</summary>
    void SsdScanStep(Tensor x, Tensor dt, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? dtBias, bool dtSoftplus, float dtMin, float dtMax, Tensor ssmState, Tensor y);

    // ---- losses ----
    /// <summary>Per-row log-sum-exp and loss = lse − logit[target] (0 where target == ignoreIndex). A target outside [0, V)
    /// that is not ignored is an error naming its row; with <paramref name="targetsChecked"/> (the caller checked them on
    /// the host) a GPU skips its own check, a read that waits for the device (the CPU always checks: it indexes by them).</summary>
    void CrossEntropyForward(Tensor logits, Tensor targets, long ignoreIndex, Tensor losses, Tensor logSumExp, bool targetsChecked = false);
    /// <summary>dlogits = scale·(softmax − one-hot(target)) (a zero row where ignored), written in dLogits' type: F32 — then
    /// dLogits may be logits itself (an elementwise rewrite; LinearCrossEntropy overwrites its chunk so) — or, on a backend
    /// whose <see cref="ProductOperandType"/> is BF16, BF16 (the operand of the products that follow).</summary>
    void CrossEntropyBackward(Tensor logits, Tensor targets, long ignoreIndex, Tensor logSumExp, float scale, Tensor dLogits);
    void LogSoftmaxForward(Tensor x, Tensor y);
    void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx);

    // ---- attention ----
    /// <summary>
    /// softmax(q kᵀ/√dHead + mask) v as <paramref name="spec"/> says (causal or not, key padding, dropout); q, k, v, y:
    /// [batch, L, heads·dHead]. Writes y and each row's log-sum-exp [batch, heads, L] (of the scores before dropout),
    /// which is all the backward needs besides the inputs.
    /// </summary>
    void AttentionForward(AttentionSpec spec, Tensor q, Tensor k, Tensor v, Tensor y, Tensor logSumExp);
    /// <summary>Gradients of <see cref="AttentionForward"/> (same spec, its y and log-sum-exp) given dy: overwrites dq, dk, dv.</summary>
    void AttentionBackward(AttentionSpec spec, Tensor q, Tensor k, Tensor v, Tensor y, Tensor logSumExp, Tensor dy, Tensor dq, Tensor dk, Tensor dv);
    /// <summary>Decoding with a KV cache: q, y [batch, heads·dHead] attend to the first <paramref name="length"/> rows of kCache, vCache [batch, capacity, heads·dHead].</summary>
    void AttentionStep(Tensor q, Tensor kCache, Tensor vCache, int length, int heads, Tensor y);
}

/// <summary>One parameter of an AdamW step: the tensor, its gradient, both moments, its weight decay and the row exempt from it (−1: none).</summary>
public readonly record struct AdamWParameter(Tensor Param, Tensor Grad, Tensor M, Tensor V, float WeightDecay, long SkipDecayRow);

/// <summary>
/// Inputs and outputs of the fused selective scan (layout channels-last, as the model produces them):
/// u, delta, z, y: [batch, L, D]; A: [D, N]; B, C: [batch, L, N] (selective) or [D, N] (time-invariant);
/// D: [D]; deltaBias: [D]; lastState and initialState (h_{-1}, F32; null = zeros): [batch, D, N].
/// </summary>
public readonly record struct SelectiveScanArgs(
    Tensor U, Tensor Delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? Z, Tensor? DeltaBias,
    bool DeltaSoftplus, Tensor Y, Tensor? LastState, Tensor? InitialState = null)
{
    public int Batch => U.Shape[0];
    public int Length => U.Shape[1];
    public int Channels => U.Shape[2];
    public int StateSize => A.Shape[1];
    public bool Selective => B.Rank == 3;
}

/// <summary>Gradients of the selective scan given dY; every non-null tensor is overwritten (DInitialState: ∂loss/∂h_{-1}, F32 [batch, D, N]).</summary>
public readonly record struct SelectiveScanGrads(
    Tensor DY, Tensor DU, Tensor DDelta, Tensor DA, Tensor DB, Tensor DC, Tensor? DD, Tensor? DZ, Tensor? DDeltaBias, Tensor? DInitialState = null);

/// <summary>
/// Inputs and outputs of Mamba-2's SSD scan (Ops/SsdScan.cs): x, y: [batch, L, H, P]; dt: [batch, L, H] (before dtBias,
/// softplus and the clamp to [DtMin, DtMax]); A, D, dtBias: [H]; B, C: [batch, L, G, N]; lastState: [batch, H, P, N].
/// </summary>
public readonly record struct SsdScanArgs(
    Tensor X, Tensor Dt, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? DtBias,
    bool DtSoftplus, float DtMin, float DtMax, int ChunkSize, Tensor Y, Tensor? LastState)
{
    public int Batch => X.Shape[0];
    public int Length => X.Shape[1];
    public int Heads => X.Shape[2];
    public int HeadDim => X.Shape[3];
    public int Groups => B.Shape[2];
    public int StateSize => B.Shape[3];
}

/// <summary>Gradients of the SSD scan given dY; every non-null tensor is overwritten.</summary>
public readonly record struct SsdScanGrads(
    Tensor DY, Tensor DX, Tensor DDt, Tensor DA, Tensor DB, Tensor DC, Tensor? DD, Tensor? DDtBias);
