using System.Globalization;
using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tasks.Synthetic;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Bench;

/// <summary>
/// Why a Mamba trained on induction heads does or does not extrapolate (docs/induction-heads.md):
/// 1. Δ per layer on each kind of position (ordinary, trigger, key, final query) of held-out sequences, and the memory
///    horizon it implies: between the key and the query a channel's state decays by exp(Σ Δ_t·A), so it keeps what it
///    wrote for about 1 / (mean ordinary Δ · |A|min) tokens; a key recalled L tokens later needs channels with horizons ≫ L.
/// 2. The SSM state's norm along one long sequence (recurrent step), per layer.
/// 3. The key's trace (`induction-probe RUN_DIR trace [LENGTH] [SEQUENCES]`): one sequence per key value (the same
///    noise tokens, the first trigger at position 8), read through the chunked scan; at distances 2^k from the key, per
///    layer, the part of the state that depends on the key (std over the key values, per state entry) against the part
///    that does not (their mean), the share of the key's trace held by the top 1 % of entries, and at the end
///    whether each variant's query is answered — so a failure can be told apart as a lost key (trace gone) or a
///    key that is there but not read (trace kept, answer wrong).
/// dotnet run --project bench/Mamba4.Bench -c Release -- induction-probe RUN_DIR [long length, default 2^20]
/// </summary>
public static class InductionProbe
{
    public static void Run(string[] args)
    {
        if (args.Length < 2) throw new ArgumentException("usage: induction-probe RUN_DIR [LENGTH] | induction-probe RUN_DIR trace [LENGTH] [SEQUENCES]  (RUN_DIR: runs/induction-heads/selective)");
        var dir = args[1];
        bool trace = args.Length > 2 && args[2] == "trace";
        int rest = trace ? 3 : 2;
        long longLength = args.Length > rest ? long.Parse(args[rest], CultureInfo.InvariantCulture) : 1 << 20;
        using var model = MambaLM.FromPretrained(Path.Combine(dir, "model"));
        var task = new InductionHeads(vocab: model.Config.VocabSize - 1);
        using var _ = GradMode.NoGrad();
        model.Eval();
        if (trace)
        {
            int sequences = args.Length > rest + 1 ? int.Parse(args[rest + 1], CultureInfo.InvariantCulture) : 4;
            for (int i = 0; i < sequences; i++) KeyTrace(model, task, longLength, i);
            return;
        }
        DeltaByPosition(model, task);
        StateNorm(model, task, longLength);
    }

