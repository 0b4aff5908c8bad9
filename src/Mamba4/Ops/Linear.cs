using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// y = x Wᵀ + b  (PyTorch nn.Linear: x [..., in], weight [out, in], bias [out]).
/// dx = dy W;   dW = Σ dyᵀ x (over all leading axes);   db = Σ_rows dy.
/// x is F32, or BF16 (an activation its producer wrote in BF16 for BF16 products: y and dx stay F32). With BF16 products
/// (IBackend.ActivationType BF16) and no bias gradient, y's gradient may be made in BF16 by the op that makes it
/// (Tensor.NarrowGradient): the backward only multiplies with it, and would round an F32 one to BF16 first.
/// A BF16, F16 or I8 weight (inference only: <see cref="NarrowWeightCheck"/>) is read in its own type with F32 sums:
/// y[r, o] = s[o] · Σ_i x[r, i] · W[o, i], s the I8 weight's <see cref="Tensor.RowScale"/> (1 otherwise).
/// </summary>
public static partial class F
{
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        if (x.DType != DType.BF16) OpCheck.F32("Linear", "x", x);
        if (weight.DType.IsNarrowWeight())
        {
            if (x.DType != DType.BF16) return NarrowLinear(x, weight, bias);
            NarrowWeightCheck("Linear", weight, x, bias);   // (inference only: the tape is refused for x itself, not its copy)
            using var wide = x.To(DType.F32);
            return NarrowLinear(wide, weight, bias);
        }
        OpCheck.F32("Linear", "weight", weight);
        x = CheckLinear(x, weight, bias);
        int outFeatures = weight.Shape[0];
        bool record = Tape.ShouldRecord(x, weight, bias), keep = record && weight.RequiresGrad;
        var operand = ProductInput(x, round: keep);
        var y = Tensor.Empty(x.Shape.WithLast(outFeatures), DType.F32, x.Device);   // y and x's gradient are F32 either way
        x.Backend.Gemm(operand, false, weight, true, y, 1f, 0f);
        if (bias is not null) x.Backend.AddRowVector(y, bias);
        operand = KeptForWeightGradient(x, operand, keep);
        if (!record) return y;
        AllowNarrowGradients(x, bias, y);
        Tape.Record("Linear", () =>
        {
            using var kept = operand != x ? operand : null;   // the forward's copy, released with this node
            var dy = y.Grad!;
            // rounded once for both products where the backend rounds operands (BF16 products), else null
            using var dy16 = x.RequiresGrad && weight.RequiresGrad ? x.Backend.ProductOperand(dy) : null;
            if (x.RequiresGrad)
            {
                var (dx, beta) = Tape.GradientDestination(x, DType.F32);   // added to x's gradient by the product where it has one
                x.Backend.Gemm(dy16 ?? dy, false, weight, false, dx, 1f, beta);
                if (beta == 0f) Tape.Accumulate(x, dx, owned: true);
            }
            if (weight.RequiresGrad)
            {
                var dw = Tensor.Empty(weight.Shape, weight.DType, weight.Device);
                x.Backend.Gemm(dy16 ?? dy, true, operand, false, dw, 1f, 0f);
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

    /// <summary>
    /// nn.Linear with its output split along the last axis, without the joined output or the copies: part i is
    /// y_i = x W_iᵀ (+ b_i), W_i the rows [o_i, o_i + sizes[i]) of weight (a view), b_i those of bias. Backward:
    /// dx = Σ_i dy_i W_i (parts without a gradient skipped), dW_i = Σ dy_iᵀ x into the rows of one dW, db_i = Σ_rows dy_i.
    /// Equals SplitLastAxis(Linear(x, weight, bias), sizes), which a BF16/F16/I8 weight takes; x F32 or BF16 as Linear's. Each part's product reads x
    /// again: worth it where the outputs are wide beside x (in_proj, Mamba-2's in_proj, qkv: 0.96–0.97× the time of Linear
    /// + split, forward and backward, `bench prefill` on the CPU), not for narrow ones (x_proj's 48 + 16 + 16 from 1,536:
    /// 1.26×, so it keeps the split).
    /// </summary>
    public static Tensor[] LinearSplit(Tensor x, Tensor weight, Tensor? bias, params int[] sizes)
    {
        if (weight.DType.IsNarrowWeight()) return SplitLastAxis(Linear(x, weight, bias), sizes);
        if (x.DType != DType.BF16) OpCheck.F32("Linear", "x", x);
        OpCheck.F32("Linear", "weight", weight);
        x = CheckLinear(x, weight, bias);
        int outFeatures = weight.Shape[0], inFeatures = weight.Shape[1];
        if (sizes.Sum() != outFeatures || sizes.Any(s => s < 0))
            throw new ArgumentException($"LinearSplit: sizes [{string.Join(", ", sizes)}] must be ≥ 0 and add up to weight {weight.Shape}'s {outFeatures} outputs");
        var (rows, biases, parts) = (new Tensor[sizes.Length], new Tensor?[sizes.Length], new Tensor[sizes.Length]);
        var firstRow = new long[sizes.Length];
        for (int i = 1; i < sizes.Length; i++) firstRow[i] = firstRow[i - 1] + sizes[i - 1];
        int elementSize = weight.DType.ElementSize();
        bool record = Tape.ShouldRecord(x, weight, bias), keep = record && weight.RequiresGrad;
        var operand = ProductInput(x, round: sizes.Length > 1 || keep);   // an F32 x rounded once for every part (and dW)
        using var weight16 = sizes.Length > 1 ? x.Backend.ProductOperand(weight) : null;   // and the weight (BF16 products)
        for (int i = 0; i < sizes.Length; i++)
        {
            rows[i] = weight.ViewOf(new Shape(sizes[i], inFeatures), firstRow[i] * inFeatures * elementSize);
            biases[i] = bias?.ViewOf(new Shape(sizes[i]), firstRow[i] * elementSize);
            parts[i] = Tensor.Empty(x.Shape.WithLast(sizes[i]), DType.F32, x.Device);
            using (var rows16 = weight16?.ViewOf(new Shape(sizes[i], inFeatures), firstRow[i] * inFeatures * DType.BF16.ElementSize()))
                x.Backend.Gemm(operand, false, rows16 ?? rows[i], true, parts[i], 1f, 0f);
            if (biases[i] is { } b) { x.Backend.AddRowVector(parts[i], b); b.Dispose(); }
        }
        operand = KeptForWeightGradient(x, operand, keep);
        if (!record)
        {
            foreach (var view in rows) view.Dispose();
            return parts;
        }
        AllowNarrowGradients(x, bias, parts);
        Tape.Record("LinearSplit", () =>
        {
            // a part at a time: its gradient rounded once for dx and dW where the backend rounds operands (BF16 products),
            // else null; x's operand is the forward's. dx sums the parts in order, as one product each.
            var (dx, beta) = x.RequiresGrad ? Tape.GradientDestination(x, DType.F32) : (null, 0f);   // as Linear's dx
            // rows of parts that received no gradient stay zero
            Tensor Rows(Shape shape) => parts.All(p => p.Grad is not null) ? Tensor.Empty(shape, DType.F32, x.Device) : Tensor.Zeros(shape, DType.F32, x.Device);
            var dw = weight.RequiresGrad ? Rows(weight.Shape) : null;
            var db = bias is { RequiresGrad: true } ? Rows(bias.Shape) : null;
            try
            {
                bool written = false;
                for (int i = 0; i < parts.Length; i++)
                {
                    if (parts[i].Grad is not { } dy) continue;
                    using var dy16 = dx is not null && dw is not null ? x.Backend.ProductOperand(dy) : null;
                    if (dx is not null) { x.Backend.Gemm(dy16 ?? dy, false, rows[i], false, dx, 1f, written ? 1f : beta); written = true; }
                    if (dw is not null)
                        using (var dwRows = dw.ViewOf(rows[i].Shape, firstRow[i] * inFeatures * elementSize))
                            x.Backend.Gemm(dy16 ?? dy, true, operand, false, dwRows, 1f, 0f);
                    if (db is not null)
                        using (var dbRows = db.ViewOf(new Shape(sizes[i]), firstRow[i] * elementSize))
                            x.Backend.SumRows(dy, dbRows, accumulate: false);
                }
                if (dx is not null && beta == 0f) Tape.Accumulate(x, dx, owned: true);   // (the node runs only when a part has a gradient)
                if (dw is not null) Tape.Accumulate(weight, dw, owned: true);
                if (db is not null) Tape.Accumulate(bias!, db, owned: true);
            }
            finally
            {
                foreach (var view in rows) view.Dispose();   // the weight's views: no reference on its storage outlives the backward
                if (operand != x) operand.Dispose();
            }
        }, parts);
        return parts;
    }

    /// <summary>The products' operand for x: a BF16 x (an activation written in BF16 for BF16 products: the scan's output) as
    /// it is, or its F32 copy where the backend's products read F32; an F32 x rounded once here where the products are BF16
    /// and <paramref name="round"/> (several products, or a weight gradient to come, which then reads the same copy instead
    /// of rounding x again); else x. Not x: the caller's to dispose.</summary>
    private static Tensor ProductInput(Tensor x, bool round) =>
        x.DType == DType.BF16 ? x.Backend.ProductOperandType != DType.BF16 ? x.To(DType.F32) : x
        : round ? x.Backend.ProductOperand(x) ?? x : x;

    /// <summary>The forward's operand, kept for the weight gradient when <paramref name="keep"/>, else released now (x).</summary>
    private static Tensor KeptForWeightGradient(Tensor x, Tensor operand, bool keep)
    {
        if (keep || operand == x) return operand;
        operand.Dispose();
        return x;
    }

    /// <summary>With BF16 products and no bias gradient (whose row sums want F32), the backward only multiplies with the
    /// outputs' gradients, rounding F32 ones first: the ops that make them may write them in BF16 (Tensor.NarrowGradient).</summary>
    private static void AllowNarrowGradients(Tensor x, Tensor? bias, params ReadOnlySpan<Tensor> outputs)
    {
        if (bias is { RequiresGrad: true } || x.Backend.ActivationType != DType.BF16) return;
        foreach (var y in outputs) y.NarrowGradient = DType.BF16;
    }

    /// <summary>
    /// into += x·Wᵀ (+ b), in place, without gradients: the residual stream of a prefill, where out_proj's product adds onto h
    /// in cuBLAS's epilogue (β = 1; the GEMM reads h once more) instead of writing its own output for a pass that adds the two
    /// — Add(into, Linear(x, W, b)) but for the order of the last addition. A BF16/F16/I8 weight takes Linear, then Add.
    /// </summary>
    public static Tensor LinearAccumulate(Tensor x, Tensor weight, Tensor? bias, Tensor into)
    {
        const string op = "LinearAccumulate";
        if (Tape.ShouldRecord(x, weight, bias, into))
            throw new InvalidOperationException($"{op}: it writes {into.Shape} in place, which a gradient cannot pass through; use Add(h, Linear(x, W))");
        OpCheck.F32(op, "into", into);
        OpCheck.SameDevice(op, into, weight);
        if (weight.DType.IsNarrowWeight())
        {
            using var y = Linear(x, weight, bias);
            OpCheck.Shape(op, "into", into, y.Shape.ToArray());
            into.Backend.Add(into, y, into);
            return into;
        }
        if (x.DType != DType.BF16) OpCheck.F32(op, "x", x);
        OpCheck.F32(op, "weight", weight);
        x = CheckLinear(x, weight, bias);
        OpCheck.Shape(op, "into", into, x.Shape.WithLast(weight.Shape[0]).ToArray());
        var operand = ProductInput(x, round: false);
        try { x.Backend.Gemm(operand, false, weight, true, into, 1f, 1f); }
        finally { if (operand != x) operand.Dispose(); }
        if (bias is not null) x.Backend.AddRowVector(into, bias);
        return into;
    }

    /// <summary>A weight [out, in] (and bias [out]) for x [..., in]: x on the weight's device (copied there if needed).</summary>
    private static Tensor CheckLinear(Tensor x, Tensor weight, Tensor? bias)
    {
        OpCheck.Rank("Linear", "weight", weight, 2);
        x = OpCheck.OnDeviceOf(x, weight);
        OpCheck.SameDevice("Linear", x, weight);
        int outFeatures = weight.Shape[0], inFeatures = weight.Shape[1];
        if (x.Rank == 0 || x.Shape.Last != inFeatures)
            throw new ArgumentException($"Linear: x {x.Shape} must end in {inFeatures} features to match weight {weight.Shape}{(weight.Name is null ? "" : $" ({weight.Name})")}");
        if (bias is not null) OpCheck.Shape("Linear", "bias", bias, outFeatures);
        return x;
    }

    private static Tensor NarrowLinear(Tensor x, Tensor weight, Tensor? bias)
    {
        NarrowWeightCheck("Linear", weight, x, bias);
        x = CheckLinear(x, weight, bias);
        var y = Tensor.Empty(x.Shape.WithLast(weight.Shape[0]), DType.F32, x.Device);
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
