using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Batch-1 decoding by weight type: the same random weights (seed 1) of a real shape with the Linear/Embedding/lm_head
/// weights kept F32, BF16, F16 or int8 (per-row scales), everything else F32. Each round times 32 greedy steps of every
/// model, the order rotated round to round; the ratios to F32 are taken within each round (so slow drifts in the
/// machine's load cancel) and their median printed. Shapes: 130m (d_model 768, 24 layers) and 1.4b (2048, 48), vocab 50280.
/// <c>dotnet run --project bench/Mamba4.Bench -c Release -- precision [130m|1.4b] [rounds]</c>
/// </summary>
public static class PrecisionBench
{
    private const int Steps = 32, Vocab = 50280;

    public static void Run(string[] args)
    {
        string shape = args.Length > 1 ? args[1] : "130m";
        if (shape == "kernels")
        {
            Kernels(args.Length > 2 ? int.Parse(args[2]) : 7);
            return;
        }
        if (shape == "products")
        {
            Products(args.Length > 2 ? int.Parse(args[2]) : 7);
            return;
        }
        if (shape == "profile")
        {
            Profile(args.Length > 2 ? args[2] : "130m");
            return;
        }
        int rounds = args.Length > 2 ? int.Parse(args[2]) : 7;
        var config = Shape(shape);
        string[] types = shape == "130m" ? ["f32", "bf16", "f16", "int8"] : ["f32", "bf16", "int8"];
        Console.WriteLine($"== precision: decode at batch 1, mamba-{shape} shape (d_model {config.DModel}, {config.NLayer} layers, vocab {Vocab}), {rounds} interleaved rounds of {Steps} steps");
        var models = new List<(string Type, MambaLM Model)>();
        try
        {
            foreach (var type in types)
            {
                var sw = Stopwatch.StartNew();
                var model = Build(config, type);
                models.Add((type, model));
                long bytes = model.Parameters().Sum(p => p.ByteLength + (p.RowScale?.ByteLength ?? 0));
                Console.WriteLine($"  {type}: {bytes / 1e6:F0} MB of weights read per token (built in {sw.Elapsed.TotalSeconds:F0} s)");
            }
            foreach (var (_, model) in models) TokensPerSecond(model, 64);   // JIT warm-up (tiered compilation)
            var speed = types.ToDictionary(t => t, _ => new List<double>());
            var ratio = types.ToDictionary(t => t, _ => new List<double>());
            for (int r = 0; r < rounds; r++)
            {
                var round = new Dictionary<string, double>();
                for (int i = 0; i < models.Count; i++)
                {
                    var (type, model) = models[(i + r) % models.Count];
                    round[type] = TokensPerSecond(model, Steps);
                }
                foreach (var t in types)
                {
                    speed[t].Add(round[t]);
                    ratio[t].Add(round[t] / round["f32"]);
                }
                Console.WriteLine($"  round {r + 1}: " + string.Join(", ", types.Select(t => $"{t} {round[t]:F1}")) + " tokens/s");
            }
            foreach (var t in types)
                Console.WriteLine($"  {t}: median {Median(speed[t]):F1} tokens/s (range {speed[t].Min():F1}–{speed[t].Max():F1}); per-round ratio to f32: median {Median(ratio[t]):F2}× " +
                                  $"(range {ratio[t].Min():F2}–{ratio[t].Max():F2})");
        }
        finally
        {
            foreach (var (_, model) in models) model.Dispose();
        }
        Console.WriteLine();
    }

    private static MambaConfig Shape(string shape) => shape switch
    {
        "130m" => new MambaConfig { DModel = 768, NLayer = 24, DState = 16, VocabSize = Vocab },
        "1.4b" => new MambaConfig { DModel = 2048, NLayer = 48, DState = 16, VocabSize = Vocab },
        _ => throw new ArgumentException($"precision: shape '{shape}': expected 130m or 1.4b"),
    };

