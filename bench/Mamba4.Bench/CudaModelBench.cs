using System.Diagnostics;
using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Data.Recommendation;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tasks.Recommendation;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Bench;

/// <summary>
/// End-to-end numbers of the CUDA backend (bench name "cuda-model"): peak device memory of a Mamba training step at
/// L = 1K, 4K, 16K; training tokens/s at L = 2048 (130M shape); generation tokens/s at batch 1 and 64 with and without
/// the captured CUDA graph, against the weight-read bandwidth limit; a Mamba4Rec epoch on the GPU and on the CPU backend.
/// </summary>
public static class CudaModelBench
{
    private static readonly Device Cuda = Device.Cuda(0);
    private static readonly MambaConfig Config130M = new() { DModel = 768, NLayer = 24, DState = 16, VocabSize = 50280 };

    public static void Run()
    {
        if (!Backend.IsAvailable(Cuda, out var why))
        {
            Console.WriteLine($"== cuda-model: skipped ({why})");
            return;
        }
        var gpu = (CudaBackend)Backend.For(Cuda);
        Console.WriteLine($"== cuda-model: {gpu.Name}, driver CUDA {CudaBackend.DriverVersionText}, NVRTC {CudaBackend.NvrtcVersion}");
        double copy = CudaBench.CopyBandwidth(gpu);
        Console.WriteLine($"device-to-device copy: {copy / 1e12:F2} TB/s (bytes read + written)");
        using (var model = new MambaLM(Config130M, seed: 1))
        {
            model.To(Cuda);
            if (BenchSettings.Current.CudaMode == "generation-profile")
            {
                GenerationProfile(gpu, model);
                return;
            }
            if (BenchSettings.Current.CudaMode == "flags")
            {
                Flags(gpu, model);
                return;
            }
            if (BenchSettings.Current.CudaMode.StartsWith("region-"))
            {
                ProfileRegion(gpu, model, BenchSettings.Current.CudaMode["region-".Length..]);
                return;
            }
            string mode = BenchSettings.Current.CudaMode;   // "" everything; "generation" or "prefill": that table alone;
                                                            // "generation-1": its fused batch-1 rows (two builds timed in turn)
            if (mode == "")
            {
                Memory(gpu, model);
                Training(gpu, model);
            }
            if (mode is "" or "prefill") Prefill(gpu, model);
            if (mode is "" or "generation" or "generation-1") Generation(gpu, model, copy, batchOne: mode == "generation-1");
        }
        if (BenchSettings.Current.CudaMode == "") RecEpoch();
        Console.WriteLine($"allocator: {gpu.Allocator}");
    }

