using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// y[r, o] = s[o] · Σ_i x[r, i] · w[o, i] with x and y F32 and the weight w [n, k] BF16, F16 or I8 (s = the I8 weight's
/// row scale, 1 otherwise): nn.Linear with narrow weights, read as they are, every sum in F32.
/// <list type="bullet">
/// <item>m ≤ <see cref="CpuGemv.MaxRows"/> (decoding): each weight row is streamed once from memory, widened in registers
/// and dotted with every row of x; every y[r, o] is the same <see cref="Dot{T}"/> whatever m is, so a stream's logits do
/// not depend on the batch it shares. (A four-weight-rows-per-x-load tile measured 2.3× slower here: it spills registers.)</item>
/// <item>larger m (prefill): blocks of <see cref="BlockRows"/> weight rows are widened into a small F32 buffer and
/// multiplied by <see cref="CpuGemm.Sgemm"/>; no widened copy of the whole weight exists.</item>
/// </list>
/// Widening: BF16 → F32 is the 16 bits shifted up; F16 → F32 is (bits &amp; 0x7fff) &lt;&lt; 13 read as a float times 2¹¹²
/// (exact for normals and subnormals), the sign or'ed back, exponent 31 mapped to Inf/NaN; I8 → F32 a widening
/// convert. The AVX-512 path uses the x86 widening loads (vpmovzxwd, vpmovsxbd); the portable path Vector256.Widen;
/// the scalar loop is the reference twin. (.NET 10 exposes no AVX-512 BF16 dot product or F16 convert; VNNI would need
/// int8 activations, and activations stay F32 here.)
/// </summary>
internal static unsafe class CpuNarrowGemm
{
    /// <summary>Weight rows widened at once on the GEMM path (a 256 × k F32 buffer: 1 MiB at k = 1024).</summary>
    private const int BlockRows = 256;

    /// <summary>The kernel in use: <see cref="EngineSettings.CpuNarrowKernel"/> resolved against this CPU.</summary>
    public static CpuNarrowKernel Kernel => Backend.Settings.CpuNarrowKernel switch
    {
        CpuNarrowKernel.Auto when Vector512.IsHardwareAccelerated && Avx512F.IsSupported => CpuNarrowKernel.Auto,
        CpuNarrowKernel.Auto or CpuNarrowKernel.Vector256 when Vector256.IsHardwareAccelerated => CpuNarrowKernel.Vector256,
        _ => CpuNarrowKernel.Scalar,
    };

    public static void RowsTimesTransposed(int m, int n, int k, float* x, int ldx, nint w, DType wType, float* scale, float* y, int ldy)
    {
        switch (wType)
        {
            case DType.BF16: Run<Bf16>(m, n, k, x, ldx, w, scale, y, ldy); break;
            case DType.F16: Run<F16>(m, n, k, x, ldx, w, scale, y, ldy); break;
            case DType.I8: Run<I8>(m, n, k, x, ldx, w, scale, y, ldy); break;
            default: throw new ArgumentException($"narrow gemm: weights must be BF16, F16 or I8, not {wType}");
        }
    }

    private static void Run<T>(int m, int n, int k, float* x, int ldx, nint w, float* scale, float* y, int ldy) where T : struct, INarrow
    {
        if (m <= CpuGemv.MaxRows)
        {
            var kernel = Kernel;
            CpuParallel.For(n, CpuGemv.RowGrain(m, n, k), (o0, o1) =>
            {
                for (long o = o0; o < o1; o++)
                {
                    nint row = w + (nint)(o * k * T.Size);
                    float s = Scale(scale, o);
                    for (int r = 0; r < m; r++) y[(long)r * ldy + o] = s * Dot<T>(kernel, x + (long)r * ldx, row, k);
                }
            });
            return;
        }
        var widenKernel = Kernel;
        var block = new float[Math.Min(n, BlockRows) * (long)k];
        fixed (float* b = block)
            for (int o0 = 0; o0 < n; o0 += BlockRows)
            {
                int rows = Math.Min(BlockRows, n - o0);
                float* buffer = b;
                CpuParallel.For(rows, 8, (i0, i1) =>
                {
                    for (long i = i0; i < i1; i++)
                        Widen<T>(widenKernel, w + (nint)((o0 + i) * k * T.Size), buffer + i * k, k, scale == null ? 1f : scale[o0 + i]);
                });
                CpuGemm.Sgemm(false, true, m, rows, k, 1f, x, ldx, b, k, 0f, y + o0, ldy);
            }
    }

    private static float Scale(float* scale, long o) => scale == null ? 1f : scale[o];