    /// <summary>
    /// Where one decoding step's time goes, per weight type: wall time per token without and with the per-kernel timer
    /// (<see cref="Backends.ProfilingBackend"/>, which itself adds a reflection call per kernel), each kernel's calls and
    /// ms per token, the fork/joins of <see cref="Backends.Cpu.CpuParallel"/>, the tensors taken from the pool and the
    /// managed bytes allocated per token.
    /// </summary>
    private static void Profile(string shape)
    {
        var config = Shape(shape);
        const int steps = 32;
        Console.WriteLine($"== precision profile: one decoding step of the mamba-{shape} shape at batch 1, {steps} steps per type");
        foreach (var type in new[] { "f32", "bf16", "int8" })
        {
            using var model = Build(config, type);
            TokensPerSecond(model, 64);
            double plain = 1000 / Median(Enumerable.Range(0, 5).Select(_ => TokensPerSecond(model, steps)).ToList());
            long forks = Backends.Cpu.CpuParallel.Forks, pooled = CpuAllocator.Shared.PoolHits + CpuAllocator.Shared.NativeAllocations;
            long managed = GC.GetTotalAllocatedBytes(precise: true);
            TokensPerSecond(model, steps);
            forks = Backends.Cpu.CpuParallel.Forks - forks;
            pooled = CpuAllocator.Shared.PoolHits + CpuAllocator.Shared.NativeAllocations - pooled;
            managed = GC.GetTotalAllocatedBytes(precise: true) - managed;
            Backends.Backend.EnableProfiling();
            Backends.ProfilingBackend.Reset();
            long t0 = Stopwatch.GetTimestamp();
            TokensPerSecond(model, steps);
            double profiled = Stopwatch.GetElapsedTime(t0).TotalMilliseconds / steps;
            var rows = Backends.ProfilingBackend.Report();
            Backends.Backend.DisableProfiling();
            double kernels = rows.Sum(r => r.Seconds) * 1000 / steps;
            Console.WriteLine($"  {type}: {plain:F2} ms/token ({profiled:F2} profiled, of which kernels {kernels:F2}); per token: {(double)forks / steps:F0} fork/joins, " +
                              $"{(double)pooled / steps:F0} tensors from the pool, {managed / steps / 1024.0:F1} KB managed");
            foreach (var (kernel, calls, seconds) in rows)
                Console.WriteLine($"    {kernel,-28} {(double)calls / steps,6:F0} calls {seconds * 1000 / steps,8:F3} ms {seconds * 1000 / steps / profiled,7:P1}");
        }
        Console.WriteLine();
    }

