using System.Diagnostics;
using Mamba4.Backends;
using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// The fused selective scan on the CPU, forward and backward (selective B, C; z, D and dt bias present,
/// softplus on, as the Mamba mixer calls it). For each shape (batch, D, L, N): milliseconds per call,
/// b·L·D·N elements per second, effective GB/s of the bytes every call must read and write, the ratio
/// against the scalar double-precision reference measured in the same run (on a slice of the problem:
/// batch 1 and up to 64 channels, same L and N; the reference is single-threaded, so the ratio is also
/// given per core against the fused kernel on one thread), managed bytes allocated per call after warm-up,
/// and the native scratch the backward takes beyond its inputs and outputs.
/// Times are the best of several calls (wall clock; the machine may be shared, so the median and the CPU time
/// per call are printed too; the load average at the start says how busy it was).
/// </summary>
public static class ScanBench
{
    public static void Run()
    {
        string load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
        Console.WriteLine($"selective scan, CPU: {CpuParallel.Threads} threads ({Environment.ProcessorCount} logical processors), " +
                          $"AVX2 {System.Runtime.Intrinsics.X86.Avx2.IsSupported}, AVX-512 {System.Runtime.Intrinsics.X86.Avx512F.IsSupported} (kernel uses 256-bit vectors); load average {load}");
        Console.WriteLine("shape (b, D, L, N)     pass      best ms  median ms  cpu ms   Gelem/s   GB/s   vs reference (all threads / 1 thread)   managed B/call");
        foreach (var (b, d, l, n) in new[] { (8, 1536, 2048, 16), (1, 1536, 4096, 16), (64, 128, 200, 32) })
            RunShape(b, d, l, n);
    }

    private static void RunShape(int batch, int d, int l, int n)
    {
        using var scope = new TensorScope();
        var (args, grads) = Make(batch, d, l, n, seed: 1);
        var backend = CpuBackend.Instance;
        double elements = (double)batch * l * d * n;
        double bld = (double)batch * l * d, bln = (double)batch * l * n;
        double fwdBytes = 4 * (4 * bld + 2 * bln);            // read u, delta, z, B, C; write y
        double bwdBytes = 4 * (7 * bld + 4 * bln);            // read u, delta, z, dy, B, C; write du, ddelta, dz, dB, dC

        // Warm-up (tiered JIT), then time.
        backend.SelectiveScanForward(args);
        backend.SelectiveScanBackward(args, grads);
        var fwd = Time(() => backend.SelectiveScanForward(args));
        var bwd = Time(() => backend.SelectiveScanBackward(args, grads));
        long fwdAlloc = ManagedBytesPerCall(() => backend.SelectiveScanForward(args));
        long bwdAlloc = ManagedBytesPerCall(() => backend.SelectiveScanBackward(args, grads));

        // Native memory the backward takes beyond its arguments (checkpoints, chunk buffers, partial dB/dC).
        long before = CpuAllocator.Shared.BytesInUse;
        CpuAllocator.Shared.ResetPeak();
        backend.SelectiveScanBackward(args, grads);
        long scratch = CpuAllocator.Shared.PeakBytesInUse - before;

        // The same kernel on one thread, and the reference, on a slice: batch 1, up to 64 channels.
        int sd = Math.Min(d, 64);
        var (sArgs, sGrads) = Make(1, sd, l, n, seed: 2);
        double sliceElements = (double)l * sd * n;
        var engine = Backend.Settings;
        Backend.Configure(engine with { Threads = 1 });
        backend.SelectiveScanForward(sArgs);
        backend.SelectiveScanBackward(sArgs, sGrads);
        double fwd1 = Time(() => backend.SelectiveScanForward(sArgs), minSeconds: 1).Best;
        double bwd1 = Time(() => backend.SelectiveScanBackward(sArgs, sGrads), minSeconds: 1).Best;
        Backend.Configure(engine);
        SelectiveScanReference.Forward(sArgs);
        double fwdRef = Time(() => SelectiveScanReference.Forward(sArgs), minSeconds: 1).Best;
        double bwdRef = Time(() => SelectiveScanReference.Backward(sArgs, sGrads), minSeconds: 1).Best;

        string shape = $"({batch}, {d}, {l}, {n})";
        Report(shape, "forward", fwd, elements, fwdBytes, elements / fwd.Best / (sliceElements / fwdRef), fwdRef / fwd1, fwdAlloc);
        Report("", "backward", bwd, elements, bwdBytes, elements / bwd.Best / (sliceElements / bwdRef), bwdRef / bwd1, bwdAlloc);
        Console.WriteLine($"{"",-22} backward scratch {scratch / 1048576.0:F1} MiB native (the states [b, L, D, N] would be {elements * 4 / 1048576.0:F0} MiB); " +
                          $"reference: {sliceElements / fwdRef / 1e6:F0} / {sliceElements / bwdRef / 1e6:F0} Melem/s forward / backward");
    }

