using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Nn;

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
    public Tensor Forward(Tensor x, bool silu) => F.CausalConv1d(x, Weight, Bias, silu);
}
