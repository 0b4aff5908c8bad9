using System.Diagnostics;
using System.Runtime.InteropServices;
using Mamba4.Backends.Cpu;

namespace Mamba4.Bench;

/// <summary>
/// The managed SGEMM against OpenBLAS on the Mamba projection shapes (tokens = 2048), measured in the same run:
/// the forward Y = X·Wᵀ (W stored [out, in] as in PyTorch) and the backward dX = dY·W, dW = dYᵀ·X.
/// GFLOP/s = 2·m·n·k / time; "median" over all timed runs, "best" the fastest run (the one least disturbed
/// by other processes on a shared machine).
/// </summary>
public static unsafe class GemmBench
{
    private const int Tokens = 2048, WarmUp = 2, Runs = 5, Rounds = 3;

    private delegate void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    public static void Run()
    {
        Console.WriteLine($"gemm: {CpuParallel.Threads} threads; blas: {CpuGemm.BlasDescription}");
        Console.WriteLine($"managed kernel: {CpuGemm.ActiveKernel} (register tile {CpuGemm.MR}×{(CpuGemm.ActiveKernel == CpuGemm.Kernel.Avx2 ? 16 : CpuGemm.NR)}, B panels {CpuGemm.NR} wide)");
        Console.WriteLine($"load average before: {LoadAverage()}");
        Console.WriteLine($"{"product",-24} {"op",2} {"m",5} {"n",5} {"k",5} | GFLOP/s median: {"managed",7} {"OpenBLAS",8} {"ratio",5} | best: {"ratio",5} | managed B/call");
        foreach (var (inFeatures, outFeatures) in new[] { (768, 3072), (1536, 768), (64, 256) })
        {
            // X [tokens, in], W [out, in], Y [tokens, out]
            Measure($"Y=X·Wᵀ {Tokens}×{inFeatures}→{outFeatures}", false, true, Tokens, outFeatures, inFeatures);
            Measure("dX=dY·W", false, false, Tokens, inFeatures, outFeatures);
            Measure("dW=dYᵀ·X", true, false, outFeatures, inFeatures, Tokens);
        }
        Console.WriteLine($"load average after: {LoadAverage()}");
    }

    private static void Measure(string label, bool transA, bool transB, int m, int n, int k)
    {
        var a = Random((long)m * k, 1);
        var b = Random((long)k * n, 2);
        var c = (float*)NativeMemory.AlignedAlloc((nuint)((long)m * n * sizeof(float)), 64);
        int lda = transA ? m : k, ldb = transB ? k : n;
        Sgemm managed = CpuGemm.SgemmManaged, blas = CpuGemm.SgemmOpenBlas;
        var managedTimes = new List<double>();
        var blasTimes = new List<double>();
        try
        {
            // Each in its own block, with a pause after OpenBLAS (its threads spin for a while after a call and
            // would take the cores from the managed kernel); blocks alternate so drift hits both alike.
            for (int round = 0; round < Rounds; round++)
            {
                Block(managed, managedTimes);
                if (!CpuGemm.OpenBlasLoaded) continue;
                Block(blas, blasTimes);
                Thread.Sleep(200);
            }
            long before = GC.GetTotalAllocatedBytes(true);
            for (int i = 0; i < Runs; i++) Call(managed);
            long bytesPerCall = (GC.GetTotalAllocatedBytes(true) - before) / Runs;

            double flops = 2.0 * m * n * k;
            double managedMedian = flops / Median(managedTimes) / 1e9;
            string blasText = "-", ratio = "-", bestRatio = "-";
            if (blasTimes.Count > 0)
            {
                double blasMedian = flops / Median(blasTimes) / 1e9;
                blasText = $"{blasMedian:F1}";
                ratio = $"{managedMedian / blasMedian:F2}";
                bestRatio = $"{blasTimes.Min() / managedTimes.Min():F2}";
            }
            string op = $"{(transA ? 'T' : 'N')}{(transB ? 'T' : 'N')}";
            Console.WriteLine($"{label,-24} {op,2} {m,5} {n,5} {k,5} | {"",15} {managedMedian,7:F1} {blasText,8} {ratio,5} | {"",5} {bestRatio,5} | {bytesPerCall}");
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
            NativeMemory.AlignedFree(c);
        }

        void Call(Sgemm gemm) => gemm(transA, transB, m, n, k, 1f, a, lda, b, ldb, 0f, c, n);

        void Block(Sgemm gemm, List<double> times)
        {
            for (int i = 0; i < WarmUp; i++) Call(gemm);
            for (int i = 0; i < Runs; i++)
            {
                long start = Stopwatch.GetTimestamp();
                Call(gemm);
                times.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
            }
        }
    }

    private static double Median(List<double> xs)
    {
        var sorted = xs.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private static float* Random(long count, int seed)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(float)), 64);
        var rng = new Random(seed);
        for (long i = 0; i < count; i++) p[i] = (float)(rng.NextDouble() * 2 - 1);
        return p;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
