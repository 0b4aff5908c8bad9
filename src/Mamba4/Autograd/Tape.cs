using Mamba4.Tensors;

namespace Mamba4.Autograd;

/// <summary>
/// The per-thread record of differentiable ops in execution order. <see cref="Backward"/> walks it
/// in reverse; gradients accumulate (a tensor used twice receives the sum).
/// </summary>
public static class Tape
{
    [ThreadStatic] private static List<Node>? _nodes;

    private static List<Node> Nodes => _nodes ??= new List<Node>();

    public static int Count => _nodes?.Count ?? 0;

    /// <summary>True when an op with these inputs must record a node.</summary>
    public static bool ShouldRecord(Tensor a) => GradMode.IsEnabled && a.RequiresGrad;
    public static bool ShouldRecord(Tensor a, Tensor? b) => GradMode.IsEnabled && (a.RequiresGrad || (b?.RequiresGrad ?? false));
    public static bool ShouldRecord(params ReadOnlySpan<Tensor?> inputs)
    {
        if (!GradMode.IsEnabled) return false;
        foreach (var t in inputs) if (t is { RequiresGrad: true }) return true;
        return false;
    }

    /// <summary>Records a node producing <paramref name="outputs"/>; marks them as requiring grad.</summary>
    public static void Record(string op, Action backward, params Tensor[] outputs)
    {
        var node = new Node(op, outputs, backward);
        foreach (var o in outputs)
        {
            o.RequiresGrad = true;
            o.GradFn = node;
        }
        Nodes.Add(node);
    }

    internal static void Truncate(int count)
    {
        if (_nodes is { } n && n.Count > count) n.RemoveRange(count, n.Count - count);
    }

    public static void Clear() => _nodes?.Clear();

    public static void Backward(Tensor loss)
    {
        if (loss.NumElements != 1) throw new InvalidOperationException($"Backward() needs a scalar loss; got shape {loss.Shape}");
        if (!loss.RequiresGrad) throw new InvalidOperationException("Backward(): the loss does not require grad (no parameter with RequiresGrad took part, or it was computed under NoGrad)");
        using (GradMode.NoGrad())
        {
            var seed = Tensor.Full(loss.Shape, 1f, loss.Device);
            Accumulate(loss, seed, owned: true);
            RunNodes(0);
            Nodes.Clear();
        }
    }

    /// <summary>
    /// Backpropagates <paramref name="grad"/> (borrowed: neither kept nor freed) from <paramref name="output"/> through the
    /// nodes recorded from index <paramref name="start"/> on, then drops those nodes: the backward of a segment rerun
    /// inside the backward (<see cref="Checkpoint"/>). Runs without recording, as <see cref="Backward"/> does.
    /// </summary>
    internal static void BackwardSegment(int start, Tensor output, Tensor grad)
    {
        using (GradMode.NoGrad())
        {
            if (output.RequiresGrad)
            {
                bool retained = output.RetainGrad;
                output.Grad = grad;
                output.RetainGrad = true;
                try { RunNodes(start); }
                finally { output.Grad = null; output.RetainGrad = retained; }
            }
            Truncate(start);
        }
    }

    /// <summary>The nodes from the last down to index <paramref name="start"/>, each whose outputs received a gradient.</summary>
    private static void RunNodes(int start)
    {
        var nodes = Nodes;
        for (int i = nodes.Count - 1; i >= start; i--)
        {
            var node = nodes[i];
            bool any = false;
            foreach (var o in node.Outputs) any |= o.Grad is not null;
            if (!any) continue;
            node.BackwardFn();
            // An intermediate's gradient is dead once its producer has consumed it.
            foreach (var o in node.Outputs)
                if (!o.RetainGrad && o.Grad is { } g) { o.Grad = null; g.Dispose(); }
        }
    }

    /// <summary>
    /// Where a product (<c>Gemm</c> with β) may write <paramref name="target"/>'s gradient itself: into the gradient it already
    /// has, with β = 1, so that the product adds to it and no addition pass follows (a Mamba block's conv output gets the
    /// scan's gradient first, then x_proj's); else into a new tensor with β = 0, which the caller then hands to
    /// <see cref="Accumulate"/>. The gradient is of <paramref name="type"/> (default: the target's; F32 for a BF16 activation
    /// whose gradient stays F32).
    /// </summary>
    internal static (Tensor Destination, float Beta) GradientDestination(Tensor target, DType? type = null) =>
        target.Grad is { } g && g.Shape == target.Shape && g.DType == (type ?? target.DType)
            ? (g, 1f)
            : (Tensor.Empty(target.Shape, type ?? target.DType, target.Device), 0f);

    /// <summary>The type an op may make <paramref name="target"/>'s gradient in: BF16 where the tensor allows it
    /// (<see cref="Tensor.NarrowGradient"/>) and has no gradient yet, else <paramref name="otherwise"/>.</summary>
    internal static DType GradientType(Tensor target, DType otherwise) =>
        target.NarrowGradient is { } t && target.Grad is null ? t : otherwise;

    /// <summary>
    /// Adds <paramref name="grad"/> into <paramref name="target"/>.Grad (if target requires grad). Gradients of different
    /// types (a BF16 one made for a product's operand beside an F32 one) are added in F32.
    /// With <paramref name="owned"/> the caller hands over a fresh tensor that may become the gradient itself.
    /// </summary>
    public static void Accumulate(Tensor target, Tensor grad, bool owned)
    {
        if (!target.RequiresGrad) { if (owned) grad.Dispose(); return; }
        if (grad.Shape != target.Shape)
            throw new InvalidOperationException($"gradient of shape {grad.Shape} for tensor {target.Name}{target.Shape}");
        if (target.Grad is null)
        {
            var g = owned ? grad : grad.Clone();
            TensorScope.Adopt(g, target.Scope);
            target.Grad = g;
        }
        else
        {
            // a narrow gradient (NarrowGradient) meeting another: the sum in F32
            bool widen = target.Grad.DType != grad.DType || target.Grad.DType == target.NarrowGradient;
            if (widen && target.Grad.DType != DType.F32)
            {
                var wide = target.Grad.To(DType.F32);
                TensorScope.Adopt(wide, target.Scope);
                target.Grad.Dispose();
                target.Grad = wide;
            }
            using (var wideGrad = widen && grad.DType != DType.F32 ? grad.To(DType.F32) : null)
                target.Backend.AddInPlace(target.Grad, wideGrad ?? grad, 1f);
            if (owned) grad.Dispose();
        }
    }
}
