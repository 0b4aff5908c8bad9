using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/cross_entropy.cu: one block per row.
public sealed unsafe partial class CudaBackend
{
    private static void CheckTargets(Tensor targets, long rows)
    {
        if (targets.DType != DType.I64) throw new ArgumentException($"cross-entropy: targets must be I64, got {targets.DType} {targets.Shape}");
        if (targets.NumElements != rows) throw new ArgumentException($"cross-entropy: {targets.NumElements} targets for {rows} rows of logits");
    }

    public void CrossEntropyForward(Tensor logits, Tensor targets, long ignoreIndex, Tensor losses, Tensor logSumExp, bool targetsChecked = false)
    {
        long rows = logits.Shape.Rows;
        int v = logits.Shape.Last;
        CheckTargets(targets, rows);
        if (rows == 0) return;
        // targets checked on the host: no slot to read back, so the head's chunks (F.LinearCrossEntropy) do not wait for
        // the device one by one
        Tensor? slot = targetsChecked ? null : BadIndexSlot();
        Launch(Kernels.CrossEntropy.File, Kernels.CrossEntropy.CrossEntropyForward, rows, 256, 0, logits, targets, ignoreIndex, losses, logSumExp, v, slot);
        if (slot is null) return;
        long bad = ReadBadIndex(slot);
        if (bad >= 0)
            throw new ArgumentException($"cross-entropy: target {HostIndex(targets, bad)} at row {bad} is outside [0, {v}) and is not the ignore index {ignoreIndex}");
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, long ignoreIndex, Tensor logSumExp, float scale, Tensor dLogits)
    {
        long rows = logits.Shape.Rows;
        CheckTargets(targets, rows);
        if (dLogits.Shape != logits.Shape)
            throw new ArgumentException($"cross-entropy: dlogits {dLogits.Shape} must have the logits' shape {logits.Shape}");
        if (rows == 0) return;
        string kernel = dLogits.DType switch
        {
            DType.F32 => Kernels.CrossEntropy.CrossEntropyBackward,
            DType.BF16 => Kernels.CrossEntropy.CrossEntropyBackwardBf16,   // the head's BF16 products' operand, written directly
            _ => throw new ArgumentException($"cross-entropy: dlogits are written in F32 or BF16, not {dLogits.DType}"),
        };
        Launch(Kernels.CrossEntropy.File, kernel, rows, 256, 0, logits, targets, ignoreIndex, logSumExp, scale, dLogits, logits.Shape.Last);
    }
}