    private static void Report(string shape, string pass, Timing t, double elements, double bytes, double ratio, double ratioOneCore, long managed) =>
        Console.WriteLine($"{shape,-22} {pass,-8} {t.Best * 1e3,9:F1} {t.Median * 1e3,10:F1} {t.Cpu * 1e3,7:F0} {elements / t.Best / 1e9,9:F2} {bytes / t.Best / 1e9,6:F2}   " +
                          $"{ratio,10:F0}x / {ratioOneCore,4:F0}x {managed,31}");

    /// <summary>Seconds per call: best and median wall clock, and CPU time of the process (all threads).</summary>
    internal readonly record struct Timing(double Best, double Median, double Cpu);

    private static (SelectiveScanArgs, SelectiveScanGrads) Make(int batch, int d, int l, int n, int seed)
    {
        var rng = new Random(seed);
        Tensor Uniform(double lo, double hi, params int[] shape)
        {
            var t = Tensor.Empty(new Shape(shape));
            var s = t.AsSpan<float>();
            for (int i = 0; i < s.Length; i++) s[i] = (float)(lo + (hi - lo) * rng.NextDouble());
            return t;
        }
        var a = Tensor.Empty(new Shape(d, n));
        var sa = a.AsSpan<float>();
        for (int i = 0; i < d; i++)
            for (int j = 0; j < n; j++) sa[i * n + j] = -(float)((j + 1) * (0.5 + rng.NextDouble()));
        var args = new SelectiveScanArgs(
            U: Uniform(-1, 1, batch, l, d), Delta: Uniform(-3, 0.5, batch, l, d), A: a,
            B: Uniform(-1, 1, batch, l, n), C: Uniform(-1, 1, batch, l, n), D: Uniform(-1, 1, d),
            Z: Uniform(-2, 2, batch, l, d), DeltaBias: Uniform(-0.5, 0.5, d), DeltaSoftplus: true,
            Y: Tensor.Empty(new Shape(batch, l, d)), LastState: Tensor.Empty(new Shape(batch, d, n)));
        var grads = new SelectiveScanGrads(
            DY: Uniform(-1, 1, batch, l, d), DU: Tensor.Empty(new Shape(batch, l, d)), DDelta: Tensor.Empty(new Shape(batch, l, d)),
            DA: Tensor.Empty(new Shape(d, n)), DB: Tensor.Empty(new Shape(batch, l, n)), DC: Tensor.Empty(new Shape(batch, l, n)),
            DD: Tensor.Empty(new Shape(d)), DZ: Tensor.Empty(new Shape(batch, l, d)), DDeltaBias: Tensor.Empty(new Shape(d)));
        return (args, grads);
    }

    /// <summary>Calls <paramref name="f"/> at least 5 times and for at least <paramref name="minSeconds"/>.</summary>
    internal static Timing Time(Action f, double minSeconds = 3)
    {
        var times = new List<double>();
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        var total = Stopwatch.StartNew();
        while (times.Count < 5 || total.Elapsed.TotalSeconds < minSeconds)
        {
            var sw = Stopwatch.StartNew();
            f();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        process.Refresh();
        double cpu = (process.TotalProcessorTime - cpu0).TotalSeconds / times.Count;
        times.Sort();
        return new Timing(times[0], times[times.Count / 2], cpu);
    }

    internal static long ManagedBytesPerCall(Action f, int calls = 5)
    {
        long before = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < calls; i++) f();
        return (GC.GetTotalAllocatedBytes(precise: true) - before) / calls;
    }
}
