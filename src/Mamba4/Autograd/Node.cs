using Mamba4.Tensors;

namespace Mamba4.Autograd;

/// <summary>One recorded op: its outputs and the closure that turns their gradients into its inputs' gradients.</summary>
public sealed class Node(string op, Tensor[] outputs, Action backward)
{
    public string Op { get; } = op;
    public Tensor[] Outputs { get; } = outputs;
    internal Action BackwardFn { get; } = backward;
}
