using Mamba4.Autograd;

namespace Mamba4.Ops;

/// <summary>
/// Same-shape element-wise arithmetic.
///   y = a + b:  da = dy, db = dy          y = a·b:  da = dy·b, db = dy·a          y = αx:  dx = α·dy
/// </summary>
public static partial class F
{
    public static Tensor Add(Tensor a, Tensor b)
    {
        (a, b) = (OpCheck.OnDeviceOf(a, b), OpCheck.OnDeviceOf(b, a));
        Check("Add", a, b);
        var y = Tensor.Empty(a.Shape, a.DType, a.Device);
        a.Backend.Add(a, b, y);
        if (Tape.ShouldRecord(a, b))
            Tape.Record("Add", () =>
            {
                // y's gradient dies with this node unless retained: a takes it over instead of a copy (b is served first,
                // so the tensor is intact when b reads it; a = b adds it to the copy b made)
                var g = y.Grad!;
                Tape.Accumulate(b, g, owned: false);
                if (y.RetainGrad) Tape.Accumulate(a, g, owned: false);
                else
                {
                    y.Grad = null;
                    Tape.Accumulate(a, g, owned: true);
                }
            }, y);
        return y;
    }

    public static Tensor Mul(Tensor a, Tensor b)
    {
        (a, b) = (OpCheck.OnDeviceOf(a, b), OpCheck.OnDeviceOf(b, a));
        Check("Mul", a, b);
        var y = Tensor.Empty(a.Shape, a.DType, a.Device);
        a.Backend.Mul(a, b, y);
        if (Tape.ShouldRecord(a, b))
            Tape.Record("Mul", () =>
            {
                if (a.RequiresGrad) Tape.Accumulate(a, Product(y.Grad!, b), owned: true);
                if (b.RequiresGrad) Tape.Accumulate(b, Product(y.Grad!, a), owned: true);
            }, y);
        return y;
    }

    public static Tensor Scale(Tensor x, float alpha)
    {
        OpCheck.F32("Scale", "x", x);
        var y = Tensor.Empty(x.Shape, x.DType, x.Device);
        x.Backend.Scale(x, alpha, y);
        if (Tape.ShouldRecord(x))
            Tape.Record("Scale", () =>
            {
                var dx = Tensor.Empty(x.Shape, x.DType, x.Device);
                x.Backend.Scale(y.Grad!, alpha, dx);
                Tape.Accumulate(x, dx, owned: true);
            }, y);
        return y;
    }

    private static Tensor Product(Tensor a, Tensor b)
    {
        var r = Tensor.Empty(a.Shape, a.DType, a.Device);
        a.Backend.Mul(a, b, r);
        return r;
    }

    private static void Check(string op, Tensor a, Tensor b)
    {
        OpCheck.F32(op, "a", a);
        OpCheck.F32(op, "b", b);
        OpCheck.SameDevice(op, a, b);
        OpCheck.SameShape(op, "a", a, "b", b);
    }
}
