using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Recurrent generation at batch 1 on a mamba-130m-shaped model (random weights): tokens/s and where a
/// step's time goes, then steady tokens/s — the time per token at position 4,000 against position 100,
/// measured interleaved (A, B, B, A, … on copies of two prefilled states; the median of the per-round ratios) for Mamba
/// and for a GPT baseline of the same width and parameter count (12 blocks of 12·d² against Mamba's 24 of ≈ 6·d²),
/// whose KV cache grows with the position.
/// MAMBA4_GENERATE_ROUNDS (default 48) and MAMBA4_GENERATE_K (decode steps per timing, default 8).
/// </summary>
public static class GenerateBench
{
    private const int Early = 100, Late = 4000, Vocab = 50280;

    public static void Run()
    {
        int rounds = BenchSettings.Current.GenerateRounds, k = BenchSettings.Current.GenerateSteps;
        Console.WriteLine("== generate: recurrent step, batch 1");
        var sw = Stopwatch.StartNew();
        using (var model = new MambaLM(new MambaConfig { DModel = 768, NLayer = 24, DState = 16, VocabSize = Vocab }, seed: 1))
        {
            Console.WriteLine($"mamba-130m shape (d_model 768, 24 layers, vocab {Vocab}): {model.ParameterCount:N0} parameters, built in {sw.Elapsed.TotalSeconds:F1} s");
            using (var state = model.NewState(1))
            {
                // 64 warm-up steps: the JIT's tiered compilation promotes the step's hot methods after ~30 calls
                double seconds = TimeSteps(model, state, warmup: 64, count: 64);
                Console.WriteLine($"fp32: {64 / seconds:F1} tokens/s ({seconds / 64 * 1000:F1} ms/token); weights {model.ParameterCount * 4 / 1e6:F0} MB read per token ≈ {model.ParameterCount * 4 / (seconds / 64) / 1e9:F1} GB/s");
                PlainC(model, state);
                Profile(model, state);
            }
            Steady("mamba", Mamba(model), rounds, k, s => $"state {s:N0} bytes at both positions");
        }
        using (var gpt = new GptLM(new GptConfig { DModel = 768, NLayer = 12, NHead = 12, VocabSize = Vocab, MaxPositions = Late + 64 }, seed: 1))
        {
            Console.WriteLine($"GPT baseline of the same width and parameter count (GPT-2 small / Pythia-160M shape: d_model 768, 12 layers of 12·d², 12 heads, learned positions): {gpt.ParameterCount:N0} parameters");
            Steady("transformer", Gpt(gpt, k), rounds, k, s => $"KV cache {s / 1e6:F1} MB at {Late:N0} (grows by {2 * 12 * 768 * 4 / 1024} KB per token)");
        }
        Console.WriteLine();
    }

    /// <summary>A model prefilled (parallel forward, NoGrad) to a position; Restore puts a working copy back there, Steps times k greedy steps.</summary>
    private sealed record Stream(Action Restore, Func<int, double> Steps, long Bytes, IDisposable Owner);

    private static Func<int, Stream> Mamba(MambaLM model) => position =>
    {
        var saved = model.NewState(1);
        var work = model.NewState(1);
        Prefill(ids => model.Forward(ids, saved), position);
        return new Stream(() => { work.CopySlot(0, saved); work.Position = saved.Position; },
            count => Decode(count, t => model.Step(Tensor.From([t], 1), work)), saved.Bytes, new Owners(saved, work));
    };

    private static Func<int, Stream> Gpt(GptLM model, int k) => position =>
    {
        var cache = model.NewCache(1, position + k);
        Prefill(ids => model.Forward(ids, cache), position);
        return new Stream(() => cache.Truncate(position), count => Decode(count, t => model.Step(Tensor.From([t], 1), cache)), cache.Bytes, cache);
    };

    /// <summary>Median ms/token of k steps from position 100 and from position 4,000, timed alternately; prints both and their ratio.</summary>
    private static void Steady(string name, Func<int, Stream> open, int rounds, int k, Func<long, string> memory)
    {
        var sw = Stopwatch.StartNew();
        var a = open(Early);
        var b = open(Late);
        Console.WriteLine($"{name}: prefilled {Early} and {Late:N0} tokens in {sw.Elapsed.TotalSeconds:F0} s; {rounds} rounds of {k} steps from each position, alternating");
        var ta = new List<double>();
        var tb = new List<double>();
        for (int r = -1; r < rounds; r++)   // round −1 warms both paths up and is not counted
            foreach (var (s, times) in r % 2 == 0 ? new[] { (a, ta), (b, tb) } : [(b, tb), (a, ta)])
            {
                s.Restore();
                double ms = s.Steps(k);
                if (r >= 0) times.Add(ms);
            }
        double ma = Median(ta), mb = Median(tb);
        // each round's two timings are adjacent in time, so their ratio cancels slow changes in the machine's load
        var ratios = ta.Zip(tb, (x, y) => y / x).ToList();
        double ratio = Median(ratios);
        Console.WriteLine($"{name}: {ma:F2} ms/token at position {Early}, {mb:F2} ms/token at {Late:N0} (medians; quartiles {Quantile(ta, 0.25):F2}–{Quantile(ta, 0.75):F2} and " +
                          $"{Quantile(tb, 0.25):F2}–{Quantile(tb, 0.75):F2}); per-round ratio {Late:N0}/{Early}: median {ratio:F3} ({ratio - 1:+0.0%;-0.0%}), quartiles {Quantile(ratios, 0.25):F3}–{Quantile(ratios, 0.75):F3}; {memory(b.Bytes)}");
        a.Owner.Dispose();
        b.Owner.Dispose();
    }

