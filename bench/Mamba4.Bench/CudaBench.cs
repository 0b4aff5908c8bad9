using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// The CUDA backend on the GPU machine: device copy bandwidth (the yardstick), the fused selective scan forward and
/// backward on the issue's shapes against mamba_ssm's fused kernel (its table, same H100), with the bytes moved as
/// a share of the copy bandwidth; scan plan variants; the 130M model's generation and forward throughput.
/// Times are CUDA-event medians after warm-up; inputs rotate over several sets when one set would fit in L2.
/// </summary>
public static class CudaBench
{
    private static readonly Device Cuda = Device.Cuda(0);

    // mamba_ssm v2 fused kernel, fp32, on the H100 of the GPU machine (issue 7): fwd, bwd ms
    private static readonly (int B, int D, int L, int N, double Fwd, double Bwd)[] Shapes =
    [
        (8, 1536, 2048, 16, 0.876, 2.065),
        (1, 1536, 16384, 16, 0.997, 2.401),
        (64, 128, 200, 32, 0.127, 0.398),
    ];

    public static void Run()
    {
        if (!Backend.IsAvailable(Cuda, out var why))
        {
            Console.WriteLine($"== cuda: skipped ({why})");
            return;
        }
        var gpu = (CudaBackend)Backend.For(Cuda);
        Console.WriteLine($"== cuda: {gpu.Name}, {gpu.Multiprocessors} SMs, {gpu.TotalMemory / (1 << 20):N0} MiB, driver {CudaBackend.DriverVersion}, NVRTC {CudaBackend.NvrtcVersion}");
        double copy = CopyBandwidth(gpu);
        Console.WriteLine($"device-to-device copy, 1 GiB: {copy / 1e12:F2} TB/s (bytes read + written)");
        Console.WriteLine();
        Console.WriteLine("selective scan, fp32, channels-last (any layout change counted in): ms per call, median");
        Console.WriteLine("| b, d_inner, L, d_state | fwd ms | mamba_ssm | ratio | % copy BW | bwd ms | mamba_ssm | ratio | % copy BW |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var s in Shapes)
        {
            var (fwd, bwd) = TimeScan(gpu, s.B, s.D, s.L, s.N);
            double bld = (double)s.B * s.L * s.D, bln = (double)s.B * s.L * s.N;
            double fwdBytes = (4 * bld + 2 * bln) * 4, bwdBytes = (7 * bld + 4 * bln) * 4;
            Console.WriteLine($"| {s.B}, {s.D}, {s.L}, {s.N} | {fwd:F3} | {s.Fwd:F3} | {s.Fwd / fwd:F2}x | {Percent(fwdBytes, fwd, copy)} | " +
                $"{bwd:F3} | {s.Bwd:F3} | {s.Bwd / bwd:F2}x | {Percent(bwdBytes, bwd, copy)} |");
        }
        Console.WriteLine("(ratio = mamba_ssm time / ours; bytes: fwd reads u, Δ, z, B, C and writes y; bwd also reads dy and writes du, dΔ, dz, dB, dC)");
        Console.WriteLine();
        foreach (var k in new[] { "scan_forward_ns16_sel", "scan_prepare_ns16_sel", "scan_backward_ns4_tpc4_sel", "scan_backward_ns4_tpc4_sel_sub8" })
        {
            var (regs, local) = gpu.KernelResources("scan.cu", k);
            Console.WriteLine($"{k}: {regs} registers, {local} B local memory per thread");
        }
        ScanVariants(gpu);
        Console.WriteLine();
        Generation(gpu);
        Console.WriteLine();
        Console.WriteLine($"allocator: {gpu.Allocator}");
    }

    private static string Percent(double bytes, double ms, double copy) => $"{bytes / (ms * 1e-3) / copy * 100:F0}%";

    internal static double CopyBandwidth(CudaBackend gpu)
    {
        using var a = Tensor.Zeros(new Shape(1 << 28), DType.F32, Cuda);
        using var b = Tensor.Empty(new Shape(1 << 28), DType.F32, Cuda);
        var times = Enumerable.Range(0, 12).Select(_ => gpu.Time(() => gpu.CopyDeviceToDevice(a, b, a.ByteLength))).Skip(2).Order().ToArray();
        return 2.0 * a.ByteLength / (times[times.Length / 2] * 1e-3);
    }

    private sealed class ScanSet(SelectiveScanArgs args, SelectiveScanGrads grads) : IDisposable
    {
        public SelectiveScanArgs Args { get; } = args;
        public SelectiveScanGrads Grads { get; } = grads;

        public void Dispose()
        {
            foreach (var t in new[] { Args.U, Args.Delta, Args.A, Args.B, Args.C, Args.D, Args.Z, Args.DeltaBias, Args.Y,
                         Grads.DY, Grads.DU, Grads.DDelta, Grads.DA, Grads.DB, Grads.DC, Grads.DD, Grads.DZ, Grads.DDeltaBias })
                t?.Dispose();
        }
    }

    private static Tensor Random(Random rng, double lo, double hi, params int[] shape)
    {
        var s = new Shape(shape);
        var v = new float[s.NumElements];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        using var host = Tensor.From(v, shape);
        return host.To(Cuda);
    }

    private static ScanSet MakeSet(int seed, int b, int d, int l, int n)
    {
        var rng = new Random(seed);
        var a = new float[d * n];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < n; j++) a[i * n + j] = -(float)(j + 1);
        using var aHost = Tensor.From(a, d, n);
        var args = new SelectiveScanArgs(Random(rng, -1, 1, b, l, d), Random(rng, -4, 0, b, l, d), aHost.To(Cuda),
            Random(rng, -1, 1, b, l, n), Random(rng, -1, 1, b, l, n), Random(rng, -1, 1, d), Random(rng, -2, 2, b, l, d),
            Random(rng, -0.5, 0.5, d), true, Tensor.Empty(new Shape(b, l, d), DType.F32, Cuda), null);
        Tensor Like(Tensor t) => Tensor.Empty(t.Shape, DType.F32, Cuda);
        var grads = new SelectiveScanGrads(Random(rng, -1, 1, b, l, d), Like(args.U), Like(args.Delta), Like(args.A), Like(args.B), Like(args.C),
            Like(args.D!), Like(args.Z!), Like(args.DeltaBias!));
        return new ScanSet(args, grads);
    }

