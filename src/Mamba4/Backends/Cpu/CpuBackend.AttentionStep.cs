using System.Numerics.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    // One query per stream against the cached keys 0..t−1:  s_j = q·k_j/√D,  p = softmax(s),  y = Σ_j p_j v_j.
    public void AttentionStep(Tensor q, Tensor kCache, Tensor vCache, int length, int heads, Tensor y)
    {
        int batch = q.Shape[0], width = q.Shape[1], d = width / heads, capacity = kCache.Shape[1];
        float* pq = q.F32, pk = kCache.F32, pv = vCache.F32, py = y.F32;
        float scale = 1f / MathF.Sqrt(d);
        CpuParallel.For((long)batch * heads, 1, (s0, s1) =>
        {
            var scores = new float[length];
            for (long item = s0; item < s1; item++)
            {
                long b = item / heads, h = item % heads;
                var qh = new ReadOnlySpan<float>(pq + b * width + h * d, d);
                float* keys = pk + b * capacity * width + h * d, values = pv + b * capacity * width + h * d;
                for (int j = 0; j < length; j++) scores[j] = TensorPrimitives.Dot(qh, new ReadOnlySpan<float>(keys + (long)j * width, d)) * scale;
                TensorPrimitives.SoftMax(scores, scores);
                var yh = new Span<float>(py + b * width + h * d, d);
                yh.Clear();
                for (int j = 0; j < length; j++)
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(values + (long)j * width, d), scores[j], yh, yh);
            }
        });
    }
}
