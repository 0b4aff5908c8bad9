using Mamba4.Tensors;

namespace Mamba4.Nn;

/// <summary>Parameter initialisers (seeded; the same seed gives the same weights).</summary>
public static class Init
{
    [ThreadStatic] private static bool t_skipValues;

    /// <summary>
    /// While the returned scope is open, <see cref="Uniform"/>, <see cref="Normal"/> and <see cref="KaimingUniform"/> only
    /// allocate: nothing is drawn and no page of the new tensor is touched (the operating system commits it on first write).
    /// ModelFiles.Load builds a model this way, since the weight files then fill every parameter: a 7B model kept in BF16
    /// never holds its F32 initialisation in memory.
    /// </summary>
    public static IDisposable SkipValues()
    {
        bool outer = t_skipValues;
        t_skipValues = true;
        return new Restore(() => t_skipValues = outer);
    }

    /// <summary>Whether a <see cref="SkipValues"/> scope is open on this thread (constructors skip their own value loops too).</summary>
    public static bool SkippingValues => t_skipValues;

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }

    public static Tensor Uniform(Random rng, Shape shape, double low, double high)
    {
        var t = Tensor.Empty(shape).Persist();
        if (t_skipValues) return t;
        var s = t.AsSpan<float>();
        for (int i = 0; i < s.Length; i++) s[i] = (float)(low + (high - low) * rng.NextDouble());
        return t;
    }

    /// <summary>Normal(mean, std) by Box–Muller.</summary>
    public static Tensor Normal(Random rng, Shape shape, double mean, double std)
    {
        var t = Tensor.Empty(shape).Persist();
        if (t_skipValues) return t;
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
