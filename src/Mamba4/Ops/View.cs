using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>Free views: reshape and leading-axis slice share storage; their gradient is the
/// upstream gradient reshaped (or placed into the sliced rows of a zero tensor).</summary>
public static partial class F
{
    public static Tensor Reshape(Tensor x, int[] shape)
    {
        var dims = (int[])shape.Clone();
        int infer = Array.IndexOf(dims, -1);
        long known = 1;
        for (int i = 0; i < dims.Length; i++) if (i != infer) known *= dims[i];
        if (infer >= 0)
        {
            if (known == 0 || x.NumElements % known != 0)
                throw new ArgumentException($"cannot reshape {x.Shape} to [{string.Join(", ", shape)}]");
            dims[infer] = (int)(x.NumElements / known);
        }
        var s = new Shape(dims);
        if (s.NumElements != x.NumElements) throw new ArgumentException($"cannot reshape {x.Shape} ({x.NumElements} elements) to {s}");
        var y = x.ViewOf(s, 0);
        if (Tape.ShouldRecord(x))
            Tape.Record("Reshape", () =>
            {
                using var g = y.Grad!.ViewOf(x.Shape, 0);
                Tape.Accumulate(x, g, owned: false);
            }, y);
        return y;
    }

    public static Tensor Slice(Tensor x, int start, int length)
    {
        if (x.Rank == 0) throw new ArgumentException("cannot slice a scalar");
        if (start < 0 || length < 0 || start + length > x.Shape[0])
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + length}) are outside axis 0 of {x.Shape}");
        var dims = x.Shape.ToArray();
        long rowBytes = x.NumElements / Math.Max(1, dims[0]) * x.DType.ElementSize();
        dims[0] = length;
        var y = x.ViewOf(new Shape(dims), start * rowBytes);
        if (Tape.ShouldRecord(x))
            Tape.Record("Slice", () =>
            {
                var g = Tensor.Zeros(x.Shape, x.DType, x.Device);
                using (var rows = g.ViewOf(y.Shape, start * rowBytes)) g.Backend.AddInPlace(rows, y.Grad!, 1f);
                Tape.Accumulate(x, g, owned: true);
            }, y);
        return y;
    }
}
