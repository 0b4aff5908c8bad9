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

    /// <summary>Parallel forward over a whole sequence: h (b, l, d) → (b, l, d). With <paramref name="state"/>, leaves the final recurrent state there (prefill).</summary>
    public abstract Tensor Forward(Tensor h, MambaLayerState? state = null);

    /// <summary>One token per stream: h (b, d) → (b, d), updating <paramref name="state"/> in place. O(1) in the tokens seen.</summary>
    public abstract Tensor Step(Tensor h, MambaLayerState state);

    /// <summary>conv_state ← the last d_conv − 1 conv inputs x (b, l, channels) of each sequence (zeros before the start).</summary>
    protected static void SaveConvState(Tensor x, MambaLayerState state)
    {
        // conv_state[b, ch, j] = x[b, len − (d_conv − 1) + j, ch] (zero before the sequence starts). Only those last
        // rows travel to the host: copying all of x made prefill allocate L·channels floats per layer.
        int batch = x.Shape[0], len = x.Shape[1], e = x.Shape[2];
        int km1 = state.ConvState.Shape[2];
        int first = Math.Max(0, len - km1), rows = len - first;
        var cs = new float[batch * e * km1];
        for (int b = 0; b < batch; b++)
        {
            using var tail = x.ViewOf(new Shape(rows, e), ((long)b * len + first) * e * x.DType.ElementSize());
            var xs = tail.ToFloatArray();
            for (int r = 0; r < rows; r++)
            {
                int j = km1 - rows + r;
                for (int ch = 0; ch < e; ch++) cs[((long)b * e + ch) * km1 + j] = xs[(long)r * e + ch];
            }
        }
        using var src = Tensor.From(cs, batch, e, km1);
        state.ConvState.CopyFrom(src);
    }
}
