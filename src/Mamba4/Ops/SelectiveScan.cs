using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// The selective scan (S6), fused: one op, one kernel forward, one kernel backward (which recomputes
/// the states; nothing of size [batch, L, D, N] is kept). Layout channels-last:
/// u, delta, z, out: (b, l, d);  A: (d, n);  B, C: (b, l, n) selective or (d, n) time-invariant.
///   dt_t   = softplus(delta_t + deltaBias)          (delta_t + deltaBias when deltaSoftplus is false)
///   h_t    = exp(dt_t·A) ⊙ h_{t-1} + dt_t·B_t·u_t    h_{-1} = initialState (b, d, n) or 0, per channel d: h is (n)
///   y_t    = ⟨C_t, h_t⟩ + D·u_t;      out_t = y_t·silu(z_t)   (z optional)
///   lastState = h_{L-1}: (b, d, n), returned on request, not differentiated.
/// Types: u, delta, B, C, z (and out and their gradients) share one of F32, BF16, F16; A, D, deltaBias and lastState are
/// F32, and the state and every sum are F32 (the CPU backend computes BF16/F16 inputs on F32 copies). With F32 inputs, out
/// may be asked in BF16 (<c>outputType</c>): the F32 out rounded to nearest even as it is written — for BF16 products, whose
/// operand it then is — with its gradient still F32. Likewise dΔ and dz may be written in BF16 beside F32 inputs, where
/// delta and z allow it (Tensor.NarrowGradient: Linear outputs whose backward only multiplies with them).
/// Backward (per channel, t from L−1 down, g = ∂loss/∂h_t): dy = dout·silu(z), g += C_t·dy,
///   dC_t += dy·h_t, dB_t += g·dt_t·u_t, dA += g⊙a_t⊙h_{t-1}·dt_t, du_t = D·dy + dt_t⟨g, B_t⟩,
///   ddt_t = ⟨g, a_t⊙h_{t-1}⊙A⟩ + u_t⟨g, B_t⟩, ddelta_t = ddt_t·σ(delta_t + bias), g ← a_t⊙g;
///   dD = Σ dy·u, dbias = Σ ddelta, dz = dout·y·silu'(z), dinitialState = g after t = 0 (= ∂loss/∂h_{-1}).
///   (a_t = exp(dt_t·A); reference: SelectiveScanReference.) scan(x1‖x2) = scan(x2, initialState = lastState(scan(x1))).
/// Step (decoding, no tape): one time step of the same recurrence, u, delta, z, y: [batch, D]; B, C: [batch, N] (selective)
/// or [D, N] (time-invariant); the state h [batch, D, N] is updated in place. Equals the parallel forward step by step.
/// </summary>
public static partial class F
{
    public static (Tensor Y, Tensor? LastState) SelectiveScan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C,
        Tensor? D = null, Tensor? z = null, Tensor? deltaBias = null, bool deltaSoftplus = true, bool returnLastState = false,
        Tensor? initialState = null, DType? outputType = null)
        => SelectiveScan(u, delta, A, B, C, D, z, deltaBias, deltaSoftplus, returnLastState, initialState, outputNeeded: true, outputType);

    /// <param name="outputNeeded">False where only the node is wanted (a checkpointed segment's rerun, whose last op this
    /// is): the forward kernel is skipped and Y holds no values; the backward recomputes the states from the inputs alone.</param>
    internal static (Tensor Y, Tensor? LastState) SelectiveScan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C,
        Tensor? D, Tensor? z, Tensor? deltaBias, bool deltaSoftplus, bool returnLastState, Tensor? initialState, bool outputNeeded,
        DType? outputType = null)
    {
        const string op = "SelectiveScan";
        if (!outputNeeded && returnLastState)
            throw new ArgumentException($"{op}: the last state is an output: it needs the forward");
        if (u.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentException($"{op}: u must be F32, BF16 or F16, got {u.DType} {u.Shape}");
        OpCheck.Rank(op, "u", u, 3);
        int batch = u.Shape[0], length = u.Shape[1], channels = u.Shape[2];
        SameType(op, "delta", delta, u);
        OpCheck.Shape(op, "delta", delta, batch, length, channels);
        OpCheck.F32(op, "A", A);
        OpCheck.Rank(op, "A", A, 2);
        if (A.Shape[0] != channels)
            throw new ArgumentException($"{op}: A must have shape [{channels}, N] (one row per channel of u {u.Shape}), got {A.Shape}");
        int n = A.Shape[1];
        CheckBC(op, "B", B, u, batch, length, channels, n);
        CheckBC(op, "C", C, u, batch, length, channels, n);
        if (B.Rank != C.Rank)
            throw new ArgumentException($"{op}: B {B.Shape} and C {C.Shape} must both be selective [batch, L, N] or both time-invariant [D, N]");
        if (D is not null) { OpCheck.F32(op, "D", D); OpCheck.Shape(op, "D", D, channels); }
        if (z is not null) { SameType(op, "z", z, u); OpCheck.Shape(op, "z", z, batch, length, channels); }
        if (deltaBias is not null) { OpCheck.F32(op, "deltaBias", deltaBias); OpCheck.Shape(op, "deltaBias", deltaBias, channels); }
        if (initialState is not null) { OpCheck.F32(op, "initialState", initialState); OpCheck.Shape(op, "initialState", initialState, batch, channels, n); }
        foreach (var t in (ReadOnlySpan<Tensor?>)[delta, A, B, C, D, z, deltaBias, initialState])
            if (t is not null) OpCheck.SameDevice(op, u, t);
        var yType = outputType ?? u.DType;
        if (yType != u.DType && !(u.DType == DType.F32 && yType == DType.BF16))
            throw new ArgumentException($"{op}: outputType {yType} with u {u.DType}: the output is u's type, or BF16 beside F32 inputs");

        var y = Tensor.Empty(u.Shape, yType, u.Device);
        var lastState = returnLastState ? Tensor.Empty(new Shape(batch, channels, n), DType.F32, u.Device) : null;
        var args = new SelectiveScanArgs(u, delta, A, B, C, D, z, deltaBias, deltaSoftplus, y, lastState, initialState);
        if (outputNeeded) u.Backend.SelectiveScanForward(args);

        if (Tape.ShouldRecord(u, delta, A, B, C, D, z, deltaBias, initialState))
            Tape.Record(op, () =>
            {
                var backArgs = args with { LastState = null };
                var dy = y.Grad!.DType == u.DType ? y.Grad! : y.Grad!.To(u.DType);   // in the inputs' type
                // dΔ and dz in BF16 beside F32 inputs where both tensors allow it (Linear outputs read back only by BF16 products)
                bool narrow = u.DType == DType.F32 && Tape.GradientType(delta, DType.F32) == DType.BF16
                    && (z is not { RequiresGrad: true } || Tape.GradientType(z, DType.F32) == DType.BF16);
                Tensor Gradient(Tensor t) => narrow ? Tensor.Empty(t.Shape, DType.BF16, t.Device) : Like(t);
                var grads = new SelectiveScanGrads(
                    DY: dy,
                    DU: Like(u), DDelta: Gradient(delta), DA: Like(A), DB: Like(B), DC: Like(C),
                    DD: D is not null ? Like(D) : null,
                    DZ: z is { RequiresGrad: true } ? Gradient(z) : null,
                    DDeltaBias: deltaBias is not null ? Like(deltaBias) : null,
                    DInitialState: initialState is { RequiresGrad: true } ? Like(initialState) : null);
                u.Backend.SelectiveScanBackward(backArgs, grads);
                Tape.Accumulate(u, grads.DU, owned: true);
                Tape.Accumulate(delta, grads.DDelta, owned: true);
                Tape.Accumulate(A, grads.DA, owned: true);
                Tape.Accumulate(B, grads.DB, owned: true);
                Tape.Accumulate(C, grads.DC, owned: true);
                if (D is not null) Tape.Accumulate(D, grads.DD!, owned: true);
                if (grads.DZ is { } dz) Tape.Accumulate(z!, dz, owned: true);
                if (deltaBias is not null) Tape.Accumulate(deltaBias, grads.DDeltaBias!, owned: true);
                if (grads.DInitialState is { } dh0) Tape.Accumulate(initialState!, dh0, owned: true);
                if (dy != y.Grad) dy.Dispose();
            }, y);
        return (y, lastState);
    }

    /// <summary>One token per stream: y [batch, D] from u, delta [batch, D]; <paramref name="ssmState"/> [batch, D, N] is updated in place.</summary>
    public static Tensor SelectiveScanStep(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor ssmState, bool selective,
        Tensor? D = null, Tensor? z = null, Tensor? deltaBias = null, bool deltaSoftplus = true)
    {
        const string op = "SelectiveScan.Step";
        OpCheck.F32(op, "u", u);
        OpCheck.Rank(op, "u", u, 2);
        int batch = u.Shape[0], channels = u.Shape[1];
        OpCheck.F32(op, "A", A);
        OpCheck.Rank(op, "A", A, 2);
        if (A.Shape[0] != channels)
            throw new ArgumentException($"{op}: A must have shape [{channels}, N] (one row per channel of u {u.Shape}), got {A.Shape}");
        int n = A.Shape[1], rows = selective ? batch : channels;
        foreach (var (arg, t) in (ReadOnlySpan<(string, Tensor?)>)[("delta", delta), ("B", B), ("C", C), ("ssmState", ssmState), ("D", D), ("z", z), ("deltaBias", deltaBias)])
            if (t is not null) { OpCheck.F32(op, arg, t); OpCheck.SameDevice(op, u, t); }
        OpCheck.Shape(op, "delta", delta, batch, channels);
        OpCheck.Shape(op, "B", B, rows, n);
        OpCheck.Shape(op, "C", C, rows, n);
        OpCheck.Shape(op, "ssmState", ssmState, batch, channels, n);
        if (D is not null) OpCheck.Shape(op, "D", D, channels);
        if (z is not null) OpCheck.Shape(op, "z", z, batch, channels);
        if (deltaBias is not null) OpCheck.Shape(op, "deltaBias", deltaBias, channels);
        var y = Tensor.Empty(u.Shape, DType.F32, u.Device);
        u.Backend.SelectiveScanStep(u, delta, A, B, C, D, z, deltaBias, deltaSoftplus, selective, ssmState, y);
        return y;
    }

    private static Tensor Like(Tensor t) => Tensor.Empty(t.Shape, t.DType, t.Device);

    private static void SameType(string op, string arg, Tensor t, Tensor u)
    {
        if (t.DType != u.DType) throw new ArgumentException($"{op}: {arg} must have u's dtype {u.DType}, got {t.DType} {t.Shape}");
    }

    private static void CheckBC(string op, string arg, Tensor t, Tensor u, int batch, int length, int channels, int n)
    {
        SameType(op, arg, t, u);
        bool selective = t.Rank == 3 && t.Shape == new Shape(batch, length, n);
        bool invariant = t.Rank == 2 && t.Shape == new Shape(channels, n);
        if (!selective && !invariant)
            throw new ArgumentException(
                $"{op}: {arg} must have shape [{batch}, {length}, {n}] (selective: [batch, L, N]) or [{channels}, {n}] (time-invariant: [D, N]), got {t.Shape}");
    }
}
