using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// The reference twin of the fused Mamba-1 decoding step (Ops/MambaStep.cs has the math; Kernels/mamba_step.cu the
// fused kernels): the composition of the unfused ops, in MambaBlock.Step's order, so it equals the unfused path.
public sealed unsafe partial class CpuBackend
{
    public void MambaLayerStep(Tensor h, in MambaStepWeights w, Tensor convState, Tensor ssmState, Tensor output, Tensor? prefetch)
    {
        int batch = h.Shape[0], e = w.DInner, r = w.DtRank, n = w.DState;
        using var normed = Tensor.Empty(h.Shape);
        using var rstd = Tensor.Empty(new Shape(batch));
        RmsNormForward(h, w.NormWeight, w.NormEps, normed, rstd);
        using var xz = Project(normed, w.InProj, w.InProjBias);
        using var x = Columns(xz, 0, e);
        using var z = Columns(xz, e, e);
        using var u = Tensor.Empty(new Shape(batch, e));
        CausalConv1dStep(x, convState, w.ConvWeight, w.ConvBias, silu: true, u);
        using var dbc = Project(u, w.XProj, null);
        using var dt = Columns(dbc, 0, r);
        using var b = Columns(dbc, r, n);
        using var c = Columns(dbc, r + n, n);
        using var delta = Project(dt, w.DtProj, null);
        using var a = Tensor.Empty(w.ALog.Shape);
        ActivationForward(Activation.Exp, w.ALog, a);
        Scale(a, -1f, a);
        using var y = Tensor.Empty(new Shape(batch, e));
        SelectiveScanStep(u, delta, a, b, c, w.D, z, w.DtBias, deltaSoftplus: true, selective: true, ssmState, y);
        using var mixed = Project(y, w.OutProj, w.OutProjBias);
        Add(h, mixed, output);
    }

    public void MambaHeadStep(Tensor h, Tensor normWeight, float eps, Tensor lmHead, Tensor logits, Tensor? ids)
    {
        int batch = h.Shape[0], vocab = lmHead.Shape[0];
        using var normed = Tensor.Empty(h.Shape);
        using var rstd = Tensor.Empty(new Shape(batch));
        RmsNormForward(h, normWeight, eps, normed, rstd);
        if (lmHead.DType.IsNarrowWeight()) GemmNarrowWeight(normed, lmHead, logits);
        else Gemm(normed, false, lmHead, true, logits, 1f, 0f);
        if (ids is null) return;
        var l = logits.AsSpan<float>();
        var best = ids.AsSpan<long>();
        for (int row = 0; row < batch; row++)
        {
            var span = l.Slice(row * vocab, vocab);
            best[row] = System.Numerics.Tensors.TensorPrimitives.IsFiniteAll(span) ? System.Numerics.Tensors.TensorPrimitives.IndexOfMax(span) : -1;
        }
    }

    /// <summary>x·Wᵀ (+ bias) with W F32 or narrow, as F.Linear computes it.</summary>
    private Tensor Project(Tensor x, Tensor weight, Tensor? bias)
    {
        var y = Tensor.Empty(new Shape(x.Shape[0], weight.Shape[0]));
        if (weight.DType.IsNarrowWeight()) GemmNarrowWeight(x, weight, y);
        else Gemm(x, false, weight, true, y, 1f, 0f);
        if (bias is not null) AddRowVector(y, bias);
        return y;
    }

    /// <summary>Columns [start, start + count) of x [rows, cols] as a contiguous tensor (F.SplitLastAxis's copy).</summary>
    private Tensor Columns(Tensor x, int start, int count)
    {
        var y = Tensor.Empty(new Shape(x.Shape[0], count));
        CopyColumns(x, start, y, 0, count);
        return y;
    }
}
