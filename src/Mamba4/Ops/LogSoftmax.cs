using Mamba4.Autograd;

namespace Mamba4.Ops;

/// <summary>
/// Log-softmax over the last axis:
///   y_j = x_j − lse,  lse = m + log Σ_k exp(x_k − m),  m = max_k x_k   (max-shifted, stable for any finite x)
///   dx_j = dy_j − exp(y_j) · Σ_k dy_k                                    (softmax recovered from y itself)
/// </summary>
public static partial class F
{
    public static Tensor LogSoftmax(Tensor x)
    {
        const string op = "LogSoftmax";
        OpCheck.F32(op, "x", x);
        if (x.Rank < 1 || x.Shape.Last < 1)
            throw new ArgumentException($"{op}: x must have shape [..., V] with V ≥ 1, got {x.Shape}");
        var y = Tensor.Empty(x.Shape, x.DType, x.Device);
        x.Backend.LogSoftmaxForward(x, y);
        if (Tape.ShouldRecord(x))
            Tape.Record(op, () =>
            {
                var dx = Tensor.Empty(x.Shape, x.DType, x.Device);
                x.Backend.LogSoftmaxBackward(y, y.Grad!, dx);
                Tape.Accumulate(x, dx, owned: true);
            }, y);
        return y;
    }
}
