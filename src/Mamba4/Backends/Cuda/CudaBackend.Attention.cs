using System.Runtime.InteropServices;
using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/attention.cu: one warp per query row (forward, dq) or key row (dk, dv); causal (RecBole's padding mask
// optional), non-causal and dropout-on-probabilities variants of the same three kernels, and the KV-cache step.
public sealed unsafe partial class CudaBackend
{
    private const int AttentionMaxHeadSize = 128;

    /// <summary>The kernels' dropout parameter (Threshold 0: none); layout of AttDropout in attention.cu.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct AttDropout(ulong Seed, ulong Threshold, float Keep)
    {
        public static readonly AttDropout None = new(0, 0, 1f);

        public static AttDropout For(float p, ulong seed) =>
            p <= 0f ? None : new AttDropout(seed, CpuBackend.DropoutThreshold(p), 1f / (1f - p));
    }

    private static (int B, int L, int Dh) AttentionShape(Tensor q, int heads, Tensor? keyPadding)
    {
        int dh = q.Shape[q.Rank - 1] / heads;
        if (dh > AttentionMaxHeadSize) throw new NotSupportedException($"attention on CUDA supports head sizes up to {AttentionMaxHeadSize}, got {dh}");
        if (keyPadding is not null && keyPadding.DType != DType.I64)
            throw new ArgumentException($"attention: keyPadding must be I64 ids, got {keyPadding.DType} {keyPadding.Shape}");
        return (q.Shape[0], q.Rank == 3 ? q.Shape[1] : 1, dh);
    }


    private void AttentionForward(AttDropout drop, Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor? y, nint lse, bool causal)
    {
        var (b, l, dh) = AttentionShape(q, heads, keyPadding);
        long rows = (long)b * heads * l;
        Launch("attention.cu", "attention_forward", RowBlocks(rows), 256, 0, drop, q, k, v, keyPadding, y, lse, b, l, heads, dh, causal);
    }

    private void AttentionBackward(AttDropout drop, Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, nint lse,
        Tensor dy, Tensor dq, Tensor dk, Tensor dv, bool causal)
    {
        var (b, l, dh) = AttentionShape(q, heads, keyPadding);
        long rows = (long)b * heads * l;
        var delta = Allocator.Allocate(Math.Max(1, rows) * sizeof(float));
        try
        {
            Launch("attention.cu", "attention_backward_dq", RowBlocks(rows), 256, 0, drop, q, k, v, keyPadding, y, lse, dy, dq, delta.Pointer, b, l, heads, dh, causal);
            Launch("attention.cu", "attention_backward_dkv", RowBlocks(rows), 256, 0, drop, q, k, v, keyPadding, lse, delta.Pointer, dy, dk, dv, b, l, heads, dh, causal);
        }
        finally { delta.Release(); }
    }

    public void AttentionForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp) =>
        AttentionForward(AttDropout.None, q, k, v, heads, keyPadding, y, logSumExp.DataPointer, causal: true);

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp,
        Tensor dy, Tensor dq, Tensor dk, Tensor dv) =>
        AttentionBackward(AttDropout.None, q, k, v, heads, keyPadding, y, logSumExp.DataPointer, dy, dq, dk, dv, causal: true);

    public void AttentionForwardNonCausal(Tensor q, Tensor k, Tensor v, int heads, Tensor y, Tensor logSumExp) =>
        AttentionForward(AttDropout.None, q, k, v, heads, null, y, logSumExp.DataPointer, causal: false);

    public void AttentionBackwardNonCausal(Tensor q, Tensor k, Tensor v, int heads, Tensor y, Tensor logSumExp, Tensor dy, Tensor dq, Tensor dk, Tensor dv) =>
        AttentionBackward(AttDropout.None, q, k, v, heads, null, y, logSumExp.DataPointer, dy, dq, dk, dv, causal: false);

    // Dropout: the forward keeps nothing but y; the backward recomputes each row's log-sum-exp first (forward with y = null).
    public void AttentionDropoutForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y)
    {
        var lse = Allocator.Allocate(Math.Max(1, (long)q.Shape[0] * heads * q.Shape[1]) * sizeof(float));
        try { AttentionForward(AttDropout.For(p, seed), q, k, v, heads, keyPadding, y, lse.Pointer, causal: true); }
        finally { lse.Release(); }
    }

    public void AttentionDropoutBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y,
        Tensor dy, Tensor dq, Tensor dk, Tensor dv)
    {
        var lse = Allocator.Allocate(Math.Max(1, (long)q.Shape[0] * heads * q.Shape[1]) * sizeof(float));
        try
        {
            AttentionForward(AttDropout.None, q, k, v, heads, keyPadding, null, lse.Pointer, causal: true);
            AttentionBackward(AttDropout.For(p, seed), q, k, v, heads, keyPadding, y, lse.Pointer, dy, dq, dk, dv, causal: true);
        }
        finally { lse.Release(); }
    }

    public void AttentionStep(Tensor q, Tensor kCache, Tensor vCache, int length, int heads, Tensor y)
    {
        var (b, _, dh) = AttentionShape(q, heads, null);
        Launch("attention.cu", "attention_step", RowBlocks((long)b * heads), 256, 0, q, kCache, vCache, y, b, heads, dh, kCache.Shape[1], length);
    }
}
