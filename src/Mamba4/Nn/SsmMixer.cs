using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>
/// What a Mamba block holds as its "mixer": Mamba-1's <see cref="MambaMixer"/> or Mamba-2's <see cref="Mamba2Mixer"/>
/// (picked by <see cref="MambaConfig.Mixer"/>). Both map h (b, l, d) → (b, l, d) in parallel and h (b, d) → (b, d) one
/// token at a time through a <see cref="MambaLayerState"/> of fixed size.
/// </summary>
public abstract class SsmMixer : Module
{
    public static SsmMixer Create(MambaConfig config, Random rng) =>
        config.Mixer == MixerKind.Mamba2 ? new Mamba2Mixer(config, rng) : new MambaMixer(config, rng);

    public abstract Linear InProj { get; }
    public abstract Linear OutProj { get; }
    /// <summary>Every Linear of the mixer, in construction order (for re-initialisation schemes such as RecBole's).</summary>
    public abstract IEnumerable<Linear> Linears { get; }
    /// <summary>The skip weight (per channel for Mamba-1, per head for Mamba-2).</summary>
    public abstract Tensor D { get; }

    /// <summary>The type <see cref="Forward"/>'s input may be written in: BF16 where in_proj, its only reader, multiplies in
    /// BF16 (see <see cref="ProductInputType"/>), else h's. The block's RMSNorm writes it so.</summary>
    public DType InputType(Tensor h) => ProductInputType(h, InProj.Weight);

    /// <summary>The type to write <paramref name="x"/> in when a product with <paramref name="weight"/> is its only reader: the
    /// backend's <see cref="Backends.IBackend.ActivationType"/> (BF16 with BF16 products: the product would round an F32 x
    /// first, and again for the weight's gradient) for an F32 x and weight, else x's own.</summary>
    protected static DType ProductInputType(Tensor x, Tensor weight) =>
        x.DType == DType.F32 && weight.DType == DType.F32 ? x.Backend.ActivationType : x.DType;

    /// <summary>Parallel forward over a whole sequence: h (b, l, d) → (b, l, d). With <paramref name="state"/>, leaves the final
    /// recurrent state there (prefill). With <paramref name="residual"/> (no gradients), out_proj adds its product onto it in
    /// place and returns it: residual + mixer(h) without a pass adding the two (F.LinearAccumulate).</summary>
    public abstract Tensor Forward(Tensor h, MambaLayerState? state = null, Tensor? residual = null);

    /// <summary>out_proj(y), or added onto <paramref name="residual"/> in place (<see cref="Forward"/>).</summary>
    protected Tensor OutProjection(Tensor y, Tensor? residual) =>
        residual is null ? OutProj.Forward(y) : Ops.F.LinearAccumulate(y, OutProj.Weight, OutProj.Bias, residual);

    /// <summary>One token per stream: h (b, d) → (b, d), updating <paramref name="state"/> in place. O(1) in the tokens seen.</summary>
    public abstract Tensor Step(Tensor h, MambaLayerState state);

    /// <summary>conv_state ← the last d_conv − 1 conv inputs x (b, l, channels) of each sequence (zeros before the start),
    /// made on x's device (and copied where the state lives elsewhere).</summary>
    protected static void SaveConvState(Tensor x, MambaLayerState state)
    {
        if (state.ConvState.Device == x.Device) { Ops.F.CausalConv1dSaveState(x, state.ConvState); return; }
        using var onX = Tensor.Empty(state.ConvState.Shape, DType.F32, x.Device);
        Ops.F.CausalConv1dSaveState(x, onX);
        state.ConvState.CopyFrom(onX);
    }
}
