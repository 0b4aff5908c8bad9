using Mamba4.Autograd;
using Mamba4.Backends;

namespace Mamba4.Ops;

/// <summary>
/// Element-wise activations.
///   silu(x) = x·σ(x)                     silu'(x) = σ(x)(1 + x(1 − σ(x)))
///   gelu(x) = ½x(1 + erf(x/√2))          gelu'(x) = Φ(x) + x·φ(x)        (erf form, PyTorch's default)
///   softplus(x) = log(1 + eˣ), x if x>20 softplus'(x) = σ(x)
///   exp(x)                               exp'(x) = exp(x)
/// </summary>
public static partial class F
{
    public static Tensor SiLU(Tensor x) => Activate(Activation.SiLU, x);
    public static Tensor Gelu(Tensor x) => Activate(Activation.Gelu, x);
    public static Tensor Softplus(Tensor x) => Activate(Activation.Softplus, x);
    public static Tensor Exp(Tensor x) => Activate(Activation.Exp, x);

    public static Tensor Activate(Activation kind, Tensor x)
    {
        OpCheck.F32(kind.ToString(), "x", x);
        var y = Tensor.Empty(x.Shape, x.DType, x.Device);
        x.Backend.ActivationForward(kind, x, y);
        if (Tape.ShouldRecord(x))
            Tape.Record(kind.ToString(), () =>
            {
                var dx = Tensor.Empty(x.Shape, x.DType, x.Device);
                x.Backend.ActivationBackward(kind, x, y.Grad!, dx);
                Tape.Accumulate(x, dx, owned: true);
            }, y);
        return y;
    }
}
