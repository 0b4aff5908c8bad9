using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Nn;

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

    public Tensor Forward(Tensor x) => F.LayerNorm(x, Weight, Bias, Eps);
}
