using Mamba4.Tensors;
using Mamba4.Ops;

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

    public Tensor Forward(Tensor x) => F.Linear(x, Weight, Bias);
}
