using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Recurrent generation: tokens/s at batch 1 for a mamba-130m-shaped model (random weights), and the
/// per-token step cost late in a stream vs early (constant time per token ⇒ ratio ≈ 1).
/// </summary>
public static class GenerateBench
{
    public static void Run()
    {
        Console.WriteLine("== generate: recurrent step, batch 1");
        var config130m = new MambaConfig { DModel = 768, NLayer = 24, DState = 16, VocabSize = 50280 };
        var sw = Stopwatch.StartNew();
        using (var model = new MambaLM(config130m, seed: 1))
        {
            Console.WriteLine($"130m shape: {model.ParameterCount:N0} parameters, built in {sw.Elapsed.TotalSeconds:F1} s");
            using var state = model.NewState(1);
            double seconds = TimeSteps(model, state, warmup: 4, count: 32);
            Console.WriteLine($"130m shape, fp32: {32 / seconds:F1} tokens/s ({seconds / 32 * 1000:F1} ms/token); weights {model.ParameterCount * 4 / 1e6:F0} MB read per token ≈ {model.ParameterCount * 4 / (seconds / 32) / 1e9:F1} GB/s");
        }

        // Constant time per token: a smaller model stepped through 10,000 tokens.
        var config = new MambaConfig { DModel = 256, NLayer = 4, DState = 16, VocabSize = 1024 };
        using var small = new MambaLM(config, seed: 2);
        using var st = small.NewState(1);
        TimeSteps(small, st, warmup: 2000, count: 1);   // let the JIT reach its final tier first
        st.Reset();
        double early = 0, late = 0;
        for (int pos = 0; pos < 10_100; pos++)
        {
            long t0 = Stopwatch.GetTimestamp();
            using (GradMode.NoGrad())
            using (var scope = new TensorScope())
                small.Step(Tensor.From([(long)(pos * 7 % 1024)], 1), st);
            double dt = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            if (pos is >= 100 and < 200) early += dt;
            if (pos >= 10_000) late += dt;
        }
        Console.WriteLine($"d256 4 layers: step at positions 100–199 {early / 100:F3} ms, at 10,000–10,099 {late / 100:F3} ms; ratio late/early {late / early:F2}; state {st.Bytes:N0} bytes throughout");
        Console.WriteLine();
    }

    private static double TimeSteps(MambaLM model, Inference.MambaState state, int warmup, int count)
    {
        using var _ = GradMode.NoGrad();
        long token = 1;
        for (int i = 0; i < warmup; i++)
            using (var scope = new TensorScope()) model.Step(Tensor.From([token], 1), state);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
            using (var scope = new TensorScope()) token = ArgMax(model.Step(Tensor.From([token], 1), state));
        return sw.Elapsed.TotalSeconds;
    }

    private static long ArgMax(Tensor logits)
    {
        var s = logits.AsSpan<float>();
        int best = 0;
        for (int i = 1; i < s.Length; i++) if (s[i] > s[best]) best = i;
        return best;
    }
}
