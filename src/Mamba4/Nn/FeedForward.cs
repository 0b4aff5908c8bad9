using Mamba4.Ops;

namespace Mamba4.Nn;

/// <summary>
/// Position-wise feed-forward network of the Mamba4 layer (RecBole naming):
/// out = LayerNorm(dropout(w_2(dropout(gelu(w_1(h))))) + h),  GELU in erf form.
/// </summary>
public sealed class FeedForward : Module
{
    public FeedForward(int dModel, int innerSize, float dropout, float eps, Random rng)
    {
        W1 = Child("w_1", new Linear(dModel, innerSize, true, rng));
        W2 = Child("w_2", new Linear(innerSize, dModel, true, rng));
        Norm = Child("LayerNorm", new LayerNorm(dModel, eps));
        DropoutP = dropout;
    }

    public Linear W1 { get; }
    public Linear W2 { get; }
    public LayerNorm Norm { get; }
    public float DropoutP { get; }

    public Tensor Forward(Tensor h, ref ulong seed)
    {
        var a = F.Dropout(F.Gelu(W1.Forward(h)), DropoutP, seed++, Training);
        var b = F.Dropout(W2.Forward(a), DropoutP, seed++, Training);
        return Norm.Forward(F.Add(b, h));
    }
}
