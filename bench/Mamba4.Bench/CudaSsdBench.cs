using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Mamba-2's SSD scan on the GPU (F32): forward and backward of the chunked kernels at mamba_ssm's usual shape beside its Triton
/// <c>mamba_chunk_scan_combined</c>, timed in the same call on the same card by scripts/ssd_anchor.py (MAMBA4_SSD_ANCHOR, written
/// by scripts/gpu-test.sh before this benchmark), and the decoding step. CUDA-event medians after warm-up.
/// </summary>
public static class CudaSsdBench
{
    private static readonly Device Cuda = Device.Cuda(0);

    private static readonly (int B, int L, int H, int P, int G, int N, int Chunk)[] Rows = [(8, 2048, 24, 64, 1, 128, 256)];

    public static void Run()
    {
        if (!Backend.IsAvailable(Cuda, out var why))
        {
            Console.WriteLine($"== cuda-ssd: skipped ({why})");
            return;
        }
        var gpu = (CudaBackend)Backend.For(Cuda);
        var anchor = Anchor();
        Console.WriteLine($"== cuda-ssd: {gpu.Name}; mamba_ssm {(anchor.Count > 0 ? "timed in this call on this card" : "not timed in this call: no ratios")}");
        Console.WriteLine("| b, L, h, p, g, n, chunk | fwd ms | mamba_ssm | ratio | bwd ms | mamba_ssm | ratio | step µs (batch b) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in Rows)
        {
            using var scope = new TensorScope();
            var rng = new Random(1);
            Tensor U(double lo, double hi, params int[] shape) => Rand(rng, lo, hi, shape);
            var args = new SsdScanArgs(U(-1, 1, r.B, r.L, r.H, r.P), U(-4, 0, r.B, r.L, r.H), U(-4.5, -0.5, r.H),
                U(-1, 1, r.B, r.L, r.G, r.N), U(-1, 1, r.B, r.L, r.G, r.N), U(-1, 1, r.H), U(-0.1, 0.1, r.H),
                true, 0f, float.PositiveInfinity, r.Chunk, Tensor.Empty(new Shape(r.B, r.L, r.H, r.P), DType.F32, Cuda), null);
            Tensor Like(Tensor t) => Tensor.Empty(t.Shape, DType.F32, Cuda);
            var grads = new SsdScanGrads(U(-1, 1, r.B, r.L, r.H, r.P), Like(args.X), Like(args.Dt), Like(args.A), Like(args.B), Like(args.C), Like(args.D!), Like(args.DtBias!));
            double fwd = Median(gpu, () => gpu.SsdScanForward(args));
            double bwd = Median(gpu, () => gpu.SsdScanBackward(args, grads));
            var state = U(-1, 1, r.B, r.H, r.P, r.N);
            Tensor x = U(-1, 1, r.B, r.H, r.P), dt = U(-4, 0, r.B, r.H), b = U(-1, 1, r.B, r.G, r.N), c = U(-1, 1, r.B, r.G, r.N), y = Like(x);
            double step = Median(gpu, () => gpu.SsdScanStep(x, dt, args.A, b, c, args.D, args.DtBias, true, 0f, float.PositiveInfinity, state, y)) * 1000;
            var key = $"{r.B},{r.L},{r.H},{r.P},{r.G},{r.N},{r.Chunk}";
            var (aF, aB) = anchor.TryGetValue(key, out var t) ? t : (double.NaN, double.NaN);
            Console.WriteLine($"| {r.B}, {r.L}, {r.H}, {r.P}, {r.G}, {r.N}, {r.Chunk} | {fwd:F3} | {Ref(aF)} | {Ratio(aF, fwd)} | {bwd:F3} | {Ref(aB)} | {Ratio(aB, bwd)} | {step:F1} |");
        }
        Console.WriteLine("(ratio = mamba_ssm time / ours: above 1 we are faster; both F32, ours 3xTF32 mma (F32-accurate), mamba_ssm's Triton tl.dot as it defaults)");
        foreach (var k in new[] { Kernels.SsdScan.SsdMixFwdC4, Kernels.SsdScan.SsdMixBfC4, Kernels.SsdScan.SsdMixBxC4, Kernels.SsdScan.SsdMixDbC4,
            Kernels.SsdScan.SsdMixDcC4, Kernels.SsdScan.SsdChunkState, Kernels.SsdScan.SsdDcb })
        {
            var (regs, local) = gpu.KernelResources(Kernels.SsdScan.File, k);
            Console.WriteLine($"{k}: {regs} registers, {local} B local memory per thread");
        }
    }

    private static Tensor Rand(Random rng, double lo, double hi, int[] shape)
    {
        var v = new float[new Shape(shape).NumElements];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        using var host = Tensor.From(v, shape);
        return host.To(Cuda);
    }

    private static double Median(CudaBackend gpu, Action work, int reps = 20)
    {
        for (int i = 0; i < 3; i++) work();
        var times = Enumerable.Range(0, reps).Select(_ => gpu.Time(work)).Order().ToArray();
        return times[reps / 2];
    }

    /// <summary>mamba_ssm's times by "b,L,h,p,g,n,chunk" from <see cref="BenchSettings.SsdAnchorFile"/>.</summary>
    private static Dictionary<string, (double Fwd, double Bwd)> Anchor()
    {
        var times = new Dictionary<string, (double, double)>();
        if (BenchSettings.Current.SsdAnchorFile is not { } file || !File.Exists(file)) return times;
        foreach (var line in File.ReadLines(file))
            if (System.Text.Json.Nodes.JsonNode.Parse(line) is System.Text.Json.Nodes.JsonObject o && o["shape"] is System.Text.Json.Nodes.JsonArray shape)
                times[string.Join(',', shape.Select(v => v!.GetValue<int>()))] = (o["fwd_ms"]!.GetValue<double>(), o["bwd_ms"]!.GetValue<double>());
        return times;
    }

    private static string Ref(double ms) => double.IsNaN(ms) ? "—" : $"{ms:F3}";
    private static string Ratio(double reference, double ours) => double.IsNaN(reference) ? "—" : $"{reference / ours:F2}x";
}
