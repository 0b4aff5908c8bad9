using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Log-softmax over the last axis; x viewed as [rows, V], one row per work item.
//   m_r = max_j x_rj,   y_rj = (x_rj − m_r) − log Σ_j exp(x_rj − m_r)   (max-shifted: no overflow for any finite x)
//   dx_rj = dy_rj − exp(y_rj) · Σ_k dy_rk
public sealed unsafe partial class CpuBackend
{
    public void LogSoftmaxForward(Tensor x, Tensor y)
    {
        long rows = x.Shape.Rows;
        int v = x.Shape.Last;
        float* px = x.F32, py = y.F32;
        CpuParallel.For(rows, RowGrain(v), (r0, r1) =>
        {
            for (long r = r0; r < r1; r++)
            {
                float* row = px + r * v, yr = py + r * v;
                var (m, logSum) = MaxAndLogSum(row, v);
                // y = (x − m) − log Σ (as PyTorch): exact near the max however large the logits
                long j = 0;
                if (Vector256.IsHardwareAccelerated)
                {
                    Vector256<float> vm = Vector256.Create(m), vl = Vector256.Create(logSum);
                    for (; j <= v - 8; j += 8) Vector256.Store((Vector256.Load(row + j) - vm) - vl, yr + j);
                }
                for (; j < v; j++) yr[j] = (row[j] - m) - logSum;
            }
        });
    }

    public void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        long rows = y.Shape.Rows;
        int v = y.Shape.Last;
        float* py = y.F32, pdy = dy.F32, pdx = dx.F32;
        CpuParallel.For(rows, RowGrain(v), (r0, r1) =>
        {
            for (long r = r0; r < r1; r++)
            {
                float* yr = py + r * v, gr = pdy + r * v, dr = pdx + r * v;
                float s = TensorPrimitives.Sum(new ReadOnlySpan<float>(gr, v));
                // dx = dy − exp(y)·s
                long j = 0;
                if (Vector256.IsHardwareAccelerated)
                {
                    var vs = Vector256.Create(s);
                    for (; j <= v - 8; j += 8)
                        Vector256.Store(Vector256.Load(gr + j) - Simd.Exp(Vector256.Load(yr + j)) * vs, dr + j);
                }
                for (; j < v; j++) dr[j] = gr[j] - MathF.Exp(yr[j]) * s;
            }
        });
    }

    /// <summary>m = max x and log Σ exp(x[j] − m) over n ≥ 1 values (lse = m + logSum); the exp is vectorised.</summary>
    internal static (float Max, float LogSum) MaxAndLogSum(float* x, int n)
    {
        float m = TensorPrimitives.Max(new ReadOnlySpan<float>(x, n));
        if (float.IsInfinity(m)) return (m, 0f); // +inf: the row holds inf; −inf: every entry is −inf
        return (m, MathF.Log(SumExpShifted(x, n, m)));
    }

    /// <summary>Σ exp(x[j] − m), two vector accumulators, then the tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float SumExpShifted(float* x, int n, float m)
    {
        int j = 0;
        float s = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vm = Vector256.Create(m);
            Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero;
            for (; j <= n - 16; j += 16)
            {
                a0 += Simd.Exp(Vector256.Load(x + j) - vm);
                a1 += Simd.Exp(Vector256.Load(x + j + 8) - vm);
            }
            for (; j <= n - 8; j += 8) a0 += Simd.Exp(Vector256.Load(x + j) - vm);
            s = Vector256.Sum(a0 + a1);
        }
        for (; j < n; j++) s += MathF.Exp(x[j] - m);
        return s;
    }
}
