using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// The SSD scan of Mamba-2 (state space duality; mamba_ssm <c>mamba_chunk_scan_combined</c>, HF <c>Mamba2Mixer</c>),
/// fused: one op forward, one backward. Layout as the mixer produces it: x, y: (b, l, h, p); dt: (b, l, h);
/// A, D, dtBias: (h); B, C: (b, l, g, n) with h a multiple of g (head i reads group i / (h/g)); state S: (b, h, p, n).
///   dt_t  = clamp(softplus(dt_t + dtBias), dtMin, dtMax)     (no softplus when dtSoftplus is false; dtBias optional)
///   S_t   = exp(dt_t·A) S_{t−1} + dt_t · x_t ⊗ B_t             S_{−1} = 0, per head: S is (p, n), A a scalar
///   y_t   = S_t C_t + D·x_t                                    (S_t C_t)[p] = Σ_n S_t[p, n] C_t[n]
///   lastState = S_{L−1}: (b, h, p, n), returned on request, not differentiated.
/// Computed in chunks of <c>chunkSize</c> steps (the result does not depend on it beyond rounding): within a chunk the
/// quadratic form y_t = Σ_{s≤t} (C_t·B_s) exp(Σ_{s&lt;r≤t} dt_r A) dt_s x_s, between chunks the state is passed on.
/// Backward (G_t = ∂loss/∂S_t, from t = L−1 down: G_t = dy_t ⊗ C_t + exp(dt_{t+1}A) G_{t+1}):
///   dx_t = D·dy_t + dt_t G_t B_t,   dB_t += dt_t G_tᵀ x_t,   dC_t += S_tᵀ dy_t   (B, C summed over the group's heads)
///   ddt_t = ⟨G_t, A·exp(dt_t A) S_{t−1} + x_t ⊗ B_t⟩,   dA += dt_t ⟨G_t, exp(dt_t A) S_{t−1}⟩,   dD = Σ ⟨dy_t, x_t⟩
///   then through clamp (0 where clamped) and softplus (σ(dt + dtBias)); dDtBias = Σ_{b,t} of that.
/// Types: every tensor F32. Step (decoding, no tape): one step of the same recurrence, x, y: (b, h, p); dt: (b, h);
/// B, C: (b, g, n); the state (b, h, p, n) is updated in place. Equals the parallel forward step by step.
/// </summary>
public static partial class F
{
    public static (Tensor Y, Tensor? LastState) SsdScan(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C,
        Tensor? D = null, Tensor? dtBias = null, bool dtSoftplus = true, float dtMin = 0f, float dtMax = float.PositiveInfinity,
        int chunkSize = 256, bool returnLastState = false)
    {
        const string op = "SsdScan";
        OpCheck.F32(op, "x", x);
        OpCheck.Rank(op, "x", x, 4);
        int batch = x.Shape[0], length = x.Shape[1], heads = x.Shape[2], headDim = x.Shape[3];
        CheckSsd(op, x, dt, A, B, C, D, dtBias, dtMin, dtMax, batch, heads, [batch, length]);
        if (chunkSize < 1) throw new ArgumentException($"{op}: chunkSize must be ≥ 1, got {chunkSize}");
        int n = B.Shape[3];

        var y = Tensor.Empty(x.Shape, DType.F32, x.Device);
        var lastState = returnLastState ? Tensor.Empty(new Shape(batch, heads, headDim, n), DType.F32, x.Device) : null;
        var args = new SsdScanArgs(x, dt, A, B, C, D, dtBias, dtSoftplus, dtMin, dtMax, chunkSize, y, lastState);
        x.Backend.SsdScanForward(args);

        if (Tape.ShouldRecord(x, dt, A, B, C, D, dtBias))
            Tape.Record(op, () =>
            {
                var grads = new SsdScanGrads(
                    DY: y.Grad!,
                    DX: Like(x), DDt: Like(dt), DA: Like(A), DB: Like(B), DC: Like(C),
                    DD: D is not null ? Like(D) : null,
                    DDtBias: dtBias is not null ? Like(dtBias) : null);
                x.Backend.SsdScanBackward(args with { LastState = null }, grads);
                Tape.Accumulate(x, grads.DX, owned: true);
                Tape.Accumulate(dt, grads.DDt, owned: true);
                Tape.Accumulate(A, grads.DA, owned: true);
                Tape.Accumulate(B, grads.DB, owned: true);
                Tape.Accumulate(C, grads.DC, owned: true);
                if (D is not null) Tape.Accumulate(D, grads.DD!, owned: true);
                if (dtBias is not null) Tape.Accumulate(dtBias, grads.DDtBias!, owned: true);
            }, y);
        return (y, lastState);
    }

    /// <summary>One token per stream: y (b, h, p) from x (b, h, p), dt (b, h), B, C (b, g, n); <paramref name="ssmState"/> (b, h, p, n) is updated in place.</summary>
    public static Tensor SsdScanStep(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor ssmState,
        Tensor? D = null, Tensor? dtBias = null, bool dtSoftplus = true, float dtMin = 0f, float dtMax = float.PositiveInfinity)
    {
        const string op = "SsdScan.Step";
        OpCheck.F32(op, "x", x);
        OpCheck.Rank(op, "x", x, 3);
        int batch = x.Shape[0], heads = x.Shape[1], headDim = x.Shape[2];
        CheckSsd(op, x, dt, A, B, C, D, dtBias, dtMin, dtMax, batch, heads, [batch]);
        OpCheck.F32(op, "ssmState", ssmState);
        OpCheck.SameDevice(op, x, ssmState);
        OpCheck.Shape(op, "ssmState", ssmState, batch, heads, headDim, B.Shape[B.Rank - 1]);
        var y = Tensor.Empty(x.Shape, DType.F32, x.Device);
        x.Backend.SsdScanStep(x, dt, A, B, C, D, dtBias, dtSoftplus, dtMin, dtMax, ssmState, y);
        return y;
    }

    /// <summary>dt is (lead…, h), B and C (lead…, g, n) with h a multiple of g; A, D, dtBias (h); all F32 on x's device.</summary>
    private static void CheckSsd(string op, Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? dtBias,
        float dtMin, float dtMax, int batch, int heads, int[] lead)
    {
        foreach (var (arg, t) in (ReadOnlySpan<(string, Tensor?)>)[("dt", dt), ("A", A), ("B", B), ("C", C), ("D", D), ("dtBias", dtBias)])
            if (t is not null) { OpCheck.F32(op, arg, t); OpCheck.SameDevice(op, x, t); }
        OpCheck.Shape(op, "dt", dt, [.. lead, heads]);
        OpCheck.Shape(op, "A", A, heads);
        OpCheck.Rank(op, "B", B, lead.Length + 2);
        int groups = B.Shape[lead.Length], n = B.Shape[lead.Length + 1];
        if (groups < 1 || heads % groups != 0)
            throw new ArgumentException($"{op}: B {B.Shape} has {groups} groups; the {heads} heads of x {x.Shape} must be a multiple of them");
        OpCheck.Shape(op, "B", B, [.. lead, groups, n]);
        OpCheck.Shape(op, "C", C, [.. lead, groups, n]);
        if (D is not null) OpCheck.Shape(op, "D", D, heads);
        if (dtBias is not null) OpCheck.Shape(op, "dtBias", dtBias, heads);
        if (!(dtMin >= 0 && dtMax >= dtMin))
            throw new ArgumentException($"{op}: need 0 ≤ dtMin ≤ dtMax, got {dtMin}, {dtMax}");
    }
}
