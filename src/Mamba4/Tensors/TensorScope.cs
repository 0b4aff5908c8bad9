using Mamba4.Autograd;

namespace Mamba4.Tensors;

/// <summary>
/// Explicit lifetimes: every tensor created while a scope is open (on this thread) is disposed
/// when the scope ends, returning its memory to the pool. Tape nodes recorded inside the scope are
/// dropped with it. <see cref="Keep"/> moves a result to the enclosing scope (or out of all scopes).
/// <code>
/// using (var scope = new TensorScope()) { var loss = model.Loss(batch); loss.Backward(); }
/// </code>
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? _current;

    private readonly TensorScope? _parent;
    private readonly List<Tensor> _owned = new();
    private readonly int _tapeStart;
    private bool _disposed;

    public TensorScope()
    {
        _parent = _current;
        _current = this;
        _tapeStart = Tape.Count;
    }

    public static TensorScope? Current => _current;

    /// <summary>Number of live tensors this scope will dispose.</summary>
    public int Count => _owned.Count(t => t.Scope == this && !t.IsDisposed);

    internal static void Track(Tensor t)
    {
        var s = _current;
        if (s is null) return;
        t.Scope = s;
        s._owned.Add(t);
    }

    internal static void Adopt(Tensor t, TensorScope? scope)
    {
        if (t.Scope == scope) return;
        t.Scope = scope;
        scope?._owned.Add(t);
    }

    /// <summary>Moves <paramref name="t"/> to the enclosing scope so it survives this one.</summary>
    public Tensor Keep(Tensor t)
    {
        if (t.Scope == this) Adopt(t, _parent);
        return t;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_current != this) throw new InvalidOperationException("TensorScopes must be disposed in the reverse order of creation");
        _current = _parent;
        Tape.Truncate(_tapeStart);
        foreach (var t in _owned)
            if (t.Scope == this) t.Dispose();
        _owned.Clear();
    }
}
