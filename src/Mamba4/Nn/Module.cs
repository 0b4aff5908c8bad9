using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>
/// A layer that owns named parameters and child modules, like torch.nn.Module: names join with
/// dots (<c>backbone.layers.0.mixer.in_proj.weight</c>) exactly as PyTorch/HF state dicts spell them.
/// Parameters live outside every <see cref="TensorScope"/> and are disposed with the module.
/// </summary>
public abstract class Module : IDisposable
{
    private readonly List<(string Name, Tensor Tensor)> _parameters = new();
    private readonly List<(string Name, Module Module)> _children = new();

    public bool Training { get; private set; } = true;

    /// <summary>Seed of the next dropout mask; a trainer sets it from (seed, step) so runs are reproducible and resumable.</summary>
    public ulong DropoutSeed { get; set; } = 1;

    protected Tensor Parameter(string name, Tensor value)
    {
        value.Persist();
        value.RequiresGrad = true;
        value.Name ??= name;
        _parameters.Add((name, value));
        return value;
    }

    protected T Child<T>(string name, T module) where T : Module
    {
        _children.Add((name, module));
        return module;
    }

    /// <summary>Every parameter with its full dotted name; a tensor shared by two modules (tied weights) is listed once.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> NamedParameters()
    {
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var (name, t) in NamedParametersWithDuplicates(""))
            if (seen.Add(t)) yield return (name, t);
    }

    private IEnumerable<(string, Tensor)> NamedParametersWithDuplicates(string prefix)
    {
        foreach (var (name, t) in _parameters) yield return (prefix + name, t);
        foreach (var (name, m) in _children)
            foreach (var p in m.NamedParametersWithDuplicates(prefix + name + ".")) yield return p;
    }

    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(p => p.Tensor);

    /// <summary>This module and all its descendants, depth first.</summary>
    public IEnumerable<Module> Modules()
    {
        yield return this;
        foreach (var (_, m) in _children)
            foreach (var d in m.Modules()) yield return d;
    }

    public long ParameterCount => Parameters().Sum(p => p.NumElements);

    public void Train(bool training = true)
    {
        Training = training;
        foreach (var (_, m) in _children) m.Train(training);
    }

    public void Eval() => Train(false);

    /// <summary>
    /// Moves every parameter to <paramref name="device"/> in place: the same tensors (names, tying, RequiresGrad),
    /// new storage; gradients are dropped. Returns this module.
    /// </summary>
    public Module To(Device device)
    {
        foreach (var p in Parameters()) p.MoveTo(device);
        return this;
    }

    public void ZeroGrad()
    {
        foreach (var p in Parameters())
        {
            p.Grad?.Dispose();
            p.Grad = null;
        }
    }

    public virtual void Dispose()
    {
        foreach (var (_, t) in _parameters) t.Dispose();
        foreach (var (_, m) in _children) m.Dispose();
        GC.SuppressFinalize(this);
    }
}