    private static double Median(IEnumerable<float> values)
    {
        var v = values.Order().ToArray();
        return v[v.Length / 2];
    }

    /// <summary>Median forward and backward ms over <paramref name="reps"/> calls, rotating input sets beyond L2 size.</summary>
    private static (double Fwd, double Bwd) TimeScan(CudaBackend gpu, int b, int d, int l, int n, int reps = 20)
    {
        long setBytes = (long)b * l * d * 4 * 8;
        int sets = (int)Math.Clamp(200_000_000 / setBytes, 1, 6);
        var inputs = Enumerable.Range(0, sets).Select(i => MakeSet(i, b, d, l, n)).ToArray();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                gpu.SelectiveScanForward(inputs[i % sets].Args);
                gpu.SelectiveScanBackward(inputs[i % sets].Args, inputs[i % sets].Grads);
            }
            var fwd = Enumerable.Range(0, reps).Select(i => gpu.Time(() => gpu.SelectiveScanForward(inputs[i % sets].Args))).ToArray();
            var bwd = Enumerable.Range(0, reps).Select(i => gpu.Time(() => gpu.SelectiveScanBackward(inputs[i % sets].Args, inputs[i % sets].Grads))).ToArray();
            return (Median(fwd), Median(bwd));
        }
        finally
        {
            foreach (var s in inputs) s.Dispose();
        }
    }

    /// <summary>The plan's knobs on the two long shapes: forward chunk length and states per thread, backward chunk length.</summary>
    private static void ScanVariants(CudaBackend gpu)
    {
        Console.WriteLine("scan plan variants (ms; auto = the chosen plan):");
        foreach (var s in Shapes)
        {
            var line = new List<string>();
            try
            {
                foreach (var (chunk, states) in new[] { (0, 0), (128, 0), (256, 0), (512, 0), (1024, 0), (2048, 0), (0, 8), (256, 8) })
                {
                    CudaBackend.ScanForwardChunkOverride = chunk;
                    CudaBackend.ScanForwardStatesOverride = states;
                    var (fwd, _) = TimeScan(gpu, s.B, s.D, s.L, s.N, reps: 7);
                    line.Add($"fwd chunk {(chunk == 0 ? "auto" : chunk)} NS {(states == 0 ? "auto" : states)}: {fwd:F3}");
                }
                CudaBackend.ScanForwardChunkOverride = CudaBackend.ScanForwardStatesOverride = 0;
                foreach (var (chunk, block, sub) in new[] { (64, 128, 4), (64, 256, 4), (32, 256, 4), (64, 256, 8), (128, 256, 8) })
                {
                    CudaBackend.ScanBackwardChunkOverride = chunk;
                    CudaBackend.ScanBackwardBlockOverride = block;
                    CudaBackend.ScanBackwardSubOverride = sub;
                    var (_, bwd) = TimeScan(gpu, s.B, s.D, s.L, s.N, reps: 7);
                    line.Add($"bwd chunk {chunk} block {block} sub {sub}: {bwd:F3}");
                }
            }
            catch (Exception e) { line.Add($"failed: {e.Message}"); }
            finally
            {
                CudaBackend.ScanForwardChunkOverride = CudaBackend.ScanForwardStatesOverride = CudaBackend.ScanBackwardChunkOverride = CudaBackend.ScanBackwardBlockOverride = CudaBackend.ScanBackwardSubOverride = 0;
            }
            Console.WriteLine($"  ({s.B}, {s.D}, {s.L}, {s.N}): {string.Join("; ", line)}");
        }
    }

    private static void Generation(CudaBackend gpu)
    {
        var config = new MambaConfig { DModel = 768, NLayer = 24, DState = 16, VocabSize = 50280 };
        using var model = new MambaLM(config, seed: 1);
        model.To(Cuda);
        double weightBytes = model.ParameterCount * 4.0;
        foreach (int batch in new[] { 1, 64 })
        {
            using var state = model.NewState(batch);
            var tokens = Enumerable.Repeat(1L, batch).ToArray();
            double seconds = 0;
            int steps = 64;
            using (GradMode.NoGrad())
            {
                for (int i = 0; i < steps + 8; i++)
                {
                    if (i == 8) seconds = 0;
                    long t0 = Stopwatch.GetTimestamp();
                    using var scope = new TensorScope();
                    var logits = model.Step(Tensor.From(tokens, batch), state).ToFloatArray();   // waits for the GPU
                    Parallel.For(0, batch, r =>
                    {
                        int best = 0, o = r * config.VocabSize;
                        for (int v = 1; v < config.VocabSize; v++) if (logits[o + v] > logits[o + best]) best = v;
                        tokens[r] = best;
                    });
                    seconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
                }
            }
            double perSecond = steps * batch / seconds;
            long launches = gpu.LaunchCount;
            using (GradMode.NoGrad())
            using (var scope = new TensorScope()) model.Step(Tensor.From(tokens, batch), state).ToFloatArray();
            launches = gpu.LaunchCount - launches;
            double limit = 3.0e12 / 2 / weightBytes;   // weights read once per step at the read half of a ~3 TB/s copy... see README
            Console.WriteLine($"generation, 130M shape fp32, batch {batch}: {perSecond:F0} tokens/s ({seconds / steps * 1000:F2} ms/step, no CUDA graph, {launches} kernel launches per step); " +
                $"weights {weightBytes / 1e6:F0} MB per step → {weightBytes / (seconds / steps) / 1e9:F0} GB/s read");
            _ = limit;
        }
        // forward throughput at 8 × 2048 (transformers without fused kernels: 5.8K tokens/s on this H100)
        var rng = new Random(3);
        var ids = Enumerable.Range(0, 8 * 2048).Select(_ => (long)rng.Next(config.VocabSize)).ToArray();
        using (GradMode.NoGrad())
        {
            for (int i = 0; i < 3; i++)
            {
                using var scope = new TensorScope();
                long t0 = Stopwatch.GetTimestamp();
                model.Forward(Tensor.From(ids, 8, 2048));
                gpu.Synchronize();
                double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                if (i == 2) Console.WriteLine($"forward, 130M shape fp32, 8 × 2048: {8 * 2048 / s:F0} tokens/s ({s * 1000:F0} ms)");
            }
        }
        // training step (forward + backward) at 1 × 2048
        for (int i = 0; i < 3; i++)
        {
            using var scope = new TensorScope();
            long t0 = Stopwatch.GetTimestamp();
            var batchIds = Tensor.From(ids[..2048], 1, 2048);
            model.Loss(batchIds).Backward();
            gpu.Synchronize();
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            model.ZeroGrad();
            if (i == 2) Console.WriteLine($"training step (fwd + bwd, no optimizer), 130M shape fp32, 1 × 2048: {2048 / s:F0} tokens/s ({s * 1000:F0} ms)");
        }
    }
}
