using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Ops;

namespace Mamba4.Nn;

/// <summary>
/// The Mamba4 layer (Mamba4Rec): m = mamba(h); h = LayerNorm(dropout(m) + h) — without the residual
/// when the model has a single layer, as the reference does — then the feed-forward network.
/// </summary>
public sealed class Mamba4Layer : Module
{
    public Mamba4Layer(MambaConfig mixer, int innerSize, float dropout, float eps, bool residual, Random rng)
    {
        Mamba = Child("mamba", new MambaMixer(mixer, rng));
        Norm = Child("LayerNorm", new LayerNorm(mixer.DModel, eps));
        Ffn = Child("ffn", new FeedForward(mixer.DModel, innerSize, dropout, eps, rng));
        DropoutP = dropout;
        Residual = residual;
    }

    public MambaMixer Mamba { get; }
    public LayerNorm Norm { get; }
    public FeedForward Ffn { get; }
    public float DropoutP { get; }
    public bool Residual { get; }

    public Tensor Forward(Tensor h, ref ulong seed, MambaLayerState? state = null)
    {
        var m = Dropout.Forward(Mamba.Forward(h, state), DropoutP, seed++, Training);
        var x = Norm.Forward(Residual ? Elementwise.Add(m, h) : m);
        return Ffn.Forward(x, ref seed);
    }

    /// <summary>One position per stream (inference): h (b, d) → (b, d), the mixer's state updated in place.</summary>
    public Tensor Step(Tensor h, MambaLayerState state)
    {
        ulong seed = 0;
        var m = Mamba.Step(h, state);
        return Ffn.Forward(Norm.Forward(Residual ? Elementwise.Add(m, h) : m), ref seed);
    }
}
