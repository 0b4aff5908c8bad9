using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Mamba4.Backends.Cpu;

/// <summary>An element-wise operator with a scalar body and a Vector256 body (the driver handles tails).</summary>
internal interface IUnaryOp
{
    static abstract float Apply(float x);
    static abstract Vector256<float> Apply(Vector256<float> x);
}

/// <summary>An element-wise operator of two inputs (e.g. x and the upstream gradient).</summary>
internal interface IBinaryOp
{
    static abstract float Apply(float x, float y);
    static abstract Vector256<float> Apply(Vector256<float> x, Vector256<float> y);
}

/// <summary>The one SIMD loop every element-wise kernel uses: 8 floats at a time, then the tail.</summary>
internal static unsafe class Simd
{
    public static void Map<TOp>(float* x, float* y, long n) where TOp : IUnaryOp
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i <= n - 8; i += 8)
                Vector256.Store(TOp.Apply(Vector256.Load(x + i)), y + i);
        for (; i < n; i++) y[i] = TOp.Apply(x[i]);
    }

    public static void Map<TOp>(float* x, float* other, float* y, long n) where TOp : IBinaryOp
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i <= n - 8; i += 8)
                Vector256.Store(TOp.Apply(Vector256.Load(x + i), Vector256.Load(other + i)), y + i);
        for (; i < n; i++) y[i] = TOp.Apply(x[i], other[i]);
    }

    /// <summary>Parallel <see cref="Map{TOp}(float*, float*, long)"/> over large arrays.</summary>
    public static void ParallelMap<TOp>(float* x, float* y, long n) where TOp : IUnaryOp
    {
        if (n < ParallelThreshold) { Map<TOp>(x, y, n); return; }
        CpuParallel.For(n, ParallelThreshold / 2, (s, e) => Map<TOp>(x + s, y + s, e - s));
    }

    public static void ParallelMap<TOp>(float* x, float* other, float* y, long n) where TOp : IBinaryOp
    {
        if (n < ParallelThreshold) { Map<TOp>(x, other, y, n); return; }
        CpuParallel.For(n, ParallelThreshold / 2, (s, e) => Map<TOp>(x + s, other + s, y + s, e - s));
    }

    public const long ParallelThreshold = 1 << 16;

    // ---- shared vector math ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Sigmoid(Vector256<float> x) =>
        Vector256<float>.One / (Vector256<float>.One + Vector256.Exp(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>log(1 + e) for e ≥ 0 to about one ulp: log(u) − ((u − 1) − e)/u with u = 1 + e.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Log1p(Vector256<float> e)
    {
        var u = Vector256<float>.One + e;
        var corrected = Vector256.Log(u) - ((u - Vector256<float>.One) - e) / u;
        // u == 1 exactly: log1p(e) = e.
        return Vector256.ConditionalSelect(Vector256.Equals(u, Vector256<float>.One), e, corrected);
    }

    /// <summary>softplus(x) = log(1 + eˣ) = max(x, 0) + log1p(e^{−|x|}); x when x &gt; 20 (as PyTorch).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Softplus(Vector256<float> x)
    {
        var r = Vector256.Max(x, Vector256<float>.Zero) + Log1p(Vector256.Exp(-Vector256.Abs(x)));
        return Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(20f)), x, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Softplus(float x) => x > 20f ? x : MathF.Max(x, 0f) + (float)Math.Log(1.0 + Math.Exp(-Math.Abs(x)));

    /// <summary>erf(x), Abramowitz–Stegun 7.1.26 refined (max abs error ≈ 1.2e-7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Erf(Vector256<float> x)
    {
        // erf(x) = 1 − t·exp(−x² + P(t)), t = 1/(1 + |x|/2)  (Numerical Recipes erfc, rel. error < 1.2e-7)
        var ax = Vector256.Abs(x);
        var t = Vector256<float>.One / (Vector256<float>.One + Vector256.Create(0.5f) * ax);
        var p = Vector256.Create(0.17087277f);
        p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(-0.82215223f));
        p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(1.48851587f));
        p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(-1.13520398f));
        p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(0.27886807f));
        p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(-0.18628806f));
        p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(0.09678418f));
        p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(0.37409196f));
        p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(1.00002368f));
        p = Vector256.FusedMultiplyAdd(p, t, Vector256.Create(-1.26551223f));
        var erfc = t * Vector256.Exp(-ax * ax + p);
        var r = Vector256<float>.One - erfc;
        return Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), -r, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Erf(float x)
    {
        double ax = Math.Abs(x);
        double t = 1.0 / (1.0 + 0.5 * ax);
        double p = t * Math.Exp(-ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
            t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return (float)(x >= 0 ? 1 - p : p - 1);
    }
}