    private static void Prefill(Func<Tensor, Tensor> forward, int length)
    {
        var ids = Enumerable.Range(0, length).Select(i => (long)((i * 7919L + 13) % Vocab)).ToArray();
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        forward(Tensor.From(ids, 1, length));
    }

    /// <summary>ms per token over <paramref name="count"/> greedy steps starting from token 1.</summary>
    private static double Decode(int count, Func<long, Tensor> step)
    {
        using var _ = GradMode.NoGrad();
        long token = 1;
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < count; i++)
            using (var scope = new TensorScope()) token = ArgMax(step(token));
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds / count;
    }

    private static double TimeSteps(MambaLM model, Inference.MambaState state, int warmup, int count)
    {
        Decode(warmup, t => model.Step(Tensor.From([t], 1), state));
        return Decode(count, t => model.Step(Tensor.From([t], 1), state)) * count / 1000;
    }

    /// <summary>
    /// The same-run baseline: bench/baselines/mamba_decode.c, a plain C decoding loop of the same shape (OpenMP, 2 threads here),
    /// compiled with the machine's C compiler; it and our step are timed in alternation (3 rounds of 64 tokens each) and the
    /// median of the per-round ratios printed. Skipped, saying why, without a C compiler.
    /// </summary>
    private static void PlainC(MambaLM model, Inference.MambaState state)
    {
        var source = Path.Combine(AppContext.BaseDirectory, "baselines", "mamba_decode.c");
        var exe = Path.Combine(Path.GetTempPath(), $"mamba4-decode-baseline-{Environment.ProcessId}");
        try
        {
            var cc = Run("cc", $"-O3 -march=native -fopenmp \"{source}\" -lm -o \"{exe}\"");
            if (cc.Code != 0) { Console.WriteLine($"  plain C baseline: not built ({cc.Output.Trim()})"); return; }
            var ratios = new List<double>();
            var ours = new List<double>();
            var theirs = new List<double>();
            for (int round = 0; round < 3; round++)
            {
                var c = Run(exe, "16 64", ("OMP_NUM_THREADS", Environment.ProcessorCount.ToString()));
                var json = System.Text.Json.Nodes.JsonNode.Parse(c.Output.Trim().Split('\n')[^1])!;
                double theirTokens = json["tokens_per_s"]!.GetValue<double>();
                double ourTokens = 64 / TimeSteps(model, state, warmup: 4, count: 64);
                theirs.Add(theirTokens); ours.Add(ourTokens); ratios.Add(ourTokens / theirTokens);
            }
            Console.WriteLine($"  same run, alternating: ours {Quantile(ours, 0.5):F1} tokens/s, plain C loop (bench/baselines/mamba_decode.c, {Environment.ProcessorCount} OpenMP threads) " +
                              $"{Quantile(theirs, 0.5):F1} tokens/s; ours / C per round: median {Quantile(ratios, 0.5):F2}× ({string.Join(", ", ratios.Select(r => r.ToString("F2")))})");
        }
        catch (System.ComponentModel.Win32Exception e) { Console.WriteLine($"  plain C baseline: no C compiler ({e.Message})"); }
        finally { File.Delete(exe); }
    }

    private static (int Code, string Output) Run(string file, string arguments, params (string Name, string Value)[] environment)
    {
        var info = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment) info.Environment[name] = value;
        using var p = Process.Start(info)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    /// <summary>Where a step's time goes (kernel share over 16 steps).</summary>
    private static void Profile(MambaLM model, Inference.MambaState state)
    {
        Backend.EnableProfiling();
        ProfilingBackend.Reset();
        var sw = Stopwatch.StartNew();
        Decode(16, t => model.Step(Tensor.From([t], 1), state));
        double wall = sw.Elapsed.TotalSeconds;
        var rows = ProfilingBackend.Report();
        Backend.DisableProfiling();
        Console.WriteLine("  profile of 16 steps: " + string.Join(", ", rows.Take(8).Select(r => $"{r.Kernel} {r.Seconds / wall:P1}")));
    }

    private static long ArgMax(Tensor logits)
    {
        var s = logits.AsSpan<float>();
        int best = 0;
        for (int i = 1; i < s.Length; i++) if (s[i] > s[best]) best = i;
        return best;
    }

    private static double Median(List<double> xs) => Quantile(xs, 0.5);

    private static double Quantile(List<double> xs, double q)
    {
        var s = xs.Order().ToArray();
        double pos = q * (s.Length - 1);
        int lo = (int)pos;
        return lo + 1 < s.Length ? s[lo] + (pos - lo) * (s[lo + 1] - s[lo]) : s[lo];
    }

    private sealed class Owners(params IDisposable[] items) : IDisposable
    {
        public void Dispose() { foreach (var i in items) i.Dispose(); }
    }
}
