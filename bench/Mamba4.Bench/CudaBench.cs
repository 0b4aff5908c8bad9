using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// The CUDA backend on the GPU machine: device copy bandwidth (the yardstick), the fused selective scan forward and
/// backward on the issue's shapes against mamba_ssm's fused kernel (timed in the same call on the same card from ../shared/anchors), with the bytes moved as
/// a share of the copy bandwidth; scan plan variants; the 130M model's generation and forward throughput.
/// Times are CUDA-event medians after warm-up; inputs rotate over several sets when one set would fit in L2.
/// </summary>
public static class CudaBench
{
    private static readonly Device Cuda = Device.Cuda(0);

    /// <summary>The issue's rows; mamba_ssm's times for each come from <see cref="BenchSettings.ScanAnchorFile"/> (written by
    /// ../shared/anchors/scan_anchor.py earlier in the same call, on the same card, by scripts/gpu-test.sh), NaN where it
    /// was not measured (f16: mamba_ssm's script times fp32 and bf16; or no anchor in this run).</summary>
    private static readonly (int B, int D, int L, int N, DType DType)[] Rows =
    [
        (8, 1536, 2048, 16, DType.F32), (8, 1536, 2048, 16, DType.BF16), (8, 1536, 2048, 16, DType.F16),
        (1, 1536, 16384, 16, DType.F32), (1, 1536, 16384, 16, DType.BF16), (1, 1536, 16384, 16, DType.F16),
        (64, 128, 200, 32, DType.F32),
    ];

    private static readonly Lazy<(int B, int D, int L, int N, DType DType, double Fwd, double Bwd)[]> ShapesWithAnchor = new(() =>
    {
        var anchor = new Dictionary<(int, int, int, int, string), (double Fwd, double Bwd)>();
        if (BenchSettings.Current.ScanAnchorFile is { } file && File.Exists(file))
            foreach (var line in File.ReadLines(file))
            {
                if (System.Text.Json.Nodes.JsonNode.Parse(line) is not System.Text.Json.Nodes.JsonObject o || o["shape"] is not System.Text.Json.Nodes.JsonArray shape) continue;
                var dims = shape.Select(v => v!.GetValue<int>()).ToArray();
                anchor[(dims[0], dims[1], dims[2], dims[3], o["dtype"]!.GetValue<string>())] = (o["fwd_ms"]!.GetValue<double>(), o["bwd_ms"]!.GetValue<double>());
            }
        return Rows.Select(r =>
        {
            string name = r.DType == DType.F32 ? "float32" : r.DType == DType.BF16 ? "bfloat16" : "float16";
            var t = anchor.TryGetValue((r.B, r.D, r.L, r.N, name), out var v) ? v : (double.NaN, double.NaN);
            return (r.B, r.D, r.L, r.N, r.DType, t.Item1, t.Item2);
        }).ToArray();
    });

    private static (int B, int D, int L, int N, DType DType, double Fwd, double Bwd)[] Shapes => ShapesWithAnchor.Value;

    private static string TypeName(DType t) => t == DType.F32 ? "fp32" : t == DType.BF16 ? "bf16" : "f16";

    /// <summary>A reference time, or "—" where mamba_ssm was not measured; the ratio reference / ours likewise.</summary>
    private static string Ref(double ms) => double.IsNaN(ms) ? "—" : $"{ms:F3}";
    private static string Ratio(double reference, double ours) => double.IsNaN(reference) ? "—" : $"{reference / ours:F2}x";

