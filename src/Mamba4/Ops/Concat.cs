using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Concatenation and splitting along the last axis (x_proj's output splits into dt, B, C; in_proj's into x, z).
/// y = [a₁ | a₂ | …]:  daᵢ = the columns of dy that aᵢ filled.   Split is the inverse.
/// </summary>
public static partial class F
{
    public static Tensor ConcatLastAxis(params Tensor[] parts)
    {
        if (parts.Length == 0) throw new ArgumentException("Concat: no tensors");
        var first = parts[0];
        int total = 0;
        foreach (var p in parts)
        {
            OpCheck.F32("Concat", "part", p);
            if (p.Rank != first.Rank || p.Shape.Rows != first.Shape.Rows || p.Shape.WithLast(1) != first.Shape.WithLast(1))
                throw new ArgumentException($"Concat: shapes {first.Shape} and {p.Shape} differ outside the last axis");
            total += p.Shape.Last;
        }
        var y = Tensor.Empty(first.Shape.WithLast(total), first.DType, first.Device);
        int col = 0;
        foreach (var p in parts)
        {
            first.Backend.CopyColumns(p, 0, y, col, p.Shape.Last);
            col += p.Shape.Last;
        }
        if (Tape.ShouldRecord(parts))
            Tape.Record("Concat", () =>
            {
                int c = 0;
                foreach (var p in parts)
                {
                    if (p.RequiresGrad)
                    {
                        var dp = Tensor.Empty(p.Shape, p.DType, p.Device);
                        p.Backend.CopyColumns(y.Grad!, c, dp, 0, p.Shape.Last);
                        Tape.Accumulate(p, dp, owned: true);
                    }
                    c += p.Shape.Last;
                }
            }, y);
        return y;
    }

    public static Tensor[] SplitLastAxis(Tensor x, params int[] sizes)
    {
        OpCheck.F32("Split", "x", x);
        if (sizes.Sum() != x.Shape.Last || sizes.Any(s => s < 0))
            throw new ArgumentException($"Split: sizes [{string.Join(", ", sizes)}] do not add up to the last axis of {x.Shape}");
        var parts = new Tensor[sizes.Length];
        int col = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            parts[i] = Tensor.Empty(x.Shape.WithLast(sizes[i]), x.DType, x.Device);
            x.Backend.CopyColumns(x, col, parts[i], 0, sizes[i]);
            col += sizes[i];
        }
        if (Tape.ShouldRecord(x))
            Tape.Record("Split", () =>
            {
                var dx = Tensor.Zeros(x.Shape, x.DType, x.Device);
                int c = 0;
                for (int i = 0; i < parts.Length; i++)
                {
                    if (parts[i].Grad is { } g) x.Backend.CopyColumns(g, 0, dx, c, sizes[i]);
                    c += sizes[i];
                }
                Tape.Accumulate(x, dx, owned: true);
            }, parts);
        return parts;
    }
}
