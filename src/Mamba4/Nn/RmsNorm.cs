using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Nn;

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

    /// <param name="outputType">BF16 where the only reader multiplies in BF16 (<see cref="SsmMixer.InputType"/>); default x's.</param>
    public Tensor Forward(Tensor x, DType? outputType = null) => F.RmsNorm(x, Weight, Eps, outputType);
}
