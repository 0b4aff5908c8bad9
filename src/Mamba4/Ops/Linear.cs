using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// y = x Wᵀ + b  (PyTorch nn.Linear: x [..., in], weight [out, in], bias [out]).
/// dx = dy W;   dW = Σ dyᵀ x (over all leading axes);   db = Σ_rows dy.
/// A BF16, F16 or I8 weight (inference only: <see cref="NarrowWeightCheck"/>) is read in its own type with F32 sums:
/// y[r, o] = s[o] · Σ_i x[r, i] · W[o, i], s the I8 weight's <see cref="Tensor.RowScale"/> (1 otherwise).
/// </summary>
public static partial class F
{
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        OpCheck.F32("Linear", "x", x);
        if (weight.DType.IsNarrowWeight()) return NarrowLinear(x, weight, bias);
        OpCheck.F32("Linear", "weight", weight);
        OpCheck.Rank("Linear", "weight", weight, 2);
        x = OpCheck.OnDeviceOf(x, weight);
        OpCheck.SameDevice("Linear", x, weight);
        int outFeatures = weight.Shape[0], inFeatures = weight.Shape[1];
        if (x.Rank == 0 || x.Shape.Last != inFeatures)
            throw new ArgumentException($"Linear: x {x.Shape} must end in {inFeatures} features to match weight {weight.Shape}{(weight.Name is null ? "" : $" ({weight.Name})")}");
        if (bias is not null) OpCheck.Shape("Linear", "bias", bias, outFeatures);
        var y = Tensor.Empty(x.Shape.WithLast(outFeatures), x.DType, x.Device);
        x.Backend.Gemm(x, false, weight, true, y, 1f, 0f);
        if (bias is not null) x.Backend.AddRowVector(y, bias);
        if (Tape.ShouldRecord(x, weight, bias))
            Tape.Record("Linear", () =>
            {
                var dy = y.Grad!;
                if (x.RequiresGrad)
                {
                    var dx = Tensor.Empty(x.Shape, x.DType, x.Device);
                    x.Backend.Gemm(dy, false, weight, false, dx, 1f, 0f);
                    Tape.Accumulate(x, dx, owned: true);
                }
                if (weight.RequiresGrad)
                {
                    var dw = Tensor.Empty(weight.Shape, weight.DType, weight.Device);
                    x.Backend.Gemm(dy, true, x, false, dw, 1f, 0f);
                    Tape.Accumulate(weight, dw, owned: true);
                }
                if (bias is { RequiresGrad: true })
                {
                    var db = Tensor.Empty(bias.Shape, bias.DType, bias.Device);
                    x.Backend.SumRows(dy, db, accumulate: false);
                    Tape.Accumulate(bias, db, owned: true);
                }
            }, y);
        return y;
    }

    private static Tensor NarrowLinear(Tensor x, Tensor weight, Tensor? bias)
    {
        OpCheck.Rank("Linear", "weight", weight, 2);
        NarrowWeightCheck("Linear", weight, x, bias);
        x = OpCheck.OnDeviceOf(x, weight);
        OpCheck.SameDevice("Linear", x, weight);
        int outFeatures = weight.Shape[0], inFeatures = weight.Shape[1];
        if (x.Rank == 0 || x.Shape.Last != inFeatures)
            throw new ArgumentException($"Linear: x {x.Shape} must end in {inFeatures} features to match weight {weight.Shape}{(weight.Name is null ? "" : $" ({weight.Name})")}");
        if (bias is not null) OpCheck.Shape("Linear", "bias", bias, outFeatures);
        var y = Tensor.Empty(x.Shape.WithLast(outFeatures), DType.F32, x.Device);
        x.Backend.GemmNarrowWeight(x, weight, y);
        if (bias is not null) x.Backend.AddRowVector(y, bias);
        return y;
    }

    /// <summary>Low-precision weights are for inference: with the tape recording (a gradient asked of any input) it is a
    /// one-line error naming the weight, never a silent F32 gradient of rounded weights.</summary>
    internal static void NarrowWeightCheck(string op, Tensor weight, params ReadOnlySpan<Tensor?> others)
    {
        if (GradMode.IsEnabled && (weight.RequiresGrad || Tape.ShouldRecord(others)))
            throw new InvalidOperationException(
                $"{op}: weight {weight.Name}{weight.Shape} is {weight.DType}: low-precision weights are inference only (no gradient); load the model with --dtype f32 to train it");
    }
}
