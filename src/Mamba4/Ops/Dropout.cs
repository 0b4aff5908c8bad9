using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Inverted dropout: y = x·m/(1 − p), m ~ Bernoulli(1 − p), drawn from a counter-based generator
/// keyed by <c>seed</c> (same seed ⇒ same mask on any thread count).  dx = dy·m/(1 − p).
/// Identity when not training or p = 0.
/// </summary>
public static partial class F
{
    public static Tensor Dropout(Tensor x, float p, ulong seed, bool training = true)
    {
        if (p is < 0f or >= 1f) throw new ArgumentOutOfRangeException(nameof(p), p, "Dropout: p must be in [0, 1)");
        OpCheck.F32("Dropout", "x", x);
        if (!training || p == 0f) return x;
        var y = Tensor.Empty(x.Shape, x.DType, x.Device);
        var mask = Tensor.Empty(x.Shape, DType.U8, x.Device);
        x.Backend.DropoutForward(x, p, seed, y, mask);
        if (Tape.ShouldRecord(x))
            Tape.Record("Dropout", () =>
            {
                var dx = Tensor.Empty(x.Shape, x.DType, x.Device);
                x.Backend.DropoutBackward(y.Grad!, mask, p, dx);
                Tape.Accumulate(x, dx, owned: true);
            }, y);
        return y;
    }
}
