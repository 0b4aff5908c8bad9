using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Nn;

/// <summary>nn.Embedding: weight [num, dim] ~ N(0, 1) unless re-initialised; padding row zeroed.</summary>
public sealed class Embedding : Module
{
    public Embedding(int count, int dim, Random rng, long paddingIndex = -1, double std = 1.0)
    {
        PaddingIndex = paddingIndex;
        Weight = Parameter("weight", Init.Normal(rng, new Shape(count, dim), 0, std));
        if (paddingIndex >= 0) Weight.AsSpan<float>().Slice((int)paddingIndex * dim, dim).Clear();
    }

    public Tensor Weight { get; }
    public long PaddingIndex { get; }

    public Tensor Forward(Tensor ids) => F.Embedding(Weight, ids, PaddingIndex);
}
