using Mamba4.Autograd;

namespace Mamba4.Ops;

/// <summary>
/// The Mamba output gate: out = y·silu(z).
/// dy = dout·silu(z);   dz = dout·y·σ(z)(1 + z(1 − σ(z))).
/// </summary>
public static partial class F
{
    public static Tensor Gate(Tensor y, Tensor z)
    {
        OpCheck.F32("Gate", "y", y);
        OpCheck.F32("Gate", "z", z);
        OpCheck.SameShape("Gate", "y", y, "z", z);
        var output = Tensor.Empty(y.Shape, y.DType, y.Device);
        y.Backend.GateForward(y, z, output);
        if (Tape.ShouldRecord(y, z))
            Tape.Record("Gate", () =>
            {
                var dy = Tensor.Empty(y.Shape, y.DType, y.Device);
                var dz = Tensor.Empty(z.Shape, z.DType, z.Device);
                y.Backend.GateBackward(y, z, output.Grad!, dy, dz);
                Tape.Accumulate(y, dy, owned: true);
                Tape.Accumulate(z, dz, owned: true);
            }, output);
        return output;
    }
}
