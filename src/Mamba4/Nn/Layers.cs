using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>nn.Linear: weight [out, in], optional bias [out]; PyTorch's default init.</summary>
public sealed class Linear : Module
{
    public Linear(int inFeatures, int outFeatures, bool bias, Random rng)
    {
        Weight = Parameter("weight", Init.KaimingUniform(rng, new Shape(outFeatures, inFeatures), inFeatures));
        if (bias) Bias = Parameter("bias", Init.KaimingUniform(rng, new Shape(outFeatures), inFeatures));
    }

    public Tensor Weight { get; }
    public Tensor? Bias { get; }
    public int InFeatures => Weight.Shape[1];
    public int OutFeatures => Weight.Shape[0];

    public Tensor Forward(Tensor x) => Ops.Linear.Forward(x, Weight, Bias);
}

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

    public Tensor Forward(Tensor ids) => Ops.Embedding.Forward(Weight, ids, PaddingIndex);
}

/// <summary>nn.LayerNorm over the last axis: weight 1, bias 0.</summary>
public sealed class LayerNorm : Module
{
    public LayerNorm(int dim, float eps = 1e-5f)
    {
        Eps = eps;
        Weight = Parameter("weight", Init.Constant(new Shape(dim), 1f));
        Bias = Parameter("bias", Init.Constant(new Shape(dim), 0f));
    }

    public Tensor Weight { get; }
    public Tensor Bias { get; }
    public float Eps { get; }

    public Tensor Forward(Tensor x) => Ops.LayerNorm.Forward(x, Weight, Bias, Eps);
}

/// <summary>RMSNorm (HF MambaRMSNorm): weight 1.</summary>
public sealed class RmsNorm : Module
{
    public RmsNorm(int dim, float eps = 1e-5f)
    {
        Eps = eps;
        Weight = Parameter("weight", Init.Constant(new Shape(dim), 1f));
    }

    public Tensor Weight { get; }
    public float Eps { get; }

    public Tensor Forward(Tensor x) => Ops.RmsNorm.Forward(x, Weight, Eps);
}

/// <summary>Depthwise causal nn.Conv1d(D, D, K, groups=D, padding=K−1) truncated to L: weight [D, 1, K], bias [D].</summary>
public sealed class CausalConv1d : Module
{
    public CausalConv1d(int channels, int kernel, bool bias, Random rng)
    {
        Weight = Parameter("weight", Init.KaimingUniform(rng, new Shape(channels, 1, kernel), kernel));
        if (bias) Bias = Parameter("bias", Init.KaimingUniform(rng, new Shape(channels), kernel));
    }

    public Tensor Weight { get; }
    public Tensor? Bias { get; }
    public int Kernel => Weight.Shape[2];

    /// <summary>x [batch, L, D] → [batch, L, D], SiLU fused when asked.</summary>
    public Tensor Forward(Tensor x, bool silu) => Ops.CausalConv1d.Forward(x, Weight, Bias, silu);
}
