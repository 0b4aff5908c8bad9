using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>
/// The Mamba4 layer (Mamba4Rec): m = mamba(h); h = LayerNorm(dropout(m) + h) — without the residual
/// when the model has a single layer, as the reference does — then the feed-forward network.
/// Bidirectional (S-Mamba style, for unordered tokens such as one token per variable): a second mixer
/// "mamba_r" reads the tokens in reverse, m = mamba(h) + flip(mamba_r(flip(h))); such a layer has no recurrent step.
/// </summary>
public sealed class Mamba4Layer : Module
{
    public Mamba4Layer(MambaConfig mixer, int innerSize, float dropout, float eps, bool residual, Random rng, bool bidirectional = false)
    {
        Mamba = Child("mamba", SsmMixer.Create(mixer, rng));
        if (bidirectional) MambaReverse = Child("mamba_r", SsmMixer.Create(mixer, rng));
        Norm = Child("LayerNorm", new LayerNorm(mixer.DModel, eps));
        Ffn = Child("ffn", new FeedForward(mixer.DModel, innerSize, dropout, eps, rng));
        DropoutP = dropout;
        Residual = residual;
    }

    public SsmMixer Mamba { get; }
    public SsmMixer? MambaReverse { get; }
    public LayerNorm Norm { get; }
    public FeedForward Ffn { get; }
    public float DropoutP { get; }
    public bool Residual { get; }

    public Tensor Forward(Tensor h, ref ulong seed, MambaLayerState? state = null)
    {
        var mixed = Mamba.Forward(h, state);
        if (MambaReverse is not null) mixed = F.Add(mixed, Reverse(MambaReverse.Forward(Reverse(h))));
        var m = F.Dropout(mixed, DropoutP, seed++, Training);
        var x = Norm.Forward(Residual ? F.Add(m, h) : m);
        return Ffn.Forward(x, ref seed);
    }

    /// <summary>
    /// One token per stream: h (b, d) → (b, d), updating <paramref name="state"/> in place; O(1) in the tokens seen.
    /// In evaluation mode it equals the last position of <see cref="Forward"/> over the whole sequence.
    /// </summary>
    public Tensor Step(Tensor h, MambaLayerState state, ref ulong seed)
    {
        if (MambaReverse is not null) throw new InvalidOperationException("a bidirectional Mamba4 layer has no recurrent step: it also reads the sequence backwards");
        var m = F.Dropout(Mamba.Step(h, state), DropoutP, seed++, Training);
        var x = Norm.Forward(Residual ? F.Add(m, h) : m);
        return Ffn.Forward(x, ref seed);
    }

    /// <summary>h (b, l, d) with the l axis reversed — a row gather, differentiable.</summary>
    private static Tensor Reverse(Tensor h)
    {
        int b = h.Shape[0], l = h.Shape[1], d = h.Shape[2];
        var rows = new long[b * l];
        for (int i = 0; i < b; i++)
            for (int t = 0; t < l; t++) rows[i * l + t] = (long)i * l + (l - 1 - t);
        return F.Embedding(h.Reshape(b * l, d), Tensor.From(rows, b * l)).Reshape(b, l, d);
    }
}
