using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// The paths a prefill and the input projections take, each beside the baseline it replaced, interleaved in one run on
/// the CPU (130M shape, random weights): the head on the prompt's last position vs on every position then one row kept;
/// one block's activations at a time (no gradients) vs every block's kept (as when the hidden states are asked for),
/// peak bytes above the weights; and F.LinearSplit vs Linear then SplitLastAxis, forward and backward, for in_proj
/// (768 → 1536 + 1536), Mamba-2's in_proj (768 → 1536 + 1792 + 24), the GPT's qkv (256 → 3 × 256) and x_proj
/// (1536 → 48 + 16 + 16, which keeps the split). `prefill [PROMPT_TOKENS]` (default 512); not part of `all`.
/// </summary>
public static class PrefillBench
{
    public static void Run(string[] args)
    {
        int l = args.Length > 1 && int.TryParse(args[1], out var n) && n is > 0 and <= 16384 ? n
            : args.Length > 1 ? throw new ArgumentException($"prefill: PROMPT_TOKENS must be a whole number in [1, 16384], got '{args[1]}'") : 512;
        Console.WriteLine($"== prefill (cpu): 130M shape, a {l}-token prompt; medians of 5 interleaved rounds after one warm-up");
        using var model = new MambaLM(new MambaConfig { DModel = 768, NLayer = 24, DState = 16, VocabSize = 50280 }, seed: 1);
        var rng = new Random(2);
        var prompt = Enumerable.Range(0, l).Select(_ => (long)rng.Next(50280)).ToArray();
        (double Ms, long Peak) Prefill(bool lastOnly, bool keepAll)
        {
            long before = CpuAllocator.Shared.BytesInUse;
            CpuAllocator.Shared.ResetPeak();
            long t0 = Stopwatch.GetTimestamp();
            using var state = model.NewState(1);
            using (GradMode.NoGrad())
            using (new TensorScope())
            {
                var hidden = model.Hidden(Tensor.From(prompt, 1, l), state, keepAll ? [] : null);
                if (lastOnly) F.Linear(F.LastPosition(hidden), model.LmHead).ToFloatArray();
                else F.Linear(hidden, model.LmHead).Reshape(l, 50280).Slice(l - 1, 1).ToFloatArray();
            }
            return (Stopwatch.GetElapsedTime(t0).TotalMilliseconds, CpuAllocator.Shared.PeakBytesInUse - before);
        }
        var variants = new (string Name, bool LastOnly, bool KeepAll)[] { ("head on every position, every block kept (before)", false, true), ("head on the last position, every block kept", true, true), ("head on the last position, one block at a time (now)", true, false) };
        var times = variants.Select(_ => new List<double>()).ToArray();
        var peaks = new long[variants.Length];
        for (int round = 0; round < 6; round++)
            for (int i = 0; i < variants.Length; i++)
            {
                var (ms, peak) = Prefill(variants[i].LastOnly, variants[i].KeepAll);
                if (round > 0) times[i].Add(ms);
                peaks[i] = peak;
            }
        double Median(List<double> t) => t.Order().ElementAt(t.Count / 2);
        Console.WriteLine("| prefill | ms to the first logits | × before | peak MB above the weights | × before |");
        Console.WriteLine("|---|---|---|---|---|");
        for (int i = 0; i < variants.Length; i++)
            Console.WriteLine($"| {variants[i].Name} | {Median(times[i]):F0} | {Median(times[i]) / Median(times[0]):F3} | {peaks[i] / 1e6:F0} | {(double)peaks[i] / peaks[0]:F3} |");

        Console.WriteLine();
        Console.WriteLine("| projection (2,048 rows, forward + backward) | Linear + split ms | LinearSplit ms | × |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var (name, inputs, sizes) in new (string, int, int[])[] { ("in_proj", 768, [1536, 1536]), ("Mamba-2 in_proj", 768, [1536, 1792, 24]), ("qkv", 256, [256, 256, 256]), ("x_proj", 1536, [48, 16, 16]) })
        {
            var (split, fused) = SplitTimes(inputs, sizes, rng);
            Console.WriteLine($"| {name} ({inputs} → {string.Join(" + ", sizes)}) | {split:F2} | {fused:F2} | {fused / split:F3} |");
        }
        Console.WriteLine();
    }

    /// <summary>Medians of 21 interleaved forward + backward calls of Linear then SplitLastAxis, and of LinearSplit.</summary>
    private static (double Split, double Fused) SplitTimes(int inputs, int[] sizes, Random rng)
    {
        Tensor R(params int[] s) => Tensor.From(Enumerable.Range(0, s.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray(), s).Persist();
        using var xw = new Operands(R(2048, inputs), R(sizes.Sum(), inputs));
        var g = sizes.Select(n => R(2048, n)).ToArray();
        double Once(bool fused)
        {
            long t0 = Stopwatch.GetTimestamp();
            using (new TensorScope())
            {
                var p = fused ? F.LinearSplit(xw.X, xw.W, null, sizes) : F.SplitLastAxis(F.Linear(xw.X, xw.W), sizes);
                var loss = F.Sum(F.Mul(p[0], g[0]));
                for (int i = 1; i < p.Length; i++) loss = F.Add(loss, F.Sum(F.Mul(p[i], g[i])));
                loss.Backward();
            }
            double ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            xw.ZeroGrad();   // each call makes its gradients anew
            return ms;
        }
        var (split, fused) = (new List<double>(), new List<double>());
        for (int i = 0; i < 24; i++) { double a = Once(false), b = Once(true); if (i >= 3) { split.Add(a); fused.Add(b); } }
        foreach (var t in g) t.Dispose();
        return (split.Order().ElementAt(split.Count / 2), fused.Order().ElementAt(fused.Count / 2));
    }

    /// <summary>x and W as parameters, so that each call's gradients are fresh (ZeroGrad between calls).</summary>
    private sealed class Operands : Nn.Module
    {
        public Operands(Tensor x, Tensor w) { X = Parameter("x", x); W = Parameter("w", w); }
        public Tensor X { get; }
        public Tensor W { get; }
    }
}