    /// <summary>MAMBA4_CUDA_BENCH: unset = everything; <c>scan</c> = the scan table and variants only; <c>profile</c> = a few scan
    /// calls for Nsight Compute (ncu -k regex:scan_) and nothing else; <c>compile</c> = every kernel file and group into the
    /// cubin cache, in parallel.</summary>
    public static void Run()
    {
        if (!Backend.IsAvailable(Cuda, out var why))
        {
            Console.WriteLine($"== cuda: skipped ({why})");
            return;
        }
        var gpu = (CudaBackend)Backend.For(Cuda);
        string mode = BenchSettings.Current.CudaMode;
        if (mode == "profile")
        {
            Profile(gpu);
            return;
        }
        if (mode == "compile")
        {
            CompileAll(gpu);
            return;
        }
        Console.WriteLine($"== cuda: {gpu.Name}, {gpu.Multiprocessors} SMs, {gpu.TotalMemory / (1 << 20):N0} MiB, driver {CudaBackend.DriverVersion}, NVRTC {CudaBackend.NvrtcVersion}");
        double copy = CopyBandwidth(gpu);
        Console.WriteLine($"device-to-device copy, 1 GiB: {copy / 1e12:F2} TB/s (bytes read + written)");
        Console.WriteLine(Shapes.Any(s => !double.IsNaN(s.Fwd))
            ? $"mamba_ssm's fused scan timed in this call on this card: {BenchSettings.Current.ScanAnchorFile}"
            : BenchSettings.Current.ScanAnchorFile is { } anchorFile
                ? $"mamba_ssm's times were asked for but {anchorFile} holds none of the table's rows (its run failed?): no ratios"
                : "mamba_ssm was not timed in this call (run through scripts/gpu-test.sh with ../shared/anchors present): no ratios");
        Console.WriteLine();
        ScanTable(gpu, copy);
        Console.WriteLine();
        foreach (var k in new[] { Kernels.SelectiveScan.ScanForwardNs16Sel, Kernels.SelectiveScan.ScanPrepareNs16Sel, Kernels.SelectiveScan.ScanPrepareNs16TpcxSel, Kernels.SelectiveScan.ScanBackwardNs4Tpc4SelPf })
        {
            var (regs, local) = gpu.KernelResources(Kernels.SelectiveScan.File, k);
            Console.WriteLine($"{k}: {regs} registers, {local} B local memory per thread");
        }
        ScanBackwardBlocks(gpu);
        Console.WriteLine();
        ScanForwardSplits(gpu);
        Console.WriteLine();
        ConvTiledVsPerElement(gpu);
        if (mode == "scan") return;
        Console.WriteLine();
        Generation(gpu);
        Console.WriteLine();
        Console.WriteLine($"allocator: {gpu.Allocator}");
    }

