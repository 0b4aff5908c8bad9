using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Cross-entropy over the last axis with mean reduction and an ignore index (PyTorch's
/// <c>F.cross_entropy(logits, targets, ignore_index=…, reduction="mean")</c>).
/// logits [..., V] (F32), targets [...] (I64, same leading shape). With rows r and N = #{r : t_r ≠ ignore}:
///   lse_r = m_r + log Σ_j exp(x_rj − m_r),  m_r = max_j x_rj
///   loss  = (1/N) Σ_{r : t_r ≠ ignore} (lse_r − x_r,t_r)
///   ∂loss/∂x_rj = (1/N) · (exp(x_rj − lse_r) − [j = t_r])   for counted rows, 0 for ignored rows
/// The backward writes dlogits in one pass from the logits and the stored lse (no probability tensor).
/// Every target ignored (N = 0): the loss is NaN (0/0, exactly as PyTorch) and the gradient is zero
/// (as PyTorch's backward). A target outside [0, V) that is not the ignore index is an ArgumentException.
/// Targets on another device than the logits (host targets for a GPU model) are copied to the logits' device.
/// </summary>
public static partial class F
{
    public static Tensor CrossEntropy(Tensor logits, Tensor targets, long ignoreIndex = -100)
    {
        const string op = "CrossEntropy";
        OpCheck.F32(op, "logits", logits);
        if (logits.Rank < 1 || logits.Shape.Last < 1)
            throw new ArgumentException($"{op}: logits must have shape [..., V] with V ≥ 1, got {logits.Shape}");
        CheckTargetShape(op, targets, "logits", logits);

        long counted = CountCheckedTargets(op, targets, ignoreIndex, logits.Shape.Last);
        if (targets.Device != logits.Device) targets = targets.To(logits.Device);
        var backend = logits.Backend;
        var lse = Tensor.Empty(targets.Shape, DType.F32, logits.Device);
        var y = Tensor.Empty(new Shape(), DType.F32, logits.Device);
        using (var losses = Tensor.Empty(targets.Shape, DType.F32, logits.Device))
        {
            backend.CrossEntropyForward(logits, targets, ignoreIndex, losses, lse, targetsChecked: true);   // by CountCheckedTargets
            if (counted == 0) backend.Fill(y, float.NaN);
            else
            {
                backend.Sum(losses, y);
                backend.Scale(y, (float)(1.0 / counted), y);
            }
        }

        if (Tape.ShouldRecord(logits))
            Tape.Record(op, () =>
            {
                float scale = counted == 0 ? 0f : (float)(y.Grad!.Item() / (double)counted);
                var dLogits = Tensor.Empty(logits.Shape, DType.F32, logits.Device);
                backend.CrossEntropyBackward(logits, targets, ignoreIndex, lse, scale, dLogits);
                Tape.Accumulate(logits, dLogits, owned: true);
            }, y);
        else lse.Dispose();
        return y;
    }

    /// <summary>Targets are I64 class indices, one for each row of <paramref name="input"/> (its shape without the last axis).</summary>
    private static void CheckTargetShape(string op, Tensor targets, string inputName, Tensor input)
    {
        if (targets.DType != DType.I64)
            throw new ArgumentException($"{op}: targets must be I64 class indices, got {targets.DType} {targets.Shape}");
        var lead = input.Shape.ToArray()[..^1];
        if (targets.Shape != new Shape(lead))
            throw new ArgumentException($"{op}: targets must have shape [{string.Join(", ", lead)}] ({inputName} {input.Shape} without its last axis), got {targets.Shape}");
    }

    /// <summary>Number of targets that are not the ignore index, after checking each is in [0, vocab) (on the host, once;
    /// the row named is the row among all of them, also where the logits are made a chunk at a time).</summary>
    private static long CountCheckedTargets(string op, Tensor targets, long ignoreIndex, int vocab)
    {
        var t = targets.Device.IsCpu ? targets.AsSpan<long>() : targets.ToInt64Array();
        long n = 0;
        for (int r = 0; r < t.Length; r++)
        {
            if (t[r] == ignoreIndex) continue;
            if (t[r] < 0 || t[r] >= vocab)
                throw new ArgumentException($"{op}: target {t[r]} at row {r} is outside [0, {vocab}) and is not the ignore index {ignoreIndex}");
            n++;
        }
        return n;
    }
}
