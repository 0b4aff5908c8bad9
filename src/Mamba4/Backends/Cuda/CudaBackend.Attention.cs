using System.Runtime.InteropServices;
using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/attention.cu: one warp per query row (forward, dq) or key row (dk, dv); the AttentionSpec goes to the kernels as
// `causal`, the padding ids and the AttDropout struct (threshold 0: none); and the KV-cache step.
public sealed unsafe partial class CudaBackend
{
    private const int AttentionMaxHeadSize = 128;

    /// <summary>The kernels' dropout parameter (Threshold 0: none); layout of AttDropout in attention.cu.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct AttDropout(ulong Seed, ulong Threshold, float Keep)
    {
        public static AttDropout For(in AttentionSpec spec) =>
            spec.HasDropout ? new AttDropout(spec.Seed, CpuBackend.DropoutThreshold(spec.DropoutP), 1f / (1f - spec.DropoutP)) : new AttDropout(0, 0, 1f);
    }

    private static (int B, int L, int Dh) AttentionShape(Tensor q, int heads, Tensor? keyPadding)
    {
        int dh = q.Shape[q.Rank - 1] / heads;
        if (dh > AttentionMaxHeadSize) throw new NotSupportedException($"attention on CUDA supports head sizes up to {AttentionMaxHeadSize}, got {dh}");
        if (keyPadding is not null && keyPadding.DType != DType.I64)
            throw new ArgumentException($"attention: keyPadding must be I64 ids, got {keyPadding.DType} {keyPadding.Shape}");
        return (q.Shape[0], q.Rank == 3 ? q.Shape[1] : 1, dh);
    }

    public void AttentionForward(AttentionSpec spec, Tensor q, Tensor k, Tensor v, Tensor y, Tensor logSumExp)
    {
        var (b, l, dh) = AttentionShape(q, spec.Heads, spec.KeyPadding);
        long rows = (long)b * spec.Heads * l;
        Launch(Kernels.Attention.File, Kernels.Attention.AttentionForward, RowBlocks(rows), 256, 0, AttDropout.For(spec), q, k, v, spec.KeyPadding, y, logSumExp,
            b, l, spec.Heads, dh, spec.Causal);
    }

    // The log-sum-exp of the forward is that of the scores before dropout (the kernel sums p_ij, not p_ij·m_ij), so the
    // backward of the dropout case reads it as the plain case does.
    public void AttentionBackward(AttentionSpec spec, Tensor q, Tensor k, Tensor v, Tensor y, Tensor logSumExp,
        Tensor dy, Tensor dq, Tensor dk, Tensor dv)
    {
        var (b, l, dh) = AttentionShape(q, spec.Heads, spec.KeyPadding);
        long rows = (long)b * spec.Heads * l;
        var drop = AttDropout.For(spec);
        var delta = Allocator.Allocate(Math.Max(1, rows) * sizeof(float));
        try
        {
            Launch(Kernels.Attention.File, Kernels.Attention.AttentionBackwardDq, RowBlocks(rows), 256, 0, drop, q, k, v, spec.KeyPadding, y, logSumExp, dy, dq, delta.Pointer,
                b, l, spec.Heads, dh, spec.Causal);
            Launch(Kernels.Attention.File, Kernels.Attention.AttentionBackwardDkv, RowBlocks(rows), 256, 0, drop, q, k, v, spec.KeyPadding, logSumExp, delta.Pointer, dy, dk, dv,
                b, l, spec.Heads, dh, spec.Causal);
        }
        finally { delta.Release(); }
    }

    public void AttentionStep(Tensor q, Tensor kCache, Tensor vCache, int length, int heads, Tensor y)
    {
        var (b, _, dh) = AttentionShape(q, heads, null);
        Launch(Kernels.Attention.File, Kernels.Attention.AttentionStep, RowBlocks((long)b * heads), 256, 0, q, kCache, vCache, y, b, heads, dh, kCache.Shape[1], length);
    }
}
