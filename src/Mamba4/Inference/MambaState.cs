using Mamba4.Tensors;

namespace Mamba4.Inference;

/// <summary>
/// The fixed-size recurrent state of one Mamba layer for a batch of independent streams:
/// conv_state [batch, d_inner, d_conv − 1] (the last inputs of the causal conv, oldest first) and
/// ssm_state [batch, d_inner, d_state]. Its size does not depend on how many tokens were seen.
/// </summary>
public sealed class MambaLayerState : IDisposable
{
    public MambaLayerState(int batch, int dInner, int dConv, int dState, Device? device = null)
    {
        ConvState = Tensor.Zeros(new Shape(batch, dInner, dConv - 1), DType.F32, device).Persist();
        SsmState = Tensor.Zeros(new Shape(batch, dInner, dState), DType.F32, device).Persist();
    }

    public Tensor ConvState { get; }
    public Tensor SsmState { get; }
    public int Batch => SsmState.Shape[0];

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
public sealed class MambaState : IDisposable
{
    public MambaState(int layers, int batch, int dInner, int dConv, int dState, Device? device = null)
    {
        Layers = Enumerable.Range(0, layers).Select(_ => new MambaLayerState(batch, dInner, dConv, dState, device)).ToArray();
    }

    public MambaLayerState[] Layers { get; }
    public int Batch => Layers[0].Batch;
    /// <summary>Tokens consumed so far (positions for learned positional embeddings).</summary>
    public long Position { get; set; }
    public long Bytes => Layers.Sum(l => l.ConvState.ByteLength + l.SsmState.ByteLength);

    public void Reset()
    {
        foreach (var l in Layers) l.Reset();
        Position = 0;
    }

    public void Dispose()
    {
        foreach (var l in Layers) l.Dispose();
    }
}