    private static long[] RandomIds(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (long)rng.Next(vocab)).ToArray();
    }

    private static void Memory(CudaBackend gpu, MambaLM model)
    {
        Console.WriteLine();
        Console.WriteLine("peak device memory of a training step (forward + backward + AdamW), 130M shape fp32, batch 1:");
        using var optimizer = new AdamW(model, 1e-4f);
        // a stored [L, d_inner, d_state] state tensor per layer would cost this many bytes per token
        double statesPerToken = (double)Config130M.NLayer * Config130M.DInner * Config130M.DState * 4;
        Console.WriteLine("| L | peak bytes | step bytes (peak − resident) | step bytes / L |");
        Console.WriteLine("|---|---|---|---|");
        double? first = null;
        foreach (int l in new[] { 1024, 4096, 16384 })
        {
            var ids = RandomIds(l, Config130M.VocabSize, l);
            TrainMemoryBench.Step(model, optimizer, ids, 1, l);   // warm-up (kernels, cuBLAS, optimizer state)
            gpu.Synchronize();
            long resident = gpu.Allocator.BytesInUse;
            gpu.Allocator.ResetPeak();
            TrainMemoryBench.Step(model, optimizer, ids, 1, l);
            long peak = gpu.Allocator.PeakBytesInUse, step = peak - resident;
            first ??= (double)step / l;
            Console.WriteLine($"| {l} | {peak:N0} | {step:N0} | {step / (double)l:N0} ({step / (double)l / first:F2}× L=1K) |");
        }
        Console.WriteLine($"(materialised SSM states [L, d_inner, d_state] in all 24 layers would add {statesPerToken:N0} bytes per token)");
    }

    private static void Training(CudaBackend gpu, MambaLM model)
    {
        Console.WriteLine();
        using var optimizer = new AdamW(model, 1e-4f);
        // GEMM arithmetic: F32, TF32 tensor cores, BF16 tensor cores (F32 master weights, activations, optimizer state).
        // Each row with every intermediate kept, then with MambaLM.Recompute (mamba_ssm's default likewise reruns the
        // conv and Δ in its backward: its peak is the one to compare with the second).
        foreach (var precision in new[] { MatmulPrecision.F32, MatmulPrecision.Tf32, MatmulPrecision.Bf16 })
            foreach (int batch in new[] { 1, 4, 8 })
            foreach (bool recompute in new[] { false, true })
            {
                const int l = 2048;
                gpu.MatmulPrecision = precision;
                model.Recompute = recompute;
                var ids = RandomIds(batch * l, Config130M.VocabSize, 7);
                TrainMemoryBench.Step(model, optimizer, ids, batch, l);
                gpu.Synchronize();
                gpu.Allocator.ResetPeak();
                var times = Enumerable.Range(0, 5).Select(_ => TrainMemoryBench.Step(model, optimizer, ids, batch, l)).Order().ToArray();
                double s = times[times.Length / 2];
                double peakGb = gpu.Allocator.PeakBytesInUse / 1e9;
                // mamba_ssm's MambaLMHeadModel in the same call: fp32 beside our F32 GEMMs, bf16 autocast beside our BF16 ones
                string anchorPrecision = precision == MatmulPrecision.F32 ? "fp32" : precision == MatmulPrecision.Bf16 ? "bf16-autocast" : "";
                var anchor = ModelAnchor(o => o["train"]?.GetValue<string>() == $"{batch}x{l}" && o["precision"]?.GetValue<string>() == anchorPrecision);
                string vs = anchor?["tokens_per_s"]?.GetValue<double>() is { } theirs
                    ? $"; mamba_ssm {anchorPrecision} {theirs:F0} tokens/s, ours / theirs {batch * l / s / theirs:F2}×" + (anchor["peak_gb"]?.GetValue<double>() is { } theirPeak ? $", peak {theirPeak:F2} GB" : "")
                    : "";
                Console.WriteLine($"training, 130M shape, GEMMs {precision}, {batch} × {l}{(recompute ? ", recompute" : "")} (forward + backward + clip + AdamW): {batch * l / s:F0} tokens/s ({s * 1000:F0} ms/step, median of 5), peak {peakGb:F2} GB{vs}");
            }
        FlagSteps(gpu, model, optimizer);
        gpu.MatmulPrecision = MatmulPrecision.F32;
        model.Recompute = false;
    }

    /// <summary>The training step at 8 × 2048 with a setting off and on, interleaved step by step (medians of 5): the conv's
    /// per-element and tiled kernels (CudaBackend.TiledConv) with F32 and BF16 products, and with BF16 products the F32
    /// activations rounded by the products and the BF16 ones written by their makers (CudaBackend.Bf16Activations).</summary>
    private static void FlagSteps(CudaBackend gpu, MambaLM model, AdamW optimizer)
    {
        InterleavedSteps(gpu, model, optimizer, MatmulPrecision.F32, "conv per-element vs tiled", on => gpu.TiledConv = on);
        InterleavedSteps(gpu, model, optimizer, MatmulPrecision.Bf16, "conv per-element vs tiled", on => gpu.TiledConv = on);
        InterleavedSteps(gpu, model, optimizer, MatmulPrecision.Bf16, "F32 activations rounded by the products vs BF16 activations", on => gpu.Bf16Activations = on);
    }

    private static void InterleavedSteps(CudaBackend gpu, MambaLM model, AdamW optimizer, MatmulPrecision precision, string what, Action<bool> set)
    {
        const int batch = 8, l = 2048;
        gpu.MatmulPrecision = precision;
        var ids = RandomIds(batch * l, Config130M.VocabSize, 7);
        var times = new[] { new List<double>(), new List<double>() };
        try
        {
            for (int r = -1; r < 5; r++)
                for (int v = 0; v < 2; v++)
                {
                    set(v == 1);
                    double t = TrainMemoryBench.Step(model, optimizer, ids, batch, l);
                    if (r >= 0) times[v].Add(t);
                }
        }
        finally
        {
            set(true);
            gpu.MatmulPrecision = MatmulPrecision.F32;
        }
        double off = times[0].Order().ElementAt(2), on = times[1].Order().ElementAt(2);
        Console.WriteLine($"training, 130M shape, GEMMs {precision}, {batch} × {l}, {what} (interleaved medians of 5): {off * 1000:F1} vs {on * 1000:F1} ms/step, {off / on:F3}×");
    }

    /// <summary>MAMBA4_CUDA_BENCH=flags: the training step with each setting off and on (<see cref="FlagSteps"/>) beside
    /// each other in the same run, for a change's quick check without mamba_ssm (a minute or two of device time).</summary>
    private static void Flags(CudaBackend gpu, MambaLM model)
    {
        Console.WriteLine();
        using var optimizer = new AdamW(model, 1e-4f);
        FlagSteps(gpu, model, optimizer);
    }

    /// <summary>Prefill (issue 19, target 4): the forward over one sequence of 2,048 and 16,384 tokens without gradients,
    /// the head on the last position only (as a prefill before decoding; mamba_ssm's num_last_tokens = 1), tokens/s,
    /// beside mamba_ssm's forward from the same call (scripts/model_anchor_more.py).</summary>
    private static void Prefill(CudaBackend gpu, MambaLM model)
    {
        Console.WriteLine();
        foreach (var precision in new[] { MatmulPrecision.F32, MatmulPrecision.Bf16 })
            foreach (int l in new[] { 2048, 16384 })
            {
                gpu.MatmulPrecision = precision;
                var ids = RandomIds(l, Config130M.VocabSize, 11);
                double Once()
                {
                    long t0 = Stopwatch.GetTimestamp();
                    PrefillLastLogits(model, ids);
                    gpu.Synchronize();
                    return Stopwatch.GetElapsedTime(t0).TotalSeconds;
                }
                Once();
                var times = Enumerable.Range(0, 5).Select(_ => Once()).Order().ToArray();
                double s = times[times.Length / 2];
                string anchorPrecision = precision == MatmulPrecision.F32 ? "fp32" : "bf16-autocast";
                var anchor = ModelAnchor(o => o["prefill"]?.GetValue<string>() == $"1x{l}" && o["precision"]?.GetValue<string>() == anchorPrecision);
                string vs = anchor?["tokens_per_s"]?.GetValue<double>() is { } theirs ? $"; mamba_ssm {anchorPrecision} {theirs:F0} tokens/s, ours / theirs {l / s / theirs:F2}×" : "";
                Console.WriteLine($"prefill, 130M shape, GEMMs {precision}, 1 × {l} (forward, no gradients, last logits): {l / s:F0} tokens/s ({s * 1000:F1} ms, median of 5){vs}");
            }
        gpu.MatmulPrecision = MatmulPrecision.F32;
    }

    /// <summary>The decoding table; <paramref name="batchOne"/>: only the fused four-kernel step at batch 1 (F32, BF16), for
    /// timing two builds of the step kernels in turn in one call (scripts/gpu-all.sh's decode part).</summary>
    private static void Generation(CudaBackend gpu, MambaLM model, double copy, bool batchOne = false)
    {
        Console.WriteLine();
        Console.WriteLine("generation, 130M shape: per step, each weight read once at the copy bandwidth is the limit; \"end to end\" = as generate runs,");
        Console.WriteLine("greedy: the fused step's arg-max ids read back (8 bytes a stream), the unfused step's logits read back and arg-max on the host");
        Console.WriteLine("PDL = programmatic dependent launch: each fused kernel starts while the one before runs, loading its first weights");
        Console.WriteLine("| weights | batch | step | CUDA graph | device ms/step | tokens/s (device) | % of weight-read limit | tokens/s end to end | launches/step | mamba_ssm generate(cg=True), same call | ours end to end / theirs |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        using var noGrad = GradMode.NoGrad();
        var settings = Backend.Settings;
        foreach (var weights in new[] { "f32", "bf16" })
        {
            if (weights == "bf16") NarrowToBf16(model);
            double weightBytes = model.Parameters().Sum(p => (double)p.ByteLength);
            double limitPerStep = copy / weightBytes;   // steps/s if a step only read the weights once at copy bandwidth
            Console.WriteLine($"| {weights}: {weightBytes / 1e6:F0} MB of weights → at most {limitPerStep:F0} steps/s at {copy / 1e12:F2} TB/s |||||||||||");
            foreach (int batch in batchOne ? [1] : new[] { 1, 64 })
                foreach (var (fused, persistent, name) in new[] { (false, false, "unfused"), (true, false, "fused, 4 kernels a layer + PDL"), (true, true, "fused, 1 kernel a layer + PDL") })
                {
                    if (batch == 64 && persistent) continue;   // beyond 8 streams the step has no persistent kernel
                    if (batchOne && (!fused || persistent)) continue;
                    Backend.Configure(settings with { CudaFusedStep = fused });
                    gpu.PersistentLayerStep = persistent;
                    GenerationRow(gpu, model, weights, batch, batch == 64 && fused ? "fused (cuBLAS products) + PDL" : name, true, limitPerStep);
                    if (batch == 64 && fused && weights == "bf16")
                    {
                        // as before: the products' inputs written in F32, then converted to BF16 by a pass before each GEMM
                        gpu.ConvertProductInputs = true;
                        GenerationRow(gpu, model, weights, batch, "fused (cuBLAS products) + PDL, inputs converted (before)", true, limitPerStep);
                        gpu.ConvertProductInputs = false;
                    }
                }
        }
        Backend.Configure(settings);
        gpu.PersistentLayerStep = false;
        if (batchOne) return;
        // registers and residency at batch 1 (shared memory: the layer kernel batch·max(d, e) floats, the others batch·d)
        foreach (var (kernel, threads, shared) in new[]
        {
            (Mamba4.Backends.Cuda.Kernels.MambaStep.MambaStepLayerF32, 256, 1536 * sizeof(float)), (Mamba4.Backends.Cuda.Kernels.MambaStep.MambaStepLayerBf16, 256, 1536 * sizeof(float)),
            (Mamba4.Backends.Cuda.Kernels.MambaStep.MambaStepInProjF32, 128, 768 * sizeof(float)), (Mamba4.Backends.Cuda.Kernels.MambaStep.MambaStepInProjBf16, 128, 768 * sizeof(float)),
            (Mamba4.Backends.Cuda.Kernels.MambaStep.MambaStepHead1F32, 128, 768 * sizeof(float)), (Mamba4.Backends.Cuda.Kernels.MambaStep.MambaStepHead1Bf16, 128, 768 * sizeof(float)),
        })
        {
            var (registers, local) = gpu.KernelResources(Mamba4.Backends.Cuda.Kernels.MambaStep.File, kernel);
            int resident = gpu.BlocksPerMultiprocessor(Mamba4.Backends.Cuda.Kernels.MambaStep.File, kernel, threads, shared);
            Console.WriteLine($"{kernel}: {registers} registers, {local} B local a thread; {resident} blocks of {threads} threads a multiprocessor ({gpu.Multiprocessors} multiprocessors)");
        }
    }

    /// <summary>Every projection and the (tied) embedding / lm_head in BF16, as `generate --dtype bf16` loads them.</summary>
    private static void NarrowToBf16(MambaLM model)
    {
        foreach (var layer in model.Backbone.Layers.Items)
            foreach (var lin in layer.Mixer.Linears) lin.Weight.ReplaceWith(lin.Weight.To(DType.BF16));
        model.LmHead.ReplaceWith(model.LmHead.To(DType.BF16));
    }

    /// <summary>A prefill of one sequence: the forward without gradients, the head on the last position only (queued; the
    /// caller waits).</summary>
    private static void PrefillLastLogits(MambaLM model, long[] ids)
    {
        using (GradMode.NoGrad())
        using (new TensorScope())
            model.LastLogits(Tensor.From(ids, 1, ids.Length));
    }

    /// <summary>For a profiler started with --profile-from-start off (scripts/gpu-measure.sh): after warm-up, exactly one
    /// piece of work between cuProfilerStart and cuProfilerStop. <paramref name="region"/>: train-f32 | train-bf16 (one
    /// training step at 4 × 2048, GEMMs F32 or BF16), prefill-f32 | prefill-bf16 (1 × 2048, no gradients; prefill16k-*: 1 × 16,384), decode64-f32 |
    /// decode64-bf16 (one eager step of 64 streams, weights F32 or BF16).</summary>
    private static void ProfileRegion(CudaBackend gpu, MambaLM model, string region)
    {
        var parts = region.Split('-');
        if (parts.Length != 2 || parts[0] is not ("train" or "prefill" or "prefill16k" or "decode64") || parts[1] is not ("f32" or "bf16"))
            throw new ArgumentException($"MAMBA4_CUDA_BENCH=region-{region}: expected region-(train|prefill|prefill16k|decode64)-(f32|bf16)");
        bool bf16 = parts[1] == "bf16";
        gpu.MatmulPrecision = bf16 ? MatmulPrecision.Bf16 : MatmulPrecision.F32;
        switch (parts[0])
        {
            case "train":
            {
                using var optimizer = new AdamW(model, 1e-4f);
                var ids = RandomIds(4 * 2048, Config130M.VocabSize, 7);
                var warm = Enumerable.Range(0, 3).Select(_ => TrainMemoryBench.Step(model, optimizer, ids, 4, 2048) * 1000).ToArray();
                // wall time of the unprofiled steps, to set beside the profiled step's kernel-time sum (the gap: host, launches)
                Console.WriteLine($"warm-up steps, 4 × 2048 (wall, under the profiler but not profiled): {string.Join(", ", warm.Select(t => t.ToString("F1")))} ms");
                gpu.Profiled(() => TrainMemoryBench.Step(model, optimizer, ids, 4, 2048));
                break;
            }
            case "prefill" or "prefill16k":
            {
                var ids = RandomIds(parts[0] == "prefill" ? 2048 : 16384, Config130M.VocabSize, 11);
                for (int i = 0; i < 3; i++) { PrefillLastLogits(model, ids); gpu.Synchronize(); }
                gpu.Profiled(() => PrefillLastLogits(model, ids));
                break;
            }
            case "decode64":
            {
                using var noGrad = GradMode.NoGrad();
                if (bf16) NarrowToBf16(model);
                using var state = model.NewState(64);
                using var ids = Tensor.From(RandomIds(64, Config130M.VocabSize, 3), 64).To(Cuda);
                using var next = Tensor.Zeros(new Shape(64), DType.I64, Cuda);
                for (int i = 0; i < 3; i++) using (new TensorScope()) model.Step(ids, state, next);
                gpu.Profiled(() => { using (new TensorScope()) model.Step(ids, state, next); });
                break;
            }
        }
        gpu.MatmulPrecision = MatmulPrecision.F32;
        Console.WriteLine($"profiled region {region}");
    }

    /// <summary>For Nsight Compute (`ncu -k regex:mamba_step`): one eager batch-1 step of the fused step with one kernel a
    /// layer, then one with four, F32 then BF16 weights; nothing timed.</summary>
    private static void GenerationProfile(CudaBackend gpu, MambaLM model)
    {
        using var noGrad = GradMode.NoGrad();
        foreach (var weights in new[] { "f32", "bf16" })
        {
            if (weights == "bf16") NarrowToBf16(model);
            foreach (bool persistent in new[] { true, false })
            {
                gpu.PersistentLayerStep = persistent;
                using var state = model.NewState(1);
                using (var scope = new TensorScope())
                    model.Step(Tensor.From(RandomIds(1, Config130M.VocabSize, 5), 1), state, Tensor.Zeros(new Shape(1), DType.I64, Cuda));
                gpu.Synchronize();
                Console.WriteLine($"profiled: {weights}, {(persistent ? "1 kernel" : "4 kernels")} a layer, 1 step");
            }
        }
        gpu.PersistentLayerStep = false;
    }

    private static void GenerationRow(CudaBackend gpu, MambaLM model, string weights, int batch, string kind, bool graphed, double limitPerStep)
    {
        using var state = model.NewState(batch);
        var tokens = RandomIds(batch, Config130M.VocabSize, 3);
        using (new TensorScope()) model.Step(Tensor.From(tokens, batch), state);
        using var graph = graphed ? StepGraph.TryCreate(model, state, batch) : null;
        using var idsDevice = Tensor.From(tokens, batch).To(Cuda);
        long launches = gpu.LaunchCount;
        Action step = graph is not null ? () => graph.Step(tokens) : () => { using var s = new TensorScope(); model.Step(idsDevice, state); };
        step();
        launches = graph is not null ? graph.Kernels : gpu.LaunchCount - launches;
        for (int i = 0; i < 5; i++) step();
        var device = Enumerable.Range(0, 9).Select(_ => gpu.Time(() => { for (int i = 0; i < 20; i++) step(); }) / 20).Order().ToArray()[4];
        // as generation runs: the next tokens chosen each step and read back to the host (greedy)
        const int steps = 64;
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < steps; i++)
        {
            using var scope = new TensorScope();
            if (graph is { GreedyOnDevice: true })
            {
                var next = graph.StepGreedy(tokens);
                next.CopyTo(tokens, 0);
                continue;
            }
            if (model.UsesFusedStep)
            {
                var ids = Tensor.Zeros(new Shape(batch), DType.I64, Cuda);
                model.Step(Tensor.From(tokens, batch), state, ids);
                ids.ToInt64Array().CopyTo(tokens, 0);
                continue;
            }
            var logits = (graph is not null ? graph.Step(tokens) : model.Step(Tensor.From(tokens, batch), state)).ToFloatArray();
            Parallel.For(0, batch, r => tokens[r] = Generator.ArgMax(logits.AsSpan(r * Config130M.VocabSize, Config130M.VocabSize)));
        }
        double wall = Stopwatch.GetElapsedTime(t0).TotalSeconds / steps;
        double perSecond = batch / (device / 1000);
        string dtype = weights == "f32" ? "float32" : "bfloat16";
        var anchor = ModelAnchor(o => o["generate"]?.GetValue<string>() is { } g && g.StartsWith($"batch {batch},", StringComparison.Ordinal)
                                      && o["dtype"]?.GetValue<string>() == dtype && o["cuda_graph"]?.GetValue<bool>() == true);
        string vs = anchor?["tokens_per_s"]?.GetValue<double>() is { } theirs ? $" | {theirs:F0} | {batch / wall / theirs:F2}×" : " | — | —";
        Console.WriteLine($"| {weights} | {batch} | {kind} | {(graphed ? "yes" : "no")} | {device:F3} | {perSecond:F0} | {1000 / device / limitPerStep * 100:F0}% | {batch / wall:F0} | {launches}{vs} |");
    }

    /// <summary>The first JSON line of ../shared/anchors/model_anchor.py's output from this call (<see cref="BenchSettings.ModelAnchorFile"/>)
    /// that <paramref name="match"/> accepts; null without one (then no ratio is printed).</summary>
    private static System.Text.Json.Nodes.JsonObject? ModelAnchor(Func<System.Text.Json.Nodes.JsonObject, bool> match) =>
        BenchSettings.Current.ModelAnchorFile is { } file && File.Exists(file)
            ? File.ReadLines(file).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l) as System.Text.Json.Nodes.JsonObject).OfType<System.Text.Json.Nodes.JsonObject>().FirstOrDefault(match)
            : null;

    private static void RecEpoch()
    {
        Console.WriteLine();
        var data = SequenceDataset.Build(RecData.Read(null, null), 5, 5);
        var split = LeaveOneOutSplit.Create(data);
        Console.WriteLine($"Mamba4Rec epoch (built-in synthetic data: {data.Statistics}; batch 2048, max_len 50, all-positions objective, validation included):");
        foreach (var device in new[] { Cuda, Device.Cpu })
        {
            var dir = Directory.CreateTempSubdirectory("mamba4-bench-rec-").FullName;
            try
            {
                var model = RecModels.Create(new RecModelOptions { Kind = "mamba4rec" }, data.NItems, 1);
                ((Nn.Module)model).To(device);
                using var exp = new RecExperiment(split, model, 50, new RecTrainOptions { Epochs = 2, Patience = 5, OutputDirectory = dir }, new JsonObject { ["task"] = "bench" });
                var seconds = new List<double>();
                exp.EpochDone += r => seconds.Add(r.SecondsThisEpoch);
                exp.Run();
                Console.WriteLine($"  {device}: {string.Join(", ", seconds.Select(s => $"{s:F2} s"))} per epoch (epoch 1 includes compilation and warm-up)");
                ((Nn.Module)model).Dispose();
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
