using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Cross-entropy over the last axis; logits viewed as [rows, V], targets [rows] (I64), one row per work item.
//   m_r = max_j x_rj,   lse_r = m_r + log Σ_j exp(x_rj − m_r)        (max-shifted: no overflow for any finite x)
//   loss_r = (m_r − x_r,t_r) + log Σ_j exp(x_rj − m_r)  (0 where t_r == ignoreIndex)
//   dx_rj  = scale · (exp(x_rj − lse_r) − [j = t_r])  (one pass; zero row where ignored;
//            lse is float32, so probabilities carry a relative error of about |lse|·6e-8)
// The row max and log-sum come from CpuBackend.LogSoftmax.cs (MaxAndLogSum).
public sealed unsafe partial class CpuBackend
{
    public void CrossEntropyForward(Tensor logits, Tensor targets, long ignoreIndex, Tensor losses, Tensor logSumExp, bool targetsChecked = false)
    {
        long rows = logits.Shape.Rows;
        int v = logits.Shape.Last;
        var t = TargetPointer(targets, rows);
        CheckTargets(t, rows, v, ignoreIndex);
        float* x = logits.F32, loss = losses.F32, lse = logSumExp.F32;
        CpuParallel.For(rows, RowGrain(v), (r0, r1) =>
        {
            for (long r = r0; r < r1; r++)
            {
                float* row = x + r * v;
                var (m, logSum) = MaxAndLogSum(row, v);
                lse[r] = m + logSum;
                // (m − x_t) + log Σ: no rounding of lse's magnitude when the logits are large
                loss[r] = t[r] == ignoreIndex ? 0f : (m - row[t[r]]) + logSum;
            }
        });
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, long ignoreIndex, Tensor logSumExp, float scale, Tensor dLogits)
    {
        long rows = logits.Shape.Rows;
        int v = logits.Shape.Last;
        var t = TargetPointer(targets, rows);
        CheckTargets(t, rows, v, ignoreIndex);
        float* x = logits.F32, lse = logSumExp.F32, dx = dLogits.F32;
        CpuParallel.For(rows, RowGrain(v), (r0, r1) =>
        {
            for (long r = r0; r < r1; r++)
            {
                float* drow = dx + r * v;
                if (t[r] == ignoreIndex) { new Span<float>(drow, v).Clear(); continue; }
                ScaledExp(x + r * v, lse[r], scale, drow, v);
                drow[t[r]] -= scale;
            }
        });
    }

    private static long* TargetPointer(Tensor targets, long rows)
    {
        if (targets.DType != DType.I64) throw new ArgumentException($"cross-entropy: targets must be I64, got {targets.DType} {targets.Shape}");
        if (targets.NumElements != rows) throw new ArgumentException($"cross-entropy: {targets.NumElements} targets for {rows} rows of logits");
        return (long*)targets.DataPointer;
    }

    private static void CheckTargets(long* t, long rows, int v, long ignoreIndex)
    {
        for (long r = 0; r < rows; r++)
            if (t[r] != ignoreIndex && (ulong)t[r] >= (ulong)v)
                throw new ArgumentException($"cross-entropy: target {t[r]} at row {r} is outside [0, {v}) and is not the ignore index {ignoreIndex}");
    }

    /// <summary>d[j] = scale · exp(x[j] − lse).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaledExp(float* x, float lse, float scale, float* d, int n)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> vl = Vector256.Create(lse), vs = Vector256.Create(scale);
            for (; j <= n - 8; j += 8)
                Vector256.Store(Simd.Exp(Vector256.Load(x + j) - vl) * vs, d + j);
        }
        for (; j < n; j++) d[j] = MathF.Exp(x[j] - lse) * scale;
    }
}
