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

    /// <summary>
    /// e^x in float32, inlined (the runtime's Vector256.Exp is an out-of-line call that widens to double, and a
    /// call inside the loop makes the JIT spill every live vector around it). x = k·ln2 + r with |r| ≤ ln2/2:
    /// one FMA with the "magic" constant 1.5·2²³ + 127 rounds x·log2(e) to the integer k and leaves k + 127
    /// in the low mantissa bits, which shifted into the exponent field are 2^k. Cody–Waite r, Cephes' degree-6
    /// polynomial for e^r: ≈ 1 ulp over the normal range. x is clamped to [ln 2⁻¹²⁶, 127.5·ln 2] so that
    /// 2^k stays a normal float: e^x for x &lt; −87.34 is 1.2e-38 instead of 0 (an absolute error that is
    /// nothing next to the states it multiplies) and e^x saturates at 2.4e38 for x &gt; 88.38. NaN propagates.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        // MinNative/MaxNative return their second operand when either is NaN (x86), so NaN survives the clamp.
        x = Vector256.MinNative(Vector256.Create(88.3762626647949f), Vector256.MaxNative(Vector256.Create(-87.3365447505531f), x));
        var t = Vector256.FusedMultiplyAdd(x, Vector256.Create(1.44269504088896341f), Vector256.Create(12583039f));
        var k = t - Vector256.Create(12583039f);
        var r = Vector256.FusedMultiplyAdd(k, Vector256.Create(-0.693359375f), x);
        r = Vector256.FusedMultiplyAdd(k, Vector256.Create(2.12194440e-4f), r);
        var q = Vector256.Create(1.9875691500e-4f);
        q = Vector256.FusedMultiplyAdd(q, r, Vector256.Create(1.3981999507e-3f));
        q = Vector256.FusedMultiplyAdd(q, r, Vector256.Create(8.3334519073e-3f));
        q = Vector256.FusedMultiplyAdd(q, r, Vector256.Create(4.1665795894e-2f));
        q = Vector256.FusedMultiplyAdd(q, r, Vector256.Create(1.6666665459e-1f));
        q = Vector256.FusedMultiplyAdd(q, r, Vector256.Create(5.0000001201e-1f));
        q = Vector256.FusedMultiplyAdd(q, r * r, r + Vector256<float>.One);
        return q * (t.AsInt32() << 23).AsSingle();
    }


    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Sigmoid(Vector256<float> x) =>
        Vector256<float>.One / (Vector256<float>.One + Exp(-x));

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
        var r = Vector256.Max(x, Vector256<float>.Zero) + Log1p(Exp(-Vector256.Abs(x)));
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
        var erfc = t * Exp(-ax * ax + p);
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