    private static void DeltaByPosition(MambaLM model, InductionHeads task)
    {
        const int n = 64, length = 2048;
        var sequences = Enumerable.Range(0, n).Select(i => InductionEvaluation.HeldOut(task, 1, length, i)).ToArray();
        var ids = new long[n * length];
        for (int s = 0; s < n; s++) sequences[s].Read(ids.AsSpan(s * length, length));
        using var scope = new TensorScope();
        var hidden = new List<Tensor>();
        model.Forward(Tensor.From(ids, n, length), hiddenStates: hidden);
        var input = model.Backbone.Embeddings.Forward(Tensor.From(ids, n, length));
        Console.WriteLine($"Δ on {n} held-out sequences of {length} tokens (median / 99th percentile over channels × positions):");
        for (int layer = 0; layer < model.Backbone.Layers.Count; layer++)
        {
            var block = model.Backbone.Layers[layer];
            var mixer = (MambaMixer)block.Mixer;
            var delta = Delta(mixer, block.Norm.Forward(layer == 0 ? input : hidden[layer - 1]));
            int e = mixer.Config.DInner;
            var aMin = new double[e];
            var aLog = mixer.ALog.ToFloatArray();
            for (int c = 0; c < e; c++) aMin[c] = Enumerable.Range(0, mixer.Config.DState).Min(k => Math.Exp(aLog[c * mixer.Config.DState + k]));
            var kinds = new Dictionary<string, List<float>> { ["ordinary"] = [], ["trigger"] = [], ["key"] = [], ["query"] = [] };
            var perChannelOrdinary = new double[e];
            var perChannelKey = new double[e];
            long ordinaryCount = 0;
            for (int s = 0; s < n; s++)
                for (int t = 0; t < length; t++)
                {
                    string kind = t == length - 1 ? "query" : t == sequences[s].Trigger ? "trigger" : t == sequences[s].Trigger + 1 ? "key" : "ordinary";
                    var row = delta.AsSpan((s * length + t) * e, e);
                    if (kind != "ordinary" || t % 7 == 0) kinds[kind].AddRange(row.ToArray());   // every 7th ordinary position is enough for its quantiles
                    for (int c = 0; c < e; c++)
                    {
                        if (kind == "ordinary") perChannelOrdinary[c] += row[c];
                        if (kind == "key") perChannelKey[c] += row[c] / n;
                    }
                    if (kind == "ordinary") ordinaryCount++;
                }
            foreach (var (kind, values) in kinds)
            {
                values.Sort();
                Console.WriteLine($"  layer {layer} {kind,-9} median {values[values.Count / 2],10:G3}  p99 {values[(int)(values.Count * 0.99)],10:G3}  max {values[^1],10:G3}");
            }
            // Memory lives in the channels that decay slowest between writes: horizon 1/(mean ordinary Δ · |A|min) tokens.
            var horizon = Enumerable.Range(0, e).Select(c => 1 / (perChannelOrdinary[c] / ordinaryCount * aMin[c])).ToArray();
            var longest = Enumerable.Range(0, e).OrderByDescending(c => horizon[c]).Take(6).ToArray();
            var sorted = horizon.Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  layer {layer} horizon over channels: median {sorted[e / 2]:G3}, 90th percentile {sorted[e * 9 / 10]:G3}, longest {sorted[^1]:G3} tokens; the longest, with Δ at the key ÷ mean ordinary Δ:"));
            Console.WriteLine("    " + string.Join("  ", longest.Select(c =>
                string.Create(CultureInfo.InvariantCulture, $"c{c}: {horizon[c]:G3} tokens, key {perChannelKey[c] / (perChannelOrdinary[c] / ordinaryCount):G3}×"))));
        }
    }

    /// <summary>Δ = softplus(dt_proj(x_proj(silu(conv(in_proj(h)))))[:r]) + bias), (b·l, d_inner), as MambaMixer.Forward computes it.</summary>
    private static float[] Delta(MambaMixer mixer, Tensor normed)
    {
        int e = mixer.Config.DInner, r = mixer.Config.DtRank, n = mixer.Config.DState;
        var xz = F.SplitLastAxis(mixer.InProj.Forward(normed), e, e);
        var x = mixer.Conv1d.Forward(xz[0], silu: true);
        var parts = F.SplitLastAxis(mixer.XProj!.Forward(x), r, n, n);
        var raw = F.Linear(parts[0], mixer.DtProj!.Weight).ToFloatArray();
        var bias = mixer.DtProj.Bias!.ToFloatArray();
        for (int i = 0; i < raw.Length; i++)
        {
            double v = raw[i] + bias[i % e];
            raw[i] = (float)(v > 20 ? v : v < -30 ? Math.Exp(v) : Math.Log(1 + Math.Exp(v)));
        }
        return raw;
    }

    private static void StateNorm(MambaLM model, InductionHeads task, long length)
    {
        const int n = 8;
        var sequences = Enumerable.Range(0, n).Select(i => InductionEvaluation.HeldOut(task, 1, length, i)).ToArray();
        using var state = model.NewState(n);
        var column = new long[n];
        var token = new long[1];
        Console.WriteLine($"SSM state norm ‖h‖ (mean over {n} held-out sequences of {length} tokens), per layer, at positions 2^k:");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (long t = 0; t < length; t++)
        {
            for (int s = 0; s < n; s++) { sequences[s].Read(token); column[s] = token[0]; }
            using var scope = new TensorScope();
            model.Step(Tensor.From(column, n), state);
            if ((t & (t + 1)) != 0 || t < 63) continue;   // t + 1 a power of two
            var norms = state.Layers.Select(l =>
            {
                var h = l.SsmState.ToFloatArray();
                int per = h.Length / n;
                return Enumerable.Range(0, n).Average(s => Math.Sqrt(h.AsSpan(s * per, per).ToArray().Sum(v => (double)v * v)));
            });
            Console.WriteLine($"  {t + 1,8}: " + string.Join("  ", norms.Select((v, i) => $"layer {i} {v,9:G4}")) + $"   ({clock.Elapsed.TotalSeconds:F0} s)");
        }
    }

