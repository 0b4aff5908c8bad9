using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/loss.cu (cross-entropy, log-softmax: one block per row) and attention.cu (one warp per row).
public sealed unsafe partial class CudaBackend
{
    private const int AttentionMaxHeadSize = 128;

    private static void CheckTargets(Tensor targets, long rows)
    {
        if (targets.DType != DType.I64) throw new ArgumentException($"cross-entropy: targets must be I64, got {targets.DType} {targets.Shape}");
        if (targets.NumElements != rows) throw new ArgumentException($"cross-entropy: {targets.NumElements} targets for {rows} rows of logits");
    }

    public void CrossEntropyForward(Tensor logits, Tensor targets, long ignoreIndex, Tensor losses, Tensor logSumExp)
    {
        long rows = logits.Shape.Rows;
        int v = logits.Shape.Last;
        CheckTargets(targets, rows);
        if (rows == 0) return;
        var slot = BadIndexSlot();
        Launch("loss.cu", "cross_entropy_forward", rows, 256, 0, logits, targets, ignoreIndex, losses, logSumExp, v, slot);
        long bad = ReadBadIndex(slot);
        if (bad >= 0)
            throw new ArgumentException($"cross-entropy: target {HostIndex(targets, bad)} at row {bad} is outside [0, {v}) and is not the ignore index {ignoreIndex}");
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, long ignoreIndex, Tensor logSumExp, float scale, Tensor dLogits)
    {
        long rows = logits.Shape.Rows;
        CheckTargets(targets, rows);
        if (rows == 0) return;
        Launch("loss.cu", "cross_entropy_backward", rows, 256, 0, logits, targets, ignoreIndex, logSumExp, scale, dLogits, logits.Shape.Last);
    }

    public void LogSoftmaxForward(Tensor x, Tensor y)
    {
        if (x.Shape.Rows == 0) return;
        Launch("loss.cu", "log_softmax_forward", x.Shape.Rows, 256, 0, x, y, x.Shape.Last);
    }

    public void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        if (y.Shape.Rows == 0) return;
        Launch("loss.cu", "log_softmax_backward", y.Shape.Rows, 256, 0, y, dy, dx, y.Shape.Last);
    }

    // ---- attention ----

    private static (int B, int L, int Dh) AttentionShape(Tensor q, int heads, Tensor? keyPadding)
    {
        int dh = q.Shape[2] / heads;
        if (dh > AttentionMaxHeadSize) throw new NotSupportedException($"attention on CUDA supports head sizes up to {AttentionMaxHeadSize}, got {dh}");
        if (keyPadding is not null && keyPadding.DType != DType.I64)
            throw new ArgumentException($"attention: keyPadding must be I64 ids, got {keyPadding.DType} {keyPadding.Shape}");
        return (q.Shape[0], q.Shape[1], dh);
    }

    public void AttentionForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp)
    {
        var (b, l, dh) = AttentionShape(q, heads, keyPadding);
        long rows = (long)b * heads * l;
        Launch("attention.cu", "attention_forward", (rows + 7) / 8, 256, 0, q, k, v, keyPadding, y, logSumExp, b, l, heads, dh);
    }

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp,
        Tensor dy, Tensor dq, Tensor dk, Tensor dv)
    {
        var (b, l, dh) = AttentionShape(q, heads, keyPadding);
        long rows = (long)b * heads * l;
        var delta = Allocator.Allocate(Math.Max(1, rows) * sizeof(float));
        try
        {
            Launch("attention.cu", "attention_backward_dq", (rows + 7) / 8, 256, 0, q, k, v, keyPadding, y, logSumExp, dy, dq, delta.Pointer, b, l, heads, dh);
            Launch("attention.cu", "attention_backward_dkv", (rows + 7) / 8, 256, 0, q, k, v, keyPadding, logSumExp, delta.Pointer, dy, dk, dv, b, l, heads, dh);
        }
        finally { delta.Release(); }
    }
}