    /// <summary>dst[i] = s · widen(w[i]).</summary>
    private static void Widen<T>(CpuNarrowKernel kernel, nint w, float* dst, int k, float s) where T : struct, INarrow
    {
        int i = 0;
        if (kernel == CpuNarrowKernel.Auto)
            for (; i <= k - 16; i += 16) (T.Load16(w, i) * s).Store(dst + i);
        else if (kernel == CpuNarrowKernel.Vector256)
            for (; i <= k - 16; i += 16)
            {
                var (a, b) = T.Load8x2(w, i);
                (a * s).Store(dst + i);
                (b * s).Store(dst + i + 8);
            }
        for (; i < k; i++) dst[i] = s * T.At(w, i);
    }

    /// <summary>Σ_i x[i] · widen(w[i]) in F32 (four vector accumulators, then the tail in order).</summary>
    internal static float Dot<T>(CpuNarrowKernel kernel, float* x, nint w, int k) where T : struct, INarrow
    {
        int i = 0;
        float sum = 0f;
        if (kernel == CpuNarrowKernel.Auto && k >= 64)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i <= k - 64; i += 64)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i), T.Load16(w, i), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 16), T.Load16(w, i + 16), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 32), T.Load16(w, i + 32), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 48), T.Load16(w, i + 48), s3);
            }
            for (; i <= k - 16; i += 16) s0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i), T.Load16(w, i), s0);
            sum = Vector512.Sum((s0 + s1) + (s2 + s3));
        }
        else if (kernel != CpuNarrowKernel.Scalar && k >= 32)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i <= k - 32; i += 32)
            {
                var (a, b) = T.Load8x2(w, i);
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i), a, s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 8), b, s1);
                (a, b) = T.Load8x2(w, i + 16);
                s2 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 16), a, s2);
                s3 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 24), b, s3);
            }
            for (; i <= k - 16; i += 16)
            {
                var (a, b) = T.Load8x2(w, i);
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i), a, s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 8), b, s1);
            }
            sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        for (; i < k; i++) sum += x[i] * T.At(w, i);
        return sum;
    }

    /// <summary>One narrow weight type: element i widened to F32 (scalar), 16 at once (AVX-512), 2 × 8 at once (portable).</summary>
    internal interface INarrow
    {
        static abstract int Size { get; }
        static abstract float At(nint w, int i);
        static abstract Vector512<float> Load16(nint w, int i);
        static abstract (Vector256<float>, Vector256<float>) Load8x2(nint w, int i);
    }

    internal readonly struct Bf16 : INarrow
    {
        public static int Size => 2;
        public static float At(nint w, int i) => BitConverter.UInt32BitsToSingle((uint)((ushort*)w)[i] << 16);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(nint w, int i) =>
            Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)w + i)), 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float>, Vector256<float>) Load8x2(nint w, int i)
        {
            var (lo, hi) = Vector256.Widen(Vector256.Load((ushort*)w + i));
            return ((lo << 16).AsSingle(), (hi << 16).AsSingle());
        }
    }

    internal readonly struct F16 : INarrow
    {
        private const float TwoPow112 = 5.192296858534828e33f;   // 2¹¹²: rebases the half's exponent bias 15 onto float's 127

        public static int Size => 2;
        public static float At(nint w, int i) => (float)BitConverter.UInt16BitsToHalf(((ushort*)w)[i]);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(nint w, int i)
        {
            var h = Avx512F.ConvertToVector512UInt32(Vector256.Load((ushort*)w + i));
            var magnitude = h & Vector512.Create(0x7fffu);
            var value = (magnitude << 13).AsSingle() * Vector512.Create(TwoPow112);
            var special = Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(0x7c00u));
            value = Vector512.ConditionalSelect(special.AsSingle(), ((magnitude << 13) | Vector512.Create(0x7f800000u)).AsSingle(), value);
            return (value.AsUInt32() | ((h & Vector512.Create(0x8000u)) << 16)).AsSingle();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float>, Vector256<float>) Load8x2(nint w, int i)
        {
            var (lo, hi) = Vector256.Widen(Vector256.Load((ushort*)w + i));
            return (Widen8(lo), Widen8(hi));
        }

        private static Vector256<float> Widen8(Vector256<uint> h)
        {
            var magnitude = h & Vector256.Create(0x7fffu);
            var value = (magnitude << 13).AsSingle() * Vector256.Create(TwoPow112);
            var special = Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(0x7c00u));
            value = Vector256.ConditionalSelect(special.AsSingle(), ((magnitude << 13) | Vector256.Create(0x7f800000u)).AsSingle(), value);
            return (value.AsUInt32() | ((h & Vector256.Create(0x8000u)) << 16)).AsSingle();
        }
    }

    internal readonly struct I8 : INarrow
    {
        public static int Size => 1;
        public static float At(nint w, int i) => ((sbyte*)w)[i];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(nint w, int i) =>
            Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)w + i)));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float>, Vector256<float>) Load8x2(nint w, int i)
        {
            var (lo, hi) = Vector128.Widen(Vector128.Load((sbyte*)w + i));
            var (a, b) = Vector256.Widen(Vector256.Create(lo, hi));
            return (Vector256.ConvertToSingle(a), Vector256.ConvertToSingle(b));
        }
    }
}