    /// <summary>Every kernel file and compile group compiled for this GPU into the cubin cache, several at a time (one NVRTC
    /// compile is single-threaded; the scan's groups take tens of seconds each), so that the GPU tests or benchmarks run
    /// after it in the same call find them cached instead of compiling one by one.</summary>
    private static void CompileAll(CudaBackend gpu)
    {
        var jobs = CudaCompiler.CompileUnits().ToArray();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int failed = 0, threads = Backend.Settings.Threads > 0 ? Backend.Settings.Threads : Environment.ProcessorCount;   // MAMBA4_THREADS
        Parallel.ForEach(jobs, new ParallelOptions { MaxDegreeOfParallelism = threads }, job =>
        {
            var started = clock.Elapsed.TotalSeconds;
            try
            {
                int bytes = CudaCompiler.Cubin(job.File, CudaCompiler.Program(job.File), gpu.Architecture, job.Group).Length;
                Console.WriteLine($"compiled {job.File} group {job.Group}: {bytes:N0} B in {clock.Elapsed.TotalSeconds - started:F1} s");
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref failed);
                Console.WriteLine($"{job.File} group {job.Group}: failed: {e.Message.Split('\n')[0]}");
            }
        });
        Console.WriteLine($"{jobs.Length} compiles, {failed} failed, {threads} at a time, in {clock.Elapsed.TotalSeconds:F1} s (cache {CudaCompiler.CacheFolder})");
    }

    /// <summary>The issue's table: each row and dtype, our time, the ratio to mamba_ssm, bytes moved as % of the copy bandwidth.</summary>
    private static void ScanTable(CudaBackend gpu, double copy)
    {
        Console.WriteLine("selective scan, channels-last (any layout change counted in): ms per call, median; bf16/f16 = u, Δ, B, C, z, dout and their gradients in bf16/f16");
        Console.WriteLine("| b, d_inner, L, d_state | dtype | fwd ms | mamba_ssm | ratio | % copy BW | bwd ms | mamba_ssm | ratio | % copy BW |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var s in Shapes)
        {
            string name = TypeName(s.DType);
            try
            {
                var sets = MakeSets(s.B, s.D, s.L, s.N, s.DType);
                try
                {
                    var (fwd, bwd) = TimeScan(gpu, sets);
                    int es = s.DType.ElementSize();
                    double bld = (double)s.B * s.L * s.D, bln = (double)s.B * s.L * s.N;
                    double fwdBytes = (4 * bld + 2 * bln) * es, bwdBytes = (7 * bld + 4 * bln) * es;
                    Console.WriteLine($"| {s.B}, {s.D}, {s.L}, {s.N} | {name} | {fwd:F3} | {Ref(s.Fwd)} | {Ratio(s.Fwd, fwd)} | {Percent(fwdBytes, fwd, copy)} | " +
                        $"{bwd:F3} | {Ref(s.Bwd)} | {Ratio(s.Bwd, bwd)} | {Percent(bwdBytes, bwd, copy)} |");
                }
                finally
                {
                    foreach (var set in sets) set.Dispose();
                }
            }
            catch (Exception e) { Console.WriteLine($"| {s.B}, {s.D}, {s.L}, {s.N} | {name} | failed: {e.Message} |"); }
        }
        Console.WriteLine("(ratio = mamba_ssm time / ours; bytes: fwd reads u, Δ, z, B, C and writes y; bwd also reads dy and writes du, dΔ, dz, dB, dC)");
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

    private static Tensor Random(Random rng, double lo, double hi, DType dtype, params int[] shape)
    {
        var s = new Shape(shape);
        var v = new float[s.NumElements];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        using var host = Tensor.From(v, shape);
        return host.To(dtype, Cuda);
    }

    /// <summary>One input set: u, Δ, B, C, z, dout (and y, du, dΔ, dB, dC, dz) in <paramref name="dtype"/>; A, D, Δ-bias and their gradients F32.</summary>
    private static ScanSet MakeSet(int seed, int b, int d, int l, int n, DType dtype)
    {
        var rng = new Random(seed);
        var a = new float[d * n];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < n; j++) a[i * n + j] = -(float)(j + 1);
        using var aHost = Tensor.From(a, d, n);
        const DType f32 = DType.F32;
        var args = new SelectiveScanArgs(Random(rng, -1, 1, dtype, b, l, d), Random(rng, -4, 0, dtype, b, l, d), aHost.To(Cuda),
            Random(rng, -1, 1, dtype, b, l, n), Random(rng, -1, 1, dtype, b, l, n), Random(rng, -1, 1, f32, d), Random(rng, -2, 2, dtype, b, l, d),
            Random(rng, -0.5, 0.5, f32, d), true, Tensor.Empty(new Shape(b, l, d), dtype, Cuda), null);
        Tensor Like(Tensor t) => Tensor.Empty(t.Shape, t.DType, Cuda);
        var grads = new SelectiveScanGrads(Random(rng, -1, 1, dtype, b, l, d), Like(args.U), Like(args.Delta), Like(args.A), Like(args.B), Like(args.C),
            Like(args.D!), Like(args.Z!), Like(args.DeltaBias!));
        return new ScanSet(args, grads);
    }

    /// <summary>Input sets to rotate over: as many as keep the whole rotation beyond the L2 cache (at most 6).</summary>
    private static ScanSet[] MakeSets(int b, int d, int l, int n, DType dtype)
    {
        long setBytes = (long)b * l * d * dtype.ElementSize() * 8;
        int sets = (int)Math.Clamp(200_000_000 / setBytes, 1, 6);
        return Enumerable.Range(0, sets).Select(i => MakeSet(i, b, d, l, n, dtype)).ToArray();
    }

    private static double Median(IEnumerable<float> values)
    {
        var v = values.Order().ToArray();
        return v[v.Length / 2];
    }

    /// <summary>Median forward and backward ms over <paramref name="reps"/> calls, rotating over the input sets.</summary>
    private static (double Fwd, double Bwd) TimeScan(CudaBackend gpu, ScanSet[] sets, int reps = 20)
    {
        for (int i = 0; i < 3; i++)
        {
            gpu.SelectiveScanForward(sets[i % sets.Length].Args);
            gpu.SelectiveScanBackward(sets[i % sets.Length].Args, sets[i % sets.Length].Grads);
        }
        var fwd = Enumerable.Range(0, reps).Select(i => gpu.Time(() => gpu.SelectiveScanForward(sets[i % sets.Length].Args))).ToArray();
        var bwd = Enumerable.Range(0, reps).Select(i => gpu.Time(() => gpu.SelectiveScanBackward(sets[i % sets.Length].Args, sets[i % sets.Length].Grads))).ToArray();
        return (Median(fwd), Median(bwd));
    }

    /// <summary>Backward block sizes on each fp32 shape, interleaved (A, B, A, B, …; medians).</summary>
    private static void ScanBackwardBlocks(CudaBackend gpu)
    {
        Console.WriteLine("scan backward block sizes (ms, interleaved medians):");
        var configs = new[] { 0, 128 };
        foreach (var s in Shapes.Where(s => s.DType == DType.F32))
        {
            var times = configs.Select(_ => new List<float>()).ToArray();
            var sets = MakeSets(s.B, s.D, s.L, s.N, s.DType);
            try
            {
                TimeScan(gpu, sets, reps: 1);
                for (int r = 0; r < 9; r++)
                    for (int c = 0; c < configs.Length; c++)
                    {
                        Backend.Configure(Backend.Settings with { ScanBackwardBlock = configs[c] });
                        var set = sets[r % sets.Length];
                        times[c].Add(gpu.Time(() => gpu.SelectiveScanBackward(set.Args, set.Grads)));
                    }
                Console.WriteLine($"  ({s.B}, {s.D}, {s.L}, {s.N}): " + string.Join("; ",
                    configs.Select((c, i) => $"block {(c == 0 ? "auto" : c)}: {Median(times[i]):F3}")));
            }
            catch (Exception e) { Console.WriteLine($"  ({s.B}, {s.D}, {s.L}, {s.N}): failed: {e.Message}"); }
            finally
            {
                Backend.Configure(Backend.Settings with { ScanBackwardBlock = 0 });
                foreach (var set in sets) set.Dispose();
            }
        }
    }

    /// <summary>
    /// The causal conv (+SiLU) of a Mamba block at the training shapes, forward and backward (dx, dw, db): the tiled kernels
    /// (<see cref="CudaBackend.TiledConv"/>) against the per-element ones, interleaved medians of 9 in the same run, and
    /// the largest difference between their outputs.
    /// </summary>
    private static void ConvTiledVsPerElement(CudaBackend gpu)
    {
        Console.WriteLine("causal conv1d (K 4, SiLU, bias), ms, interleaved medians of 9: per-element kernels vs tiled (CudaBackend.TiledConv)");
        Console.WriteLine("| b, L, d | fwd per-element | tiled | speed-up | bwd per-element | tiled | speed-up | max |difference| |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var (b, l, d) in new[] { (8, 2048, 1536), (1, 16384, 1536), (64, 200, 128) })
        {
            using var scope = new TensorScope();
            var rng = new Random(3);
            Tensor R(params int[] shape) => Tensor.From(Enumerable.Range(0, shape.Aggregate(1, (x, y) => x * y)).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), shape).To(Cuda);
            var (x, w, bias, dy) = (R(b, l, d), R(d, 1, 4), R(d), R(b, l, d));
            var outs = new[] { false, true }.Select(_ => (Y: Tensor.Empty(new Shape(b, l, d), DType.F32, Cuda), Dx: Tensor.Empty(new Shape(b, l, d), DType.F32, Cuda),
                Dw: Tensor.Empty(new Shape(d, 1, 4), DType.F32, Cuda), Db: Tensor.Empty(new Shape(d), DType.F32, Cuda))).ToArray();
            var fwd = new[] { new List<float>(), new List<float>() };
            var bwd = new[] { new List<float>(), new List<float>() };
            try
            {
                for (int r = -1; r < 9; r++)
                    for (int v = 0; v < 2; v++)
                    {
                        gpu.TiledConv = v == 1;
                        var o = outs[v];
                        float f = gpu.Time(() => gpu.CausalConv1dForward(x, w, bias, true, o.Y));
                        float g = gpu.Time(() => gpu.CausalConv1dBackward(x, w, bias, true, dy, o.Dx, o.Dw, o.Db));
                        if (r >= 0) { fwd[v].Add(f); bwd[v].Add(g); }
                    }
            }
            finally { gpu.TiledConv = true; }
            double diff = 0;
            foreach (var (p, q) in new[] { (outs[0].Y, outs[1].Y), (outs[0].Dx, outs[1].Dx), (outs[0].Dw, outs[1].Dw), (outs[0].Db, outs[1].Db) })
            {
                var (pa, qa) = (p.ToFloatArray(), q.ToFloatArray());
                for (int i = 0; i < pa.Length; i++) diff = Math.Max(diff, Math.Abs(pa[i] - qa[i]) / Math.Max(1.0, Math.Abs(pa[i])));
            }
            double f0 = Median(fwd[0]), f1 = Median(fwd[1]), b0 = Median(bwd[0]), b1 = Median(bwd[1]);
            Console.WriteLine($"| {b}, {l}, {d} | {f0:F3} | {f1:F3} | {f0 / f1:F2}× | {b0:F3} | {b1:F3} | {b0 / b1:F2}× | {diff:G2} |");
        }
    }

    /// <summary>
    /// Forward plans on every row and dtype, and at batch 4 and 2 of row 1's shape (fewer channels: where the lanes kernel
    /// has the least parallelism): auto (the chunked kernels, automatic split), the time-parallel lanes kernel at 80 and 128 registers (Lanes, LanesWide; N = 16 only), and the chunked ones at 4 states per thread (more lanes per channel). Interleaved medians (A, B, …, A, B, … over 15 rounds), ms and the ratio to mamba_ssm; the fastest per row is
    /// marked. Then the registers of the forward kernels.
    /// </summary>
    private static void ScanForwardSplits(CudaBackend gpu)
    {
        (int States, ScanForwardPlan Plan)[] configs = [(0, ScanForwardPlan.Auto), (0, ScanForwardPlan.Lanes), (0, ScanForwardPlan.LanesWide), (4, ScanForwardPlan.Auto)];
        string[] variants = ["auto", "lanes", "lanes wide", "ns4"];
        var rows = Shapes.Concat(from b in new[] { 4, 2 } from t in new[] { DType.F32, DType.BF16 } select (B: b, D: 1536, L: 2048, N: 16, DType: t, Fwd: double.NaN, Bwd: double.NaN)).ToArray();
        Console.WriteLine("scan forward splits (ms, interleaved medians of 15; auto is the default; * = fastest of the row; ratio = mamba_ssm / fastest):");
        Console.WriteLine("| b, d_inner, L, d_state | dtype | mamba_ssm | " + string.Join(" | ", variants) + " | fastest | ratio |");
        Console.WriteLine("|---|---|---|" + string.Concat(variants.Select(_ => "---|")) + "---|---|");
        foreach (var s in rows)
        {
            string name = TypeName(s.DType);
            var sets = MakeSets(s.B, s.D, s.L, s.N, s.DType);
            try
            {
                var times = variants.Select(_ => new List<float>()).ToArray();
                var failed = new string?[variants.Length];
                for (int r = 0; r < 16; r++)
                    for (int v = 0; v < variants.Length; v++)
                    {
                        if (failed[v] is not null) continue;
                        if (configs[v].Plan is ScanForwardPlan.Lanes or ScanForwardPlan.LanesWide && s.N != 16) { failed[v] = "N ≠ 16"; continue; }
                        Backend.Configure(Backend.Settings with { ScanForwardStatesPerThread = configs[v].States, ScanForward = configs[v].Plan });
                        var set = sets[(r + v) % sets.Length];
                        try
                        {
                            float t = gpu.Time(() => gpu.SelectiveScanForward(set.Args));
                            if (r > 0) times[v].Add(t);   // round 0 compiles and warms up
                        }
                        catch (Exception e) { failed[v] = e.Message.Split('\n')[0]; }
                    }
                var med = times.Select((t, v) => failed[v] is null && t.Count > 0 ? Median(t) : double.NaN).ToArray();
                int best = Enumerable.Range(0, variants.Length).Where(v => !double.IsNaN(med[v])).MinBy(v => med[v]);
                Console.WriteLine($"| {s.B}, {s.D}, {s.L}, {s.N} | {name} | {Ref(s.Fwd)} | " +
                    string.Join(" | ", med.Select((m, v) => double.IsNaN(m) ? "failed" : $"{m:F3}{(v == best ? "*" : "")}")) +
                    $" | {variants[best]} | {Ratio(s.Fwd, med[best])} |");
                for (int v = 0; v < variants.Length; v++)
                    if (failed[v] is not null) Console.WriteLine($"  {variants[v]} failed: {failed[v]}");
            }
            catch (Exception e) { Console.WriteLine($"| {s.B}, {s.D}, {s.L}, {s.N} | {name} | failed: {e.Message.Split('\n')[0]} |"); }
            finally
            {
                Backend.Configure(Backend.Settings with { ScanForwardStatesPerThread = 0, ScanForward = ScanForwardPlan.Auto });
                foreach (var set in sets) set.Dispose();
            }
        }
        foreach (var k in new[] { Kernels.SelectiveScan.ScanForwardLanes, Kernels.SelectiveScan.ScanForwardLanesBf16, Kernels.SelectiveScan.ScanForwardLanesWide, Kernels.SelectiveScan.ScanForwardLanesWideBf16 })
            try
            {
                var (regs, local) = gpu.KernelResources(Kernels.SelectiveScan.File, k);
                Console.WriteLine($"{k}: {regs} registers, {local} B local memory per thread, {gpu.BlocksPerMultiprocessor(Kernels.SelectiveScan.File, k, 256, 0)} blocks of 256 per SM (registers)");
            }
            catch (Exception e) { Console.WriteLine($"{k}: failed: {e.Message.Split('\n')[0]}"); }
        foreach (var k in new[] { Kernels.SelectiveScan.ScanForwardNs16Sel, Kernels.SelectiveScan.ScanForwardNs16SelBf16, Kernels.SelectiveScan.ScanForwardNs16SelF16, Kernels.SelectiveScan.ScanForwardNs16TpcxSel,
                     Kernels.SelectiveScan.ScanForwardNs4TpcxSel, Kernels.SelectiveScan.ScanForwardNs4TpcxSelBf16 })
        {
            try
            {
                var (regs, local) = gpu.KernelResources(Kernels.SelectiveScan.File, k);
                Console.WriteLine($"{k}: {regs} registers, {local} B local memory per thread, {gpu.BlocksPerMultiprocessor(Kernels.SelectiveScan.File, k, 128, 0)} blocks of 128 per SM (registers)");
            }
            catch (Exception e) { Console.WriteLine($"{k}: failed: {e.Message.Split('\n')[0]}"); }
        }
    }

    /// <summary>For ncu: the first shape's forward (chunked, then the two lanes kernels) and backward in fp32 and bf16, then the long-L shape's backward.</summary>
    private static void Profile(CudaBackend gpu)
    {
        foreach (var (shape, dtype) in new[] { (0, DType.F32), (0, DType.BF16), (3, DType.F32) })
        {
            var s = Shapes[shape];
            using var set = MakeSet(1, s.B, s.D, s.L, s.N, dtype);
            try
            {
                if (shape == 0)
                {
                    gpu.SelectiveScanForward(set.Args);
                    foreach (var plan in new[] { ScanForwardPlan.Lanes, ScanForwardPlan.LanesWide })
                    {
                        Backend.Configure(Backend.Settings with { ScanForward = plan });
                        gpu.SelectiveScanForward(set.Args);
                    }
                    Backend.Configure(Backend.Settings with { ScanForward = ScanForwardPlan.Auto });
                }
                gpu.SelectiveScanBackward(set.Args, set.Grads);
                gpu.Synchronize();
                Console.WriteLine($"profiled ({s.B}, {s.D}, {s.L}, {s.N}) {dtype}");
            }
            catch (Exception e) { Console.WriteLine($"({s.B}, {s.D}, {s.L}, {s.N}) {dtype}: failed: {e.Message}"); }
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
