using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Mamba-2's SSD scan on the GPU (F32): forward and backward of the chunked kernels at mamba_ssm's usual shape beside its Triton
/// <c>mamba_chunk_scan_combined</c>, timed in the same call on the same card by scripts/ssd_anchor.py (MAMBA4_SSD_ANCHOR, written
/// by scripts/gpu-test.sh before this benchmark), and the decoding step. CUDA-event medians after warm-up. Each row twice: chunk
/// products F32-accurate (3xTF32, MatmulPrecision F32), then single TF32 (MatmulPrecision TF32: mamba_ssm's precision).
/// </summary>
public static class CudaSsdBench
{
    private static readonly Device Cuda = Device.Cuda(0);

    // One row: scripts/gpu-ssd.sh's Nsight Compute runs skip to its kernels by count (110, and 547 for the TF32 pass: 437 ssd_
    // launches a precision = 23 runs (Median's 3 + 20) of the forward's 5, the backward's 13 and the step's 1). A second row
    // or another warm-up count moves them.
    private static readonly (int B, int L, int H, int P, int G, int N, int Chunk)[] Rows = [(8, 2048, 24, 64, 1, 128, 256)];

    /// <summary>The two precisions of the chunk products, timed and checked in this order.</summary>
    private static readonly (MatmulPrecision Precision, string Label)[] Products = [(MatmulPrecision.F32, "3xTF32 (F32)"), (MatmulPrecision.Tf32, "TF32")];

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
        Console.WriteLine("| b, L, h, p, g, n, chunk | products | fwd ms | mamba_ssm | ratio | bwd ms | mamba_ssm | ratio | step µs (batch b) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        var precision = gpu.MatmulPrecision;
        foreach (var (products, label) in Products)
        foreach (var r in Rows)
        {
            gpu.MatmulPrecision = products;
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
            Console.WriteLine($"| {r.B}, {r.L}, {r.H}, {r.P}, {r.G}, {r.N}, {r.Chunk} | {label} | {fwd:F3} | {Ref(aF)} | {Ratio(aF, fwd)} | {bwd:F3} | {Ref(aB)} | {Ratio(aB, bwd)} | {step:F1} |");
        }
        gpu.MatmulPrecision = precision;
        Accuracy(gpu);
        Console.WriteLine("(ratio = mamba_ssm time / ours: above 1 we are faster; F32 tensors throughout; our chunk products 3xTF32 mma (F32-accurate) or " +
            "single TF32; mamba_ssm's Triton tl.dot as it defaults on F32 inputs: TF32)");
        foreach (var k in new[] { Kernels.SsdScan.SsdMixFwdC4, Kernels.SsdScan.SsdMixBfC4, Kernels.SsdScan.SsdMixBxC4, Kernels.SsdScan.SsdMixDbC4,
            Kernels.SsdScan.SsdMixDcC4, Kernels.SsdScan.SsdChunkState, Kernels.SsdScan.SsdDcb })
        foreach (var name in new[] { k, k + "_tf32" }.Where(Kernels.ByFile[Kernels.SsdScan.File].Contains))   // bx, dcb: no twin
        {
            var (regs, local) = gpu.KernelResources(Kernels.SsdScan.File, name);
            Console.WriteLine($"{name}: {regs} registers, {local} B local memory per thread");
        }
    }

    /// <summary>y and every gradient of both product precisions against the CPU's float64 recurrence (SsdScanReference), max
    /// |err| / max |ref|, at scripts/ssd_anchor.py's accuracy shape and input distributions (which prints mamba_ssm's beside).</summary>
    private static void Accuracy(CudaBackend gpu)
    {
        const int b = 1, l = 512, h = 2, p = 64, g = 1, n = 128, chunk = 256;
        var rng = new Random(2);
        float Normal() => (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        float[] V(int count, Func<float> draw) => Enumerable.Range(0, count).Select(_ => draw()).ToArray();
        var host = new[] { V(b * l * h * p, Normal), V(b * l * h, () => Normal() - 2), V(h, () => -(float)(rng.NextDouble() * 4 + 0.5)),
            V(b * l * g * n, Normal), V(b * l * g * n, Normal), V(h, Normal), V(h, () => 0.1f * Normal()), V(b * l * h * p, Normal) };
        int[][] shapes = [[b, l, h, p], [b, l, h], [h], [b, l, g, n], [b, l, g, n], [h], [h], [b, l, h, p]];
        string[] names = ["y", "dx", "ddt", "dA", "dB", "dC", "dD", "dDtBias"];
        Tensor[] Run(IBackend backend, Device device)
        {
            var t = host.Select((v, i) => Tensor.From(v, shapes[i]).To(device)).ToArray();
            Tensor Like(Tensor x) => Tensor.Empty(x.Shape, DType.F32, device);
            var args = new SsdScanArgs(t[0], t[1], t[2], t[3], t[4], t[5], t[6], true, 0f, float.PositiveInfinity, chunk, Like(t[0]), null);
            var grads = new SsdScanGrads(t[7], Like(t[0]), Like(t[1]), Like(t[2]), Like(t[3]), Like(t[4]), Like(t[5]), Like(t[6]));
            backend.SsdScanForward(args);
            backend.SsdScanBackward(args, grads);
            return [args.Y, grads.DX, grads.DDt, grads.DA, grads.DB, grads.DC, grads.DD!, grads.DDtBias!];
        }
        using var scope = new TensorScope();
        var reference = Run(Backend.For(Device.Cpu), Device.Cpu).Select(t => t.ToFloatArray()).ToArray();
        Console.WriteLine($"accuracy at b {b}, L {l}, h {h}, p {p}, g {g}, n {n}, chunk {chunk} against the CPU's float64 recurrence (max |err| / max |ref|):");
        Console.WriteLine($"| products | {string.Join(" | ", names)} |");
        var precision = gpu.MatmulPrecision;
        foreach (var (products, label) in Products)
        {
            gpu.MatmulPrecision = products;
            var ours = Run(gpu, Cuda).Select(t => t.ToFloatArray()).ToArray();
            var errors = ours.Select((o, i) => o.Zip(reference[i], (x, r) => Math.Abs((double)x - r)).Max() / Math.Max(reference[i].Max(Math.Abs), 1e-3));
            Console.WriteLine($"| {label} | {string.Join(" | ", errors.Select(e => e.ToString("0.0e+0")))} |");
        }
        gpu.MatmulPrecision = precision;
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
