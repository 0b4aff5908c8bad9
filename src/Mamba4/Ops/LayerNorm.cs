using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Over the last axis: μ = mean x, σ² = mean (x − μ)², x̂ = (x − μ)/√(σ² + ε), y = x̂·w + b.
/// With g = dy·w:  dx = (g − mean g − x̂·mean(g·x̂)) / √(σ² + ε);  dw = Σ_rows dy·x̂;  db = Σ_rows dy.
/// </summary>
public static partial class F
{
    public static Tensor LayerNorm(Tensor x, Tensor weight, Tensor? bias, float eps = 1e-5f)
    {
        OpCheck.F32("LayerNorm", "x", x);
        int d = x.Shape.Last;
        OpCheck.Shape("LayerNorm", "weight", weight, d);
        if (bias is not null) OpCheck.Shape("LayerNorm", "bias", bias, d);
        var rows = new Shape((int)x.Shape.Rows);
        var y = Tensor.Empty(x.Shape, x.DType, x.Device);
        var mean = Tensor.Empty(rows, x.DType, x.Device);
        var rstd = Tensor.Empty(rows, x.DType, x.Device);
        x.Backend.LayerNormForward(x, weight, bias, eps, y, mean, rstd);
        if (Tape.ShouldRecord(x, weight, bias))
            Tape.Record("LayerNorm", () =>
            {
                var dx = Tensor.Empty(x.Shape, x.DType, x.Device);
                var dw = Tensor.Empty(weight.Shape, x.DType, x.Device);
                var db = bias is null ? null : Tensor.Empty(bias.Shape, x.DType, x.Device);
                x.Backend.LayerNormBackward(y.Grad!, x, weight, mean, rstd, dx, dw, db);
                Tape.Accumulate(x, dx, owned: true);
                Tape.Accumulate(weight, dw, owned: true);
                if (bias is not null) Tape.Accumulate(bias, db!, owned: true);
            }, y);
        return y;
    }
}