    /// <summary>
    /// One matrix-vector product of the lm_head shape (50,280 × 768: 154 MB in F32) per weight type and CPU kernel, 8 calls a
    /// timing, interleaved rounds: the kernels' cost apart from the rest of a decoding step.
    /// </summary>
    private static void Kernels(int rounds)
    {
        var engine = Backends.Backend.Settings;
        var rng = new Random(1);
        var values = new float[Vocab * 768];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
        using var f32 = Tensor.From(values, Vocab, 768);
        using var x = Tensor.From(values.AsSpan(0, 768).ToArray(), 1, 768);
        var cases = new List<(string Name, Tensor Weight, Backends.CpuNarrowKernel Kernel)> { ("f32", f32, Backends.CpuNarrowKernel.Auto) };
        foreach (var type in new[] { "bf16", "f16", "int8" })
        {
            var w = Tensor.Empty(f32.Shape).Persist();
            w.Name = type;
            if (type == "int8")
            {
                var (q, s) = WeightQuantization.Quantize(f32, type);
                w.ReplaceWith(q, s);
            }
            else w.ReplaceWith(f32.To(type == "bf16" ? DType.BF16 : DType.F16));
            w.RequiresGrad = false;
            cases.Add((type + " avx-512", w, Backends.CpuNarrowKernel.Auto));
            cases.Add((type + " vector256", w, Backends.CpuNarrowKernel.Vector256));
        }
        var times = cases.ToDictionary(c => c.Name, _ => new List<double>());
        using var _ = GradMode.NoGrad();
        try
        {
            for (int r = -1; r < rounds; r++)
                foreach (var (name, w, kernel) in cases)
                {
                    Backends.Backend.Configure(engine with { CpuNarrowKernel = kernel });
                    long t0 = Stopwatch.GetTimestamp();
                    for (int i = 0; i < 8; i++)
                        using (new TensorScope()) Ops.F.Linear(x, w);
                    if (r >= 0) times[name].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds / 8);
                }
        }
        finally { Backends.Backend.Configure(engine); }
        Console.WriteLine($"== precision kernels: y = x·Wᵀ, W {Vocab} × 768, one row of x; median ms per call over {rounds} rounds (F32 weights: CpuGemv)");
        foreach (var (name, w, _) in cases)
        {
            double ms = Median(times[name]);
            long bytes = w.ByteLength;
            Console.WriteLine($"  {name,-16} {ms,7:F2} ms  {bytes / ms / 1e6,6:F1} GB/s of weights  {Median(times["f32"]) / ms:F2}× f32");
        }
        foreach (var (_, w, _) in cases.Skip(1).Where((_, i) => i % 2 == 0)) w.Dispose();
    }

    /// <summary>
    /// Each matrix-vector product of a 130M decoding step (in_proj, x_proj, dt_proj, out_proj of one layer, lm_head) per
    /// weight type, interleaved rounds: ms per call, the ratio to F32, and the products of one token (24 layers + lm_head).
    /// </summary>
    private static void Products(int rounds)
    {
        (string Name, int Out, int In, int PerToken)[] shapes =
            [("in_proj", 3072, 768, 24), ("x_proj", 80, 1536, 24), ("dt_proj", 1536, 48, 24), ("out_proj", 768, 1536, 24), ("lm_head", Vocab, 768, 1)];
        string[] types = ["f32", "bf16", "int8"];
        var rng = new Random(1);
        var weights = new Dictionary<(string, string), Tensor>();
        var inputs = new Dictionary<string, Tensor>();
        foreach (var (name, o, i, _) in shapes)
        {
            var values = new float[(long)o * i];
            for (long j = 0; j < values.Length; j++) values[j] = (float)(rng.NextDouble() * 2 - 1);
            inputs[name] = Tensor.From(values.AsSpan(0, i).ToArray(), 1, i).Persist();
            foreach (var type in types) weights[(name, type)] = Narrowed(Tensor.From(values, o, i).Persist(), type);
        }
        var times = weights.Keys.ToDictionary(k => k, _ => new List<double>());
        using var _ = GradMode.NoGrad();
        for (int r = -1; r < rounds; r++)
            foreach (var (name, _, _, _) in shapes)
                foreach (var type in types.Skip(r < 0 ? 0 : r % types.Length).Concat(types.Take(r < 0 ? 0 : r % types.Length)))
                {
                    int calls = name == "lm_head" ? 4 : 48;
                    long t0 = Stopwatch.GetTimestamp();
                    for (int c = 0; c < calls; c++)
                        using (new TensorScope()) Ops.F.Linear(inputs[name], weights[(name, type)]);
                    if (r >= 0) times[(name, type)].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds / calls);
                }
        Console.WriteLine($"== precision products: the matrix-vector products of a mamba-130m step, one row of x; median ms per call over {rounds} rounds");
        var token = types.ToDictionary(t => t, _ => 0.0);
        foreach (var (name, o, i, perToken) in shapes)
        {
            Console.Write($"  {name,-9} {o,5} × {i,-5}");
            foreach (var type in types)
            {
                double ms = Median(times[(name, type)]);
                token[type] += perToken * ms;
                Console.Write($"  {type} {ms,8:F4} ms ({Median(times[(name, "f32")]) / ms:F2}×)");
            }
            Console.WriteLine();
        }
        Console.WriteLine("  per token (24 layers + lm_head): " + string.Join(", ", types.Select(t => $"{t} {token[t]:F2} ms ({token["f32"] / token[t]:F2}×)")));
        foreach (var t in weights.Values.Concat(inputs.Values)) t.Dispose();
    }

    /// <summary><paramref name="w"/> converted in place to BF16, F16 or int8 (per-row scales); F32 left as it is.</summary>
    private static Tensor Narrowed(Tensor w, string type)
    {
        w.Name ??= type;
        switch (type)
        {
            case "bf16": w.ReplaceWith(w.To(DType.BF16)); break;
            case "f16": w.ReplaceWith(w.To(DType.F16)); break;
            case "int8":
                var (q, s) = WeightQuantization.Quantize(w, w.Name);
                w.ReplaceWith(q, s);
                break;
        }
        w.RequiresGrad = type == "f32";
        return w;
    }

    /// <summary>The model of <paramref name="config"/> (seed 1) with its Linear/Embedding/lm_head weights converted in place.</summary>
    private static MambaLM Build(MambaConfig config, string type)
    {
        var model = new MambaLM(config, seed: 1);
        model.Eval();
        foreach (var w in ModelFiles.NarrowCandidates(model)) Narrowed(w, type);
        return model;
    }

    private static double TokensPerSecond(MambaLM model, int steps)
    {
        using var _ = GradMode.NoGrad();
        using var state = model.NewState(1);
        long token = 1;
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < steps; i++)
            using (new TensorScope())
            {
                var logits = model.Step(Tensor.From([token], 1), state).AsSpan<float>();
                int best = 0;
                for (int j = 1; j < logits.Length; j++) if (logits[j] > logits[best]) best = j;
                token = best;
            }
        return steps / Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
