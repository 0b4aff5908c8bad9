using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    // Counter-based randomness: element i keeps iff hash(seed, i) ≥ p·2⁶⁴, so the mask is the same
    // for a given seed whatever the thread split.
    public void DropoutForward(Tensor x, float p, ulong seed, Tensor y, Tensor mask)
    {
        float* px = x.F32, py = y.F32;
        byte* pm = (byte*)mask.DataPointer;
        float scale = 1f / (1f - p);
        ulong threshold = DropoutThreshold(p);
        CpuParallel.For(x.NumElements, 1 << 15, (s, e) =>
        {
            for (long i = s; i < e; i++)
            {
                byte keep = SplitMix64(seed, (ulong)i) >= threshold ? (byte)1 : (byte)0;
                pm[i] = keep;
                py[i] = keep != 0 ? px[i] * scale : 0f;
            }
        });
    }

    public void DropoutBackward(Tensor dy, Tensor mask, float p, Tensor dx)
    {
        float* pdy = dy.F32, pdx = dx.F32;
        byte* pm = (byte*)mask.DataPointer;
        float scale = 1f / (1f - p);
        CpuParallel.For(dy.NumElements, 1 << 15, (s, e) =>
        {
            for (long i = s; i < e; i++) pdx[i] = pm[i] != 0 ? pdy[i] * scale : 0f;
        });
    }

    /// <summary>p·2⁶⁴: an element (or attention weight) is kept iff SplitMix64(seed, index) ≥ this (every backend's masks).</summary>
    internal static ulong DropoutThreshold(float p) => (ulong)(p * 18446744073709551616.0);

    internal static ulong SplitMix64(ulong seed, ulong index)
    {
        ulong z = seed + (index + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
