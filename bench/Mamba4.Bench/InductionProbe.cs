using System.Globalization;
using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tasks.Synthetic;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Why a Mamba trained on induction heads does or does not extrapolate (docs/induction-heads.md):
/// 1. Δ per layer on each kind of position (ordinary, trigger, key, final query) of held-out sequences, and the memory
///    horizon it implies: between the key and the query a channel's state decays by exp(Σ Δ_t·A), so it keeps what it
///    wrote for about 1 / (mean ordinary Δ · |A|min) tokens; a key recalled L tokens later needs channels with horizons ≫ L.
/// 2. The SSM state's norm along one long sequence (recurrent step), per layer.
/// dotnet run --project bench/Mamba4.Bench -c Release -- induction-probe RUN_DIR [long length, default 2^20]
/// </summary>
public static class InductionProbe
{
    public static void Run(string[] args)
    {
        if (args.Length < 2) throw new ArgumentException("usage: induction-probe RUN_DIR [LENGTH]  (RUN_DIR: runs/induction-heads/selective)");
        var dir = args[1];
        long longLength = args.Length > 2 ? long.Parse(args[2], CultureInfo.InvariantCulture) : 1 << 20;
        using var model = MambaLM.FromPretrained(Path.Combine(dir, "model"));
        var task = new InductionHeads(vocab: model.Config.VocabSize - 1);
        using var _ = GradMode.NoGrad();
        model.Eval();
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
}
