using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Linear vs quadratic: forward+backward time and peak memory per sequence for Mamba and the GPT baseline
/// of the same width and depth at growing L; then decoding time per token early vs late in a long stream.
/// </summary>
public static class ScalingBench
{
    public static void Run()
    {
        const int d = 128, layers = 2, vocab = 256;
        Console.WriteLine($"== scaling: forward+backward per sequence, d_model {d}, {layers} layers (batch 1)");
        Console.WriteLine($"{"L",7} {"mamba ms",10} {"mamba peak MB",14} {"gpt ms",10} {"gpt peak MB",12} {"gpt/mamba",10}");
        using var mamba = new MambaLM(new MambaConfig { DModel = d, NLayer = layers, DState = 16, VocabSize = vocab }, seed: 1);
        using var gpt = new GptLM(new GptConfig { DModel = d, NLayer = layers, NHead = 2, VocabSize = vocab, MaxPositions = 16384 }, seed: 1);
        var rows = new List<(int L, double M, double G)>();
        foreach (int l in new[] { 256, 1024, 4096, 16384 })
        {
            var (mt, mp) = Measure(mamba, l);
            var (gt, gp) = Measure(gpt, l);
            rows.Add((l, mt, gt));
            Console.WriteLine($"{l,7} {mt,10:F1} {mp / 1e6,14:F1} {gt,10:F1} {gp / 1e6,12:F1} {gt / mt,10:F2}");
        }
        double Slope(Func<(int L, double M, double G), double> f) =>
            Math.Log(f(rows[^1]) / f(rows[0])) / Math.Log(rows[^1].L / (double)rows[0].L);
        Console.WriteLine($"log-log slope of time vs L: mamba {Slope(r => r.M):F2}, gpt {Slope(r => r.G):F2} (1 = linear, 2 = quadratic)");
        var cross = rows.FirstOrDefault(r => r.G > r.M);
        Console.WriteLine(cross.L > 0 ? $"the Transformer is slower from L = {cross.L} on (of the lengths measured)" : "the Transformer stayed faster at every length measured");

        Console.WriteLine("decoding, batch 1: ms per token at positions 100 and 4,000");
        // Each stream runs twice from a fresh state; the second run is measured (the first lets the JIT settle).
        for (int pass = 0; pass < 2; pass++)
            using (var state = mamba.NewState(1))
            {
                var (early, late) = DecodeTimes(t => mamba.Step(Tensor.From([t % vocab], 1), state));
                if (pass == 1) Console.WriteLine($"  mamba: {early:F3} ms → {late:F3} ms ({late / early - 1:+0.0%;-0.0%}); state {state.Bytes:N0} bytes");
            }
        for (int pass = 0; pass < 2; pass++)
            using (var cache = gpt.NewCache(1, 4200))
            {
                var (early, late) = DecodeTimes(t => gpt.Step(Tensor.From([t % vocab], 1), cache));
                if (pass == 1) Console.WriteLine($"  gpt:   {early:F3} ms → {late:F3} ms ({late / early - 1:+0.0%;-0.0%}); KV cache {cache.Bytes:N0} bytes");
            }
        Console.WriteLine();
    }

    private static (double Ms, long PeakBytes) Measure(ICausalLanguageModel model, int l)
    {
        var ids = Enumerable.Range(0, l).Select(i => (long)(i * 31 % 256)).ToArray();
        var targets = ids.Skip(1).Append(-100L).ToArray();
        void Once()
        {
            using var scope = new TensorScope();
            CrossEntropy.Forward(model.Logits(Tensor.From(ids, 1, l)), Tensor.From(targets, 1, l)).Backward();
            model.AsModule.ZeroGrad();
        }
        Once();
        CpuAllocator.Shared.ResetPeak();
        long before = CpuAllocator.Shared.BytesInUse;
        int reps = l >= 4096 ? 1 : 3;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < reps; i++) Once();
        return (sw.Elapsed.TotalMilliseconds / reps, CpuAllocator.Shared.PeakBytesInUse - before);
    }

    private static (double Early, double Late) DecodeTimes(Func<long, Tensor> step)
    {
        double early = 0, late = 0;
        using var _ = GradMode.NoGrad();
        for (int t = 0; t < 4100; t++)
        {
            long t0 = Stopwatch.GetTimestamp();
            using (var scope = new TensorScope()) step(t);
            double ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            if (t is >= 100 and < 200) early += ms;
            if (t >= 4000) late += ms;
        }
        return (early / 100, late / 100);
    }
}
