using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Over the last axis: r = 1/√(mean x² + ε), x̂ = x·r, y = x̂·w   (HF MambaRMSNorm).
/// With g = dy·w:  dx = r·(g − x̂·mean(g·x̂));  dw = Σ_rows dy·x̂.
/// y may be asked in BF16 (<c>outputType</c>: the operand of BF16 products, rounded from the same F32 values); the backward
/// reads x, not y, and its gradients stay F32.
/// </summary>
public static partial class F
{
    public static Tensor RmsNorm(Tensor x, Tensor weight, float eps = 1e-5f, DType? outputType = null)
    {
        OpCheck.F32("RmsNorm", "x", x);
        OpCheck.Shape("RmsNorm", "weight", weight, x.Shape.Last);
        if (outputType is { } t && t is not (DType.F32 or DType.BF16))
            throw new ArgumentException($"RmsNorm: outputType must be F32 or BF16, got {t}");
        var y = Tensor.Empty(x.Shape, outputType ?? x.DType, x.Device);
        var rstd = Tensor.Empty(new Shape((int)x.Shape.Rows), x.DType, x.Device);
        x.Backend.RmsNormForward(x, weight, eps, y, rstd);
        if (Tape.ShouldRecord(x, weight))
            Tape.Record("RmsNorm", () =>
            {
                // x's gradient added to where it has one (the residual stream's, from the block's addition)
                var (dx, beta) = x.RequiresGrad ? Tape.GradientDestination(x) : (Tensor.Empty(x.Shape, x.DType, x.Device), 0f);
                using var dy32 = y.Grad!.DType == DType.F32 ? null : y.Grad!.To(DType.F32);   // (a BF16 y's gradient is F32 already)
                var dw = Tensor.Empty(weight.Shape, x.DType, x.Device);
                x.Backend.RmsNormBackward(dy32 ?? y.Grad!, x, weight, rstd, dx, dw, accumulate: beta == 1f);
                if (beta == 0f) Tape.Accumulate(x, dx, owned: true);
                Tape.Accumulate(weight, dw, owned: true);
            }, y);
        return y;
    }
}
