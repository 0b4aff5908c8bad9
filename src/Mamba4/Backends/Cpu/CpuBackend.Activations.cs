using System.Runtime.Intrinsics;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void ActivationForward(Activation kind, Tensor x, Tensor y)
    {
        long n = x.NumElements;
        switch (kind)
        {
            case Activation.SiLU: Simd.ParallelMap<SiLU>(x.F32, y.F32, n); break;
            case Activation.Gelu: Simd.ParallelMap<Gelu>(x.F32, y.F32, n); break;
            case Activation.Softplus: Simd.ParallelMap<Softplus>(x.F32, y.F32, n); break;
            case Activation.Exp: Simd.ParallelMap<Exp>(x.F32, y.F32, n); break;
            default: throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    public void ActivationBackward(Activation kind, Tensor x, Tensor dy, Tensor dx)
    {
        long n = x.NumElements;
        switch (kind)
        {
            case Activation.SiLU: Simd.ParallelMap<SiLUGrad>(x.F32, dy.F32, dx.F32, n); break;
            case Activation.Gelu: Simd.ParallelMap<GeluGrad>(x.F32, dy.F32, dx.F32, n); break;
            case Activation.Softplus: Simd.ParallelMap<SoftplusGrad>(x.F32, dy.F32, dx.F32, n); break;
            case Activation.Exp: Simd.ParallelMap<ExpGrad>(x.F32, dy.F32, dx.F32, n); break;
            default: throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    // silu(x) = x·σ(x)
    internal struct SiLU : IUnaryOp
    {
        public static float Apply(float x) => x * Simd.Sigmoid(x);
        public static Vector256<float> Apply(Vector256<float> x) => x * Simd.Sigmoid(x);
    }

    // silu'(x) = σ(x)·(1 + x·(1 − σ(x))); (x, dy) → dy·silu'(x)
    internal struct SiLUGrad : IBinaryOp
    {
        public static float Apply(float x, float dy)
        {
            float s = Simd.Sigmoid(x);
            return dy * s * (1f + x * (1f - s));
        }

        public static Vector256<float> Apply(Vector256<float> x, Vector256<float> dy)
        {
            var s = Simd.Sigmoid(x);
            return dy * s * (Vector256<float>.One + x * (Vector256<float>.One - s));
        }
    }

    // gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2))
    internal struct Gelu : IUnaryOp
    {
        public static float Apply(float x) => 0.5f * x * (1f + Simd.Erf(x * 0.70710678f));
        public static Vector256<float> Apply(Vector256<float> x) =>
            Vector256.Create(0.5f) * x * (Vector256<float>.One + Simd.Erf(x * Vector256.Create(0.70710678f)));
    }

    // gelu'(x) = Φ(x) + x·φ(x), φ(x) = e^{−x²/2}/√(2π)
    internal struct GeluGrad : IBinaryOp
    {
        public static float Apply(float x, float dy) =>
            dy * (0.5f * (1f + Simd.Erf(x * 0.70710678f)) + x * 0.39894228f * MathF.Exp(-0.5f * x * x));

        public static Vector256<float> Apply(Vector256<float> x, Vector256<float> dy)
        {
            var cdf = Vector256.Create(0.5f) * (Vector256<float>.One + Simd.Erf(x * Vector256.Create(0.70710678f)));
            var pdf = Vector256.Create(0.39894228f) * Simd.Exp(Vector256.Create(-0.5f) * x * x);
            return dy * (cdf + x * pdf);
        }
    }

    // softplus(x) = log(1 + eˣ)  (x when x > 20)
    internal struct Softplus : IUnaryOp
    {
        public static float Apply(float x) => Simd.Softplus(x);
        public static Vector256<float> Apply(Vector256<float> x) => Simd.Softplus(x);
    }

    // softplus'(x) = σ(x)  (1 when x > 20)
    internal struct SoftplusGrad : IBinaryOp
    {
        public static float Apply(float x, float dy) => x > 20f ? dy : dy * Simd.Sigmoid(x);
        public static Vector256<float> Apply(Vector256<float> x, Vector256<float> dy) =>
            Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(20f)), dy, dy * Simd.Sigmoid(x));
    }

    // exp(x); d/dx = exp(x)
    internal struct Exp : IUnaryOp
    {
        public static float Apply(float x) => MathF.Exp(x);
        public static Vector256<float> Apply(Vector256<float> x) => Simd.Exp(x);
    }

    internal struct ExpGrad : IBinaryOp
    {
        public static float Apply(float x, float dy) => dy * MathF.Exp(x);
        public static Vector256<float> Apply(Vector256<float> x, Vector256<float> dy) => dy * Simd.Exp(x);
    }
}
