using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>
/// Mamba-2's gated RMSNorm (HF <c>MambaRMSNormGated</c>, mamba_ssm <c>RMSNormGated</c>), parameter "weight" (e), over the
/// last axis split into <c>groups</c> equal groups, each with its own mean square:
///   norm_before_gate false:  out = rms(y·silu(z))·w        norm_before_gate true:  out = rms(y)·w·silu(z)
///   rms(v) = v / √(mean_group v² + ε)
/// Composed of F.Gate, F.RmsNorm and, for several groups, a reshape and a per-channel scale, so it runs wherever those do.
/// </summary>
public sealed class RmsNormGated : Module
{
    public RmsNormGated(int dim, int groups, bool normBeforeGate, float eps)
    {
        if (groups < 1 || dim % groups != 0) throw new ArgumentException($"RmsNormGated: {dim} channels do not split into {groups} groups");
        Weight = Parameter("weight", Init.Constant(new Shape(dim), 1f));
        (Groups, NormBeforeGate, Eps) = (groups, normBeforeGate, eps);
    }

    public Tensor Weight { get; }
    public int Groups { get; }
    public bool NormBeforeGate { get; }
    public float Eps { get; }

    /// <summary>y, z (…, e) → (…, e).</summary>
    public Tensor Forward(Tensor y, Tensor z)
    {
        if (!NormBeforeGate) y = F.Gate(y, z);
        y = Groups == 1 ? F.RmsNorm(y, Weight, Eps) : GroupNorm(y);
        return NormBeforeGate ? F.Gate(y, z) : y;
    }

    // Each group of e/G channels normalised on its own (a weightless RmsNorm over rows of e/G), then scaled per channel:
    // ŷ·w with w broadcast over the rows as ones(rows, 1)·wᵀ (F.Linear), so that dw = Σ_rows dout·ŷ comes from the tape.
    private Tensor GroupNorm(Tensor y)
    {
        int e = Weight.Shape[0], rows = (int)(y.NumElements / e);
        var normed = F.RmsNorm(F.Reshape(y, [rows * Groups, e / Groups]), Tensor.Ones(new Shape(e / Groups), y.Device), Eps);
        var w = F.Linear(Tensor.Ones(new Shape(rows, 1), y.Device), F.Reshape(Weight, [e, 1]));
        return F.Reshape(F.Mul(F.Reshape(normed, [rows, e]), w), y.Shape.ToArray());
    }
}
