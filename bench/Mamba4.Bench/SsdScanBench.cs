using Mamba4.Backends;
using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Mamba-2's SSD scan on the CPU at a Mamba-2 130M-like layer (b 1, L 2048, 24 heads of 64, one group, N 128, chunk 256;
/// D and dt bias present, softplus on): the chunked kernel against the plain double-precision reference twin measured
/// in the same run, forward and backward. The reference is single-threaded, so the kernel is also timed on one thread
/// (the per-core ratio). Times are the best of several calls (wall clock; the machine may be shared: the median and the
/// load average at the start are printed too), plus the native scratch the backward takes beyond its arguments.
/// </summary>
public static class SsdScanBench
{
    public static void Run()
    {
        string load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
        Console.WriteLine($"SSD scan (Mamba-2), CPU: {CpuParallel.Threads} threads ({Environment.ProcessorCount} logical processors), load average {load}");
        Console.WriteLine("shape (b, L, h, p, g, n, chunk)        pass      kernel best/median ms   1 thread ms   reference ms   vs reference (all threads / 1 thread)");
        RunShape(batch: 1, l: 2048, heads: 24, headDim: 64, groups: 1, n: 128, chunk: 256);
    }

    private static void RunShape(int batch, int l, int heads, int headDim, int groups, int n, int chunk)
    {
        using var scope = new TensorScope();
        var (args, grads) = Make(batch, l, heads, headDim, groups, n, chunk);
        var backend = CpuBackend.Instance;
        backend.SsdScanForward(args);
        backend.SsdScanBackward(args, grads);
        var fwd = ScanBench.Time(() => backend.SsdScanForward(args));
        var bwd = ScanBench.Time(() => backend.SsdScanBackward(args, grads));

        long before = CpuAllocator.Shared.BytesInUse;
        CpuAllocator.Shared.ResetPeak();
        backend.SsdScanBackward(args, grads);
        long scratch = CpuAllocator.Shared.PeakBytesInUse - before;

        var engine = Backend.Settings;
        Backend.Configure(engine with { Threads = 1 });
        double fwd1 = ScanBench.Time(() => backend.SsdScanForward(args), minSeconds: 1).Best;
        double bwd1 = ScanBench.Time(() => backend.SsdScanBackward(args, grads), minSeconds: 1).Best;
        Backend.Configure(engine);
        // The reference takes seconds a call: the best of 3.
        double fwdRef = BestOf(3, () => SsdScanReference.Forward(args));
        double bwdRef = BestOf(3, () => SsdScanReference.Backward(args, grads));

        string shape = $"({batch}, {l}, {heads}, {headDim}, {groups}, {n}, {chunk})";
        Report(shape, "forward", fwd, fwd1, fwdRef);
        Report("", "backward", bwd, bwd1, bwdRef);
        Console.WriteLine($"{"",-38} backward scratch {scratch / 1048576.0:F1} MiB native " +
                          $"(x is {(double)batch * l * heads * headDim * 4 / 1048576.0:F0} MiB; the states [b, L, h, p, n] would be {(double)batch * l * heads * headDim * n * 4 / 1048576.0:F0} MiB)");
    }

    private static void Report(string shape, string pass, ScanBench.Timing t, double oneThread, double reference) =>
        Console.WriteLine($"{shape,-38} {pass,-8} {t.Best * 1e3,10:F1} / {t.Median * 1e3,7:F1} {oneThread * 1e3,13:F1} {reference * 1e3,14:F0}   " +
                          $"{reference / t.Best,10:F1}x / {reference / oneThread,5:F1}x");

    private static double BestOf(int calls, Action f)
    {
        double best = double.MaxValue;
        for (int i = 0; i < calls; i++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            f();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    private static (SsdScanArgs, SsdScanGrads) Make(int batch, int l, int heads, int headDim, int groups, int n, int chunk)
    {
        var rng = new Random(1);
        Tensor Uniform(double lo, double hi, params int[] shape)
        {
            var t = Tensor.Empty(new Shape(shape));
            var s = t.AsSpan<float>();
            for (int i = 0; i < s.Length; i++) s[i] = (float)(lo + (hi - lo) * rng.NextDouble());
            return t;
        }
        var x = Uniform(-1, 1, batch, l, heads, headDim);
        var args = new SsdScanArgs(x, Dt: Uniform(-3, 0.5, batch, l, heads), A: Uniform(-8, -1, heads),
            B: Uniform(-1, 1, batch, l, groups, n), C: Uniform(-1, 1, batch, l, groups, n), D: Uniform(-1, 1, heads),
            DtBias: Uniform(-0.5, 0.5, heads), DtSoftplus: true, DtMin: 0f, DtMax: float.PositiveInfinity, ChunkSize: chunk,
            Y: Tensor.Empty(x.Shape), LastState: Tensor.Empty(new Shape(batch, heads, headDim, n)));
        var grads = new SsdScanGrads(DY: Uniform(-1, 1, batch, l, heads, headDim), DX: Tensor.Empty(x.Shape),
            DDt: Tensor.Empty(args.Dt.Shape), DA: Tensor.Empty(new Shape(heads)), DB: Tensor.Empty(args.B.Shape),
            DC: Tensor.Empty(args.C.Shape), DD: Tensor.Empty(new Shape(heads)), DDtBias: Tensor.Empty(new Shape(heads)));
        return (args, grads);
    }
}
