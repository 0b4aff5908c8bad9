using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Inference;

/// <summary>
/// The fixed-size recurrent state of one Mamba layer for a batch of independent streams:
/// conv_state [batch, conv channels, d_conv − 1] (the last inputs of the causal conv, oldest first) and
/// ssm_state — Mamba-1: [batch, d_inner, d_state]; Mamba-2: [batch, heads, head_dim, d_state], with the conv over
/// d_inner + 2·n_groups·d_state channels (x, B and C). Its size does not depend on how many tokens were seen.
/// </summary>
public sealed class MambaLayerState : IDisposable
{
    public MambaLayerState(int batch, MambaConfig mixer, Device? device = null)
    {
        ConvState = Tensor.Zeros(new Shape(batch, mixer.ConvDim, mixer.DConv - 1), DType.F32, device).Persist();
        var ssm = mixer.Mixer == MixerKind.Mamba2 ? new Shape(batch, mixer.Heads, mixer.HeadDim, mixer.DState) : new Shape(batch, mixer.DInner, mixer.DState);
        SsmState = Tensor.Zeros(ssm, DType.F32, device).Persist();
    }

    private MambaLayerState(Tensor convState, Tensor ssmState)
    {
        ConvState = convState;
        SsmState = ssmState;
    }

    public Tensor ConvState { get; }
    public Tensor SsmState { get; }
    public int Batch => SsmState.Shape[0];

    /// <summary>
    /// A whole-sequence forward (Mamba-1) continues from this state instead of starting from zero: its conv reads the
    /// window in <see cref="ConvState"/> before the sequence's first inputs and its scan starts from <see cref="SsmState"/>
    /// (h0), so forwards over consecutive chunks equal one over the whole sequence (the chunked evaluation; training-time
    /// state passing). Off: the forward is a prefill that only writes the final states.
    /// <see cref="Models.MambaLM.Step(Tensor, MambaState)"/> always continues.
    /// </summary>
    public bool ForwardContinues { get; set; }

    /// <summary>Streams [start, start + count) as a view that shares this state's memory.</summary>
    public MambaLayerState Slice(int start, int count) =>
        new(ConvState.Slice(start, count).Persist(), SsmState.Slice(start, count).Persist());

    /// <summary>Copies stream <paramref name="sourceSlot"/> of <paramref name="source"/> into stream <paramref name="slot"/> of this state.</summary>
    public void CopySlot(int slot, MambaLayerState source, int sourceSlot)
    {
        using (var dst = ConvState.Slice(slot, 1).Persist())
        using (var src = source.ConvState.Slice(sourceSlot, 1).Persist())
            dst.CopyFrom(src);
        using (var dst = SsmState.Slice(slot, 1).Persist())
        using (var src = source.SsmState.Slice(sourceSlot, 1).Persist())
            dst.CopyFrom(src);
    }

    public void Reset()
    {
        ConvState.Backend.Fill(ConvState, 0);
        SsmState.Backend.Fill(SsmState, 0);
    }

    public void Dispose()
    {
        ConvState.Dispose();
        SsmState.Dispose();
    }
}

/// <summary>Per-layer states of a whole model (see <see cref="MambaLayerState"/>), plus the number of tokens consumed.</summary>
public sealed unsafe class MambaState : IDisposable
{
    /// <param name="mixer">The mixer's sizes (and kind), which fix each layer's state shapes.</param>
    public MambaState(int layers, int batch, MambaConfig mixer, Device? device = null)
    {
        Layers = Enumerable.Range(0, layers).Select(_ => new MambaLayerState(batch, mixer, device)).ToArray();
    }

    private MambaState(MambaLayerState[] layers) => Layers = layers;

    public MambaLayerState[] Layers { get; }
    public int Batch => Layers[0].Batch;

    /// <summary>
    /// Streams [start, start + count) as a view sharing this state's memory (continuous batching steps
    /// only the occupied slots of a larger state). Disposing the view leaves this state intact.
    /// </summary>
    public MambaState Slice(int start, int count) => new(Layers.Select(l => l.Slice(start, count)).ToArray()) { Position = Position };

    /// <summary>Copies one stream's state (every layer) from <paramref name="source"/>[<paramref name="sourceSlot"/>] into slot <paramref name="slot"/>.</summary>
    public void CopySlot(int slot, MambaState source, int sourceSlot = 0)
    {
        if (source.Layers.Length != Layers.Length) throw new ArgumentException($"cannot copy a {source.Layers.Length}-layer state into a {Layers.Length}-layer one");
        for (int i = 0; i < Layers.Length; i++) Layers[i].CopySlot(slot, source.Layers[i], sourceSlot);
    }
    /// <summary>Tokens consumed so far (positions for learned positional embeddings).</summary>
    public long Position { get; set; }
    public long Bytes => Layers.Sum(l => l.ConvState.ByteLength + l.SsmState.ByteLength);

    public void Reset()
    {
        foreach (var l in Layers) l.Reset();
        Position = 0;
    }

    /// <summary>Every layer's conv then SSM state as one flat array (what a server persists per user or series; a GPU state is copied to the host).</summary>
    public float[] ToArray()
    {
        var values = new float[Bytes / sizeof(float)];
        int o = 0;
        foreach (var l in Layers)
            foreach (var t in new[] { l.ConvState, l.SsmState })
            {
                if (t.Device.IsCpu) t.AsSpan<float>().CopyTo(values.AsSpan(o));
                else
                    fixed (float* p = values)
                        Backends.Backend.Memory(t.Device).CopyToHost(t, (nint)(p + o), t.ByteLength);
                o += (int)t.NumElements;
            }
        return values;
    }

    /// <summary>Restores a state written by <see cref="ToArray"/> (the same shapes), copying it to the state's device.</summary>
    public void Load(ReadOnlySpan<float> values)
    {
        if (values.Length != Bytes / sizeof(float)) throw new ArgumentException($"a state of {values.Length} floats does not fit this one of {Bytes / sizeof(float)}");
        int o = 0;
        foreach (var l in Layers)
            foreach (var t in new[] { l.ConvState, l.SsmState })
            {
                var part = values.Slice(o, (int)t.NumElements);
                if (t.Device.IsCpu) part.CopyTo(t.AsSpan<float>());
                else
                    fixed (float* p = part)
                        Backends.Backend.Memory(t.Device).CopyFromHost((nint)p, t, t.ByteLength);
                o += part.Length;
            }
    }

    public void Dispose()
    {
        foreach (var l in Layers) l.Dispose();
    }
}
