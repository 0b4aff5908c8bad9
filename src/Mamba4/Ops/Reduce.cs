using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Reductions to a scalar.  y = Σ x: dx = dy·1;   y = mean x = Σ x / n: dx = dy/n.
/// SumRows: y[j] = Σ_r x[r, j] over all leading axes; dx[r, j] = dy[j].
/// </summary>
public static partial class F
{
    public static Tensor Sum(Tensor x) => SumScaled(x, 1f, "Sum");

    public static Tensor Mean(Tensor x) => SumScaled(x, 1f / Math.Max(1, x.NumElements), "Mean");

    private static Tensor SumScaled(Tensor x, float scale, string op)
    {
        OpCheck.F32(op, "x", x);
        var y = Tensor.Empty(new Shape(), x.DType, x.Device);
        x.Backend.Sum(x, y);
        if (scale != 1f) x.Backend.Scale(y, scale, y);
        if (Tape.ShouldRecord(x))
            Tape.Record(op, () =>
            {
                var dx = Tensor.Empty(x.Shape, x.DType, x.Device);
                x.Backend.Fill(dx, y.Grad!.Item() * scale);
                Tape.Accumulate(x, dx, owned: true);
            }, y);
        return y;
    }

    public static Tensor SumRows(Tensor x)
    {
        OpCheck.F32("SumRows", "x", x);
        var y = Tensor.Empty(new Shape(x.Shape.Last), x.DType, x.Device);
        x.Backend.SumRows(x, y, accumulate: false);
        if (Tape.ShouldRecord(x))
            Tape.Record("SumRows", () =>
            {
                var dx = Tensor.Zeros(x.Shape, x.DType, x.Device);
                x.Backend.AddRowVector(dx, y.Grad!);
                Tape.Accumulate(x, dx, owned: true);
            }, y);
        return y;
    }
}
