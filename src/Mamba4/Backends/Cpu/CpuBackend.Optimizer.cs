using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    public double SumOfSquares(IReadOnlyList<Tensor> xs) => xs.Sum(SumOfSquares);

    private static double SumOfSquares(Tensor x)
    {
        float* p = x.F32;
        long n = x.NumElements;
        double total = 0;
        const int block = 4096;
        for (long i = 0; i < n; i += block)
            total += TensorPrimitives.SumOfSquares(new ReadOnlySpan<float>(p + i, (int)Math.Min(block, n - i)));
        return total;
    }

    public void AdamWStep(IReadOnlyList<AdamWParameter> parameters, float lr, float beta1, float beta2, float eps, float bc1, float bc2, float gradScale = 1f)
    {
        foreach (var p in parameters) AdamWStep(p.Param, p.Grad, p.M, p.V, lr, beta1, beta2, eps, p.WeightDecay, bc1, bc2, p.SkipDecayRow, gradScale);
    }

    private static void AdamWStep(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps, float weightDecay, float bc1, float bc2, long skipDecayRow, float gradScale)
    {
        float* pp = param.F32, pg = grad.F32, pm = m.F32, pv = v.F32;
        long n = param.NumElements;
        int rowLength = param.Shape.Last;
        float stepSize = lr / bc1, rootBc2 = MathF.Sqrt(bc2), decay = lr * weightDecay;
        CpuParallel.For(n, 1 << 15, (s, e) =>
        {
            long i = s;
            if (Vector256.IsHardwareAccelerated)
            {
                var b1 = Vector256.Create(beta1); var b1c = Vector256.Create(1 - beta1);
                var b2 = Vector256.Create(beta2); var b2c = Vector256.Create(1 - beta2);
                var vStep = Vector256.Create(stepSize); var vRoot = Vector256.Create(rootBc2); var vEps = Vector256.Create(eps);
                var vScale = Vector256.Create(gradScale);
                for (; i <= e - 8; i += 8)
                {
                    if (skipDecayRow >= 0 && i / rowLength <= skipDecayRow && (i + 7) / rowLength >= skipDecayRow) break;
                    var g = Vector256.Load(pg + i) * vScale;
                    var mm = b1 * Vector256.Load(pm + i) + b1c * g;
                    var vv = b2 * Vector256.Load(pv + i) + b2c * g * g;
                    Vector256.Store(mm, pm + i);
                    Vector256.Store(vv, pv + i);
                    var p = Vector256.Load(pp + i);
                    p -= Vector256.Create(decay) * p;
                    p -= vStep * mm / (Vector256.Sqrt(vv) / vRoot + vEps);
                    Vector256.Store(p, pp + i);
                }
            }
            for (; i < e; i++)
            {
                float g = pg[i] * gradScale;
                float mm = pm[i] = beta1 * pm[i] + (1 - beta1) * g;
                float vv = pv[i] = beta2 * pv[i] + (1 - beta2) * g * g;
                float p = pp[i];
                if (i / rowLength != skipDecayRow) p -= decay * p;
                pp[i] = p - stepSize * mm / (MathF.Sqrt(vv) / rootBc2 + eps);
            }
        });
    }
}
