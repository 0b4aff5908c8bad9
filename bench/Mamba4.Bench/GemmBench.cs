using System.Diagnostics;
using System.Runtime.InteropServices;
using Mamba4.Backends.Cpu;

namespace Mamba4.Bench;

/// <summary>
/// The managed SGEMM against OpenBLAS on the Mamba projection shapes (tokens = 2048), measured in the same run:
/// forward Y = X·Wᵀ, and the backward products dX = dY·W and dW = dYᵀ·X. GFLOP/s = 2·m·n·k / median time.
/// </summary>
public static unsafe class GemmBench
{
    private const int Tokens = 2048, WarmUp = 2, Runs = 5, Rounds = 3;

    private delegate void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    public static void Run()
    {
        Console.WriteLine($"gemm: {CpuParallel.Threads} threads; blas: {CpuGemm.BlasDescription}");
        Console.WriteLine($"{"product",-26} {"op",2} {"m",5} {"n",5} {"k",5} | {"managed",8} {"OpenBLAS",8} {"ratio",6} | managed B/call");
        foreach (var (inFeatures, outFeatures) in new[] { (768, 3072), (1536, 768), (64, 256) })
        {
            // X [tokens, in], W [out, in] (PyTorch layout), Y [tokens, out]
            Measure($"Y=X·Wᵀ  {Tokens}×{inFeatures}→{outFeatures}", false, true, Tokens, outFeatures, inFeatures);
            Measure($"dX=dY·W", false, false, Tokens, inFeatures, outFeatures);
            Measure($"dW=dYᵀ·X", true, false, outFeatures, inFeatures, Tokens);
        }
    }

    private static void Measure(string label, bool transA, bool transB, int m, int n, int k)
    {
        long aSize = (long)m * k, bSize = (long)k * n, cSize = (long)m * n;
        var a = Random(aSize, 1);
        var b = Random(bSize, 2);
        var c = (float*)NativeMemory.AlignedAlloc((nuint)(cSize * 4), 64);
        int lda = transA ? m : k, ldb = transB ? k : n;
        try
        {
            var managedTimes = new List<double>();
            var blasTimes = new List<double>();
            Sgemm managed = CpuGemm.SgemmManaged;
            Sgemm blas = CpuGemm.Sgemm;
            // Each in its own block (OpenBLAS's threads spin for a while after a call and would steal the cores
            // from the managed kernel), blocks alternated so drift in the machine hits both alike.
            for (int round = 0; round < Rounds; round++)
            {
                Block(managed, managedTimes);
                if (CpuGemm.UsingOpenBlas) Block(blas, blasTimes);
                Thread.Sleep(200);
            }

            void Block(Sgemm gemm, List<double> times)
            {
                for (int i = 0; i < WarmUp; i++) gemm(transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);
                for (int i = 0; i < Runs; i++) times.Add(Time(gemm, transA, transB, m, n, k, a, lda, b, ldb, c));
            }
            // measured around managed calls only
            long before = GC.GetTotalAllocatedBytes(true);
            for (int i = 0; i < Runs; i++) managed(transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);
            long perCall = (GC.GetTotalAllocatedBytes(true) - before) / Runs;

            double flops = 2.0 * m * n * k;
            double gManaged = flops / Median(managedTimes) / 1e9;
            string blasText = "-", ratio = "-";
            if (blasTimes.Count > 0)
            {
                double gBlas = flops / Median(blasTimes) / 1e9;
                blasText = $"{gBlas,8:F1}";
                ratio = $"{gManaged / gBlas,6:F2}";
            }
            string op = $"{(transA ? 'T' : 'N')}{(transB ? 'T' : 'N')}";
            Console.WriteLine($"{label,-26} {op,2} {m,5} {n,5} {k,5} | {gManaged,8:F1} {blasText,8} {ratio,6} | {perCall}");
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
            NativeMemory.AlignedFree(c);
        }
    }

    private static double Time(Sgemm gemm, bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c)
    {
        long start = Stopwatch.GetTimestamp();
        gemm(transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private static double Median(List<double> xs)
    {
        xs.Sort();
        return xs[xs.Count / 2];
    }

    private static float* Random(long count, int seed)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(count * 4), 64);
        var rng = new Random(seed);
        for (long i = 0; i < count; i++) p[i] = (float)(rng.NextDouble() * 2 - 1);
        return p;
    }
}
