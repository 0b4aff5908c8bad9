using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Over the last axis: r = 1/√(mean x² + ε), x̂ = x·r, y = x̂·w   (HF MambaRMSNorm).
/// With g = dy·w:  dx = r·(g − x̂·mean(g·x̂));  dw = Σ_rows dy·x̂.
/// </summary>
public static partial class F
{
    public static Tensor RmsNorm(Tensor x, Tensor weight, float eps = 1e-5f)
    {
        OpCheck.F32("RmsNorm", "x", x);
        OpCheck.Shape("RmsNorm", "weight", weight, x.Shape.Last);
        var y = Tensor.Empty(x.Shape, x.DType, x.Device);
        var rstd = Tensor.Empty(new Shape((int)x.Shape.Rows), x.DType, x.Device);
        x.Backend.RmsNormForward(x, weight, eps, y, rstd);
        if (Tape.ShouldRecord(x, weight))
            Tape.Record("RmsNorm", () =>
            {
                // x's gradient added to where it has one (the residual stream's, from the block's addition)
                var (dx, beta) = x.RequiresGrad ? Tape.GradientDestination(x) : (Tensor.Empty(x.Shape, x.DType, x.Device), 0f);
                var dw = Tensor.Empty(weight.Shape, x.DType, x.Device);
                x.Backend.RmsNormBackward(y.Grad!, x, weight, rstd, dx, dw, accumulate: beta == 1f);
                if (beta == 0f) Tape.Accumulate(x, dx, owned: true);
                Tape.Accumulate(weight, dw, owned: true);
            }, y);
        return y;
    }
}
