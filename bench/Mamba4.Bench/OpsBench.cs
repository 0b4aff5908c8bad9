using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Time and managed allocation per op call (forward + backward, inside a TensorScope) after warm-up,
/// and for a whole training step of a small Mamba LM. Native tensor memory comes from the pool and
/// is not counted here; the numbers are the managed objects (tensor headers, tape nodes, closures).
/// </summary>
public static class OpsBench
{
    public static void Run()
    {
        Console.WriteLine("== ops: managed bytes and time per call (forward + backward), after warm-up");
        Console.WriteLine($"{"op",-34} {"shape",-22} {"µs/call",10} {"managed B/call",15}");
        var rng = new Random(1);
        Tensor R(params int[] shape) { var t = Tensor.Empty(new Shape(shape)).Persist(); var s = t.AsSpan<float>(); for (int i = 0; i < s.Length; i++) s[i] = (float)(rng.NextDouble() - 0.5); t.RequiresGrad = true; return t; }
        int b = 4, l = 256, d = 256, e = 512, n = 16;
        var x = R(b, l, d); var w = R(e, d); var bias = R(e); var g = R(d); var xe = R(b, l, e); var z = R(b, l, e);
        var cw = R(e, 1, 4); var cb = R(e); var a = R(e, n); var bm = R(b, l, n); var cm = R(b, l, n); var dd = R(e); var emb = R(1000, d);
        using var ids = Tensor.From(Enumerable.Range(0, b * l).Select(i => (long)(i * 7 % 1000)).ToArray(), b, l).Persist();
        using var targets = Tensor.From(Enumerable.Range(0, b * l).Select(i => (long)(i * 3 % 1000)).ToArray(), b, l).Persist();
        var negA = Tensor.Empty(new Shape(e, n)).Persist();
        negA.AsSpan<float>().Fill(-1f);

        Measure("Linear (x Wᵀ + b)", $"[{b},{l},{d}]→{e}", () => F.Linear(x, w, bias));
        Measure("LayerNorm", $"[{b},{l},{d}]", () => F.LayerNorm(x, g, g));
        Measure("RmsNorm", $"[{b},{l},{d}]", () => F.RmsNorm(x, g));
        Measure("SiLU", $"[{b},{l},{e}]", () => F.SiLU(xe));
        Measure("GELU", $"[{b},{l},{e}]", () => F.Gelu(xe));
        Measure("Gate y·silu(z)", $"[{b},{l},{e}]", () => F.Gate(xe, z));
        Measure("CausalConv1d + SiLU", $"[{b},{l},{e}] k=4", () => F.CausalConv1d(xe, cw, cb, silu: true));
        Measure("Embedding", $"{b}x{l} ids, 1000x{d}", () => F.Embedding(emb, ids));
        Measure("SelectiveScan", $"[{b},{l},{e}] n={n}", () => F.SelectiveScan(xe, z, negA, bm, cm, dd, xe, cb).Y);
        Measure("CrossEntropy", $"[{b * l},1000]", () => F.CrossEntropy(F.Linear(x, emb), targets));

        // A whole training step (forward, loss, backward) of a small LM.
        var config = new MambaConfig { DModel = 128, NLayer = 2, DState = 16, VocabSize = 512 };
        using var model = new MambaLM(config, seed: 1);
        using var tokens = Tensor.From(Enumerable.Range(0, 8 * 128).Select(i => (long)(i * 13 % 512)).ToArray(), 8, 128).Persist();
        Measure("MambaLM train step (fwd+loss+bwd)", "d128 2L, 8x128 tokens", () => model.Loss(tokens), reduce: false, iterations: 20);
        Console.WriteLine();
    }

    private static void Measure(string name, string shape, Func<Tensor> forward, bool reduce = true, int iterations = 50)
    {
        void Once()
        {
            using var scope = new TensorScope();
            var y = forward();
            (reduce ? F.Sum(y) : y).Backward();
        }
        for (int i = 0; i < 5; i++) Once();
        GC.Collect();
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++) Once();
        sw.Stop();
        long bytes = (GC.GetTotalAllocatedBytes(precise: true) - before) / iterations;
        Console.WriteLine($"{name,-34} {shape,-22} {sw.Elapsed.TotalMicroseconds / iterations,10:F0} {bytes,15:N0}");
        _ = Tape.Count;
    }
}
