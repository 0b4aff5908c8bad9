using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Depthwise causal convolution over time, channels last (x, y: [batch, L, D]; weight [D, 1, K] as
/// PyTorch's nn.Conv1d(groups=D) names it; bias [D]):
///   p_t[d] = b[d] + Σ_{k&lt;K} w[d, k]·x_{t−K+1+k}[d]   (x_s = 0 for s &lt; 0),   y = p or silu(p).
/// With dp = dy (or dy·silu'(p)):  dx_s[d] = Σ_k w[d, k]·dp_{s+K−1−k}[d];
///   dw[d, k] = Σ_{b,t} dp_t[d]·x_{t−K+1+k}[d];   db[d] = Σ_{b,t} dp_t[d].
/// Step (decoding, no tape): x, y [batch, D]; convState [batch, D, K−1] holds the previous K−1 inputs, oldest first:
///   y[d] = b[d] + Σ_{k&lt;K−1} w[d, k]·state[d, k] + w[d, K−1]·x[d],  then state ← (state[1:], x).
/// </summary>
public static partial class F
{
    public static Tensor CausalConv1d(Tensor x, Tensor weight, Tensor? bias, bool silu = false) => Conv(x, weight, bias, silu, false).Y;

    /// <summary><see cref="CausalConv1d"/>, and where no gradient is recorded and the backend's products multiply in BF16
    /// (<see cref="Backends.IBackend.ActivationType"/>), y's BF16 copy written by the same kernel — for a product among y's
    /// readers (x_proj reads u so, the scan reads it in F32), which would otherwise round y in a pass of its own; else null.</summary>
    public static (Tensor Y, Tensor? Bf16) CausalConv1dWithBf16Copy(Tensor x, Tensor weight, Tensor? bias, bool silu) =>
        Conv(x, weight, bias, silu, x.Backend.ActivationType == DType.BF16 && !Tape.ShouldRecord(x, weight, bias));

    private static (Tensor Y, Tensor? Bf16) Conv(Tensor x, Tensor weight, Tensor? bias, bool silu, bool bf16Copy)
    {
        OpCheck.F32("CausalConv1d", "x", x);
        OpCheck.Rank("CausalConv1d", "x", x, 3);
        int d = x.Shape[2];
        if (weight.Rank != 3 || weight.Shape[0] != d || weight.Shape[1] != 1 || weight.Shape[2] < 1)
            throw new ArgumentException($"CausalConv1d: weight must have shape [{d}, 1, K] for x {x.Shape}, got {weight.Shape}");
        if (bias is not null) OpCheck.Shape("CausalConv1d", "bias", bias, d);
        var y = Tensor.Empty(x.Shape, x.DType, x.Device);
        var y16 = bf16Copy ? Tensor.Empty(x.Shape, DType.BF16, x.Device) : null;
        x.Backend.CausalConv1dForward(x, weight, bias, silu, y, y16);
        if (Tape.ShouldRecord(x, weight, bias))
            Tape.Record("CausalConv1d", () =>
            {
                // in BF16 where x allows it (a Linear's output read back only by BF16 products: in_proj's x part)
                var dx = Tensor.Empty(x.Shape, Tape.GradientType(x, x.DType), x.Device);
                var dw = Tensor.Empty(weight.Shape, x.DType, x.Device);
                var db = bias is null ? null : Tensor.Empty(bias.Shape, x.DType, x.Device);
                x.Backend.CausalConv1dBackward(x, weight, bias, silu, y.Grad!, dx, dw, db);
                Tape.Accumulate(x, dx, owned: true);
                Tape.Accumulate(weight, dw, owned: true);
                if (bias is not null) Tape.Accumulate(bias, db!, owned: true);
            }, y);
        return (y, y16);
    }

    /// <summary>One token per stream: x [batch, D] → y [batch, D]; <paramref name="convState"/> [batch, D, K−1] is shifted in place.</summary>
    public static Tensor CausalConv1dStep(Tensor x, Tensor convState, Tensor weight, Tensor? bias, bool silu = false)
    {
        const string op = "CausalConv1d.Step";
        OpCheck.F32(op, "x", x);
        OpCheck.Rank(op, "x", x, 2);
        int batch = x.Shape[0], d = x.Shape[1];
        if (weight.Rank != 3 || weight.Shape[0] != d || weight.Shape[1] != 1 || weight.Shape[2] < 1)
            throw new ArgumentException($"{op}: weight must have shape [{d}, 1, K] for x {x.Shape}, got {weight.Shape}");
        OpCheck.Shape(op, "convState", convState, batch, d, weight.Shape[2] - 1);
        if (bias is not null) OpCheck.Shape(op, "bias", bias, d);
        var y = Tensor.Empty(x.Shape, DType.F32, x.Device);
        x.Backend.CausalConv1dStep(x, convState, weight, bias, silu, y);
        return y;
    }

    /// <summary>convState [batch, D, W] ← x [batch, L, D]'s last W rows per stream, transposed (zeros before the start when
    /// L &lt; W): the conv state after a prefill, made where x is (no tape).</summary>
    public static void CausalConv1dSaveState(Tensor x, Tensor convState)
    {
        const string op = "CausalConv1d.SaveState";
        OpCheck.F32(op, "x", x);
        OpCheck.Rank(op, "x", x, 3);
        OpCheck.F32(op, "convState", convState);
        OpCheck.Rank(op, "convState", convState, 3);
        OpCheck.Shape(op, "convState", convState, x.Shape[0], x.Shape[2], convState.Shape[2]);
        OpCheck.SameDevice(op, x, convState);
        x.Backend.CausalConv1dSaveState(x, convState);
    }

    /// <summary>convState [batch, D, W] → its inputs as rows [batch, W, D], oldest first (no tape: a constant).</summary>
    public static Tensor CausalConv1dStateRows(Tensor convState)
    {
        const string op = "CausalConv1d.StateRows";
        OpCheck.F32(op, "convState", convState);
        OpCheck.Rank(op, "convState", convState, 3);
        var rows = Tensor.Empty(new Shape(convState.Shape[0], convState.Shape[2], convState.Shape[1]), DType.F32, convState.Device);
        convState.Backend.CausalConv1dStateRows(convState, rows);
        return rows;
    }
}
