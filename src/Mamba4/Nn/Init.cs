using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>Parameter initialisers (seeded; the same seed gives the same weights).</summary>
public static class Init
{
    [ThreadStatic] private static bool _skipValues;

    /// <summary>Whether values are being skipped (constructors leave their own value loops alone then, touching no memory).</summary>
    internal static bool ValuesSkipped => _skipValues;

    /// <summary>
    /// While the returned scope is open (on this thread), <see cref="Uniform"/> and <see cref="Normal"/> allocate without
    /// writing values: for a model whose every parameter is about to be read from a checkpoint (<see cref="IO.ModelFiles.Load{T}"/>).
    /// Building is then nearly free, and the F32 memory of a weight that loading replaces by a BF16/F16/I8 one is never touched.
    /// </summary>
    internal static IDisposable SkipValues()
    {
        bool previous = _skipValues;
        _skipValues = true;
        return new Restore(previous);
    }

    private sealed class Restore(bool previous) : IDisposable
    {
        public void Dispose() => _skipValues = previous;
    }

    public static Tensor Uniform(Random rng, Shape shape, double low, double high)
    {
        var t = Tensor.Empty(shape).Persist();
        if (_skipValues) return t;
        var s = t.AsSpan<float>();
        for (int i = 0; i < s.Length; i++) s[i] = (float)(low + (high - low) * rng.NextDouble());
        return t;
    }

    /// <summary>Normal(mean, std) by Box–Muller.</summary>
    public static Tensor Normal(Random rng, Shape shape, double mean, double std)
    {
        var t = Tensor.Empty(shape).Persist();
        if (_skipValues) return t;
        var s = t.AsSpan<float>();
        for (int i = 0; i < s.Length; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            s[i] = (float)(mean + std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return t;
    }

    public static Tensor Constant(Shape shape, float value) => Tensor.Full(shape, value).Persist();

    /// <summary>PyTorch's default nn.Linear / nn.Conv1d init: kaiming_uniform(a=√5) = U(±1/√fan_in).</summary>
    public static Tensor KaimingUniform(Random rng, Shape shape, int fanIn)
    {
        double bound = 1.0 / Math.Sqrt(Math.Max(1, fanIn));
        return Uniform(rng, shape, -bound, bound);
    }
}