    private static void KeyTrace(MambaLM model, InductionHeads task, long length, int index)
    {
        const long trigger = 8;
        if (length < 16) throw new ArgumentException($"induction-probe trace: the length must be at least 16 (the key is at {trigger + 1}), got {length}");
        int keys = task.Vocab, chunk = InductionEvaluation.ChunkLength;
        ulong noiseSeed = 0x5EEDUL + (ulong)index * 0x9E3779B97F4A7C15UL;
        var variants = Enumerable.Range(0, keys).Select(k => new InductionSequence(length, trigger, k, task.Vocab, new SplitMixRandom(noiseSeed))).ToArray();
        using var state = model.NewState(keys);
        foreach (var layer in state.Layers) layer.ForwardContinues = true;
        Console.WriteLine($"key trace, sequence {index}: {keys} variants (key 0…{keys - 1}) of {length} tokens, trigger at {trigger}; per layer: " +
                          "trace = ‖std over keys‖, background = ‖mean over keys‖, top 1 % = share of the trace in the largest 1 % of entries");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var answers = new int[keys];
        long position = 0, report = 256;   // tokens read; the next report position (the last is just before the query)
        while (position < length)
        {
            int width = (int)Math.Min(chunk, Math.Min(length, report) - position);
            var ids = new long[keys * width];
            for (int k = 0; k < keys; k++) variants[k].Read(ids.AsSpan(k * width, width));
            using var scope = new TensorScope();
            state.Position = 0;
            var logits = model.Forward(Tensor.From(ids, keys, width), state);
            position += width;
            if (position == length)   // the query: each variant's answer at its last position
            {
                var all = logits.ToFloatArray();
                int v = model.Config.VocabSize;
                for (int k = 0; k < keys; k++) answers[k] = Generator.ArgMax(all.AsSpan(((k + 1) * width - 1) * v, v));
                break;
            }
            if (position < report) continue;
            var parts = state.Layers.Select((l, i) =>
            {
                var h = l.SsmState.ToFloatArray();
                int per = h.Length / keys;
                double trace = 0, background = 0;
                var spread = new double[per];
                for (int j = 0; j < per; j++)
                {
                    double mean = 0, sq = 0;
                    for (int k = 0; k < keys; k++) mean += h[k * per + j] / keys;
                    for (int k = 0; k < keys; k++) sq += (h[k * per + j] - mean) * (h[k * per + j] - mean) / keys;
                    spread[j] = sq;
                    trace += sq;
                    background += mean * mean;
                }
                double top = spread.OrderDescending().Take(Math.Max(1, per / 100)).Sum() / Math.Max(trace, 1e-300);
                return string.Create(CultureInfo.InvariantCulture, $"layer {i}: trace {Math.Sqrt(trace),9:G3} background {Math.Sqrt(background),9:G3} top 1 % {top,4:P0}");
            });
            Console.WriteLine($"  {position - trigger - 2,8} tokens after the key: " + string.Join("   ", parts) + $"   ({clock.Elapsed.TotalSeconds:F0} s)");
            report = report == length - 1 ? length : Math.Min(report * 2, length - 1);
        }
        int right = answers.Where((a, k) => a == k).Count();
        Console.WriteLine($"  answers at the query (key → predicted): {string.Join(" ", answers.Select((a, k) => $"{k}→{a}"))}; {right} of {keys} right");
    }
}
