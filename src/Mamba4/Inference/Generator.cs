using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Inference;

/// <summary>How the next token is chosen. Greedy takes the arg-max; otherwise logits are divided by
/// the temperature, filtered by top-k and top-p (nucleus), and sampled with a seeded generator.</summary>
public sealed record SamplingOptions
{
    public bool Greedy { get; init; }
    public float Temperature { get; init; } = 1f;
    public int TopK { get; init; }
    public float TopP { get; init; } = 1f;
    /// <summary>CTRL-style penalty on tokens already in the sequence (1 = off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    public int Seed { get; init; }
    /// <summary>Stop after this token (not emitted twice); null = never.</summary>
    public long? EosTokenId { get; init; }
}

/// <summary>
/// Text generation on the recurrent path: the prompt is prefilled with the parallel scan (which hands
/// back the state), then each new token costs one O(1) <see cref="MambaLM.Step"/>.
/// </summary>
public static class Generator
{
    public static long[] Greedy(MambaLM model, long[] prompt, int maxNewTokens) =>
        [.. prompt, .. Stream(model, prompt, maxNewTokens, new SamplingOptions { Greedy = true })];

    /// <summary>Yields new tokens one at a time as they are produced (the prompt is not repeated).</summary>
    public static IEnumerable<long> Stream(MambaLM model, long[] prompt, int maxNewTokens, SamplingOptions options)
    {
        if (prompt.Length == 0) throw new ArgumentException("generation needs a prompt of at least one token");
        if (options.Temperature <= 0 && !options.Greedy) throw new ArgumentOutOfRangeException(nameof(options), "temperature must be > 0 (or use greedy)");
        long vocab = model.Config.VocabSize;
        foreach (var t in prompt)
            if (t < 0 || t >= vocab) throw new ArgumentOutOfRangeException(nameof(prompt), $"prompt token {t} is outside the vocabulary [0, {vocab})");
        var rng = new Random(options.Seed);
        var history = new List<long>(prompt);
        using var state = model.NewState(1);
        float[] logits;
        using (GradMode.NoGrad())
        using (var scope = new TensorScope())
        {
            var all = model.Forward(Tensor.From(prompt, 1, prompt.Length), state);
            logits = all.Slice(0, 1).Reshape(prompt.Length, (int)vocab).Slice(prompt.Length - 1, 1).ToFloatArray();
        }
        // On a GPU, steps after the first replay one captured CUDA graph (StepGraph) instead of launching every kernel.
        StepGraph? graph = null;
        try
        {
            for (int i = 0; i < maxNewTokens; i++)
            {
                long next = Choose(logits, history, options, rng);
                history.Add(next);
                yield return next;
                if (next == options.EosTokenId || i == maxNewTokens - 1) yield break;
                using (GradMode.NoGrad())
                using (var scope = new TensorScope())
                {
                    if (i == 1 && !model.LmHead.Device.IsCpu) graph = StepGraph.TryCreate(model, state, 1);
                    logits = graph is not null ? graph.Step([next]).ToFloatArray() : model.Step(Tensor.From([next], 1), state).ToFloatArray();
                }
            }
        }
        finally { graph?.Dispose(); }
    }

    /// <summary>The index of the largest logit (the first one of equal largest; vectorized: the server runs it on every stream's row each step).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits) => System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);

    /// <summary>Picks the next token from one row of logits.</summary>
    public static long Choose(float[] logits, IReadOnlyList<long> history, SamplingOptions o, Random rng) => Choose(logits.AsSpan(), history, o, rng);

    /// <summary>
    /// Picks the next token from one row of logits (not modified). Greedy: the arg-max. Otherwise
    /// w_i = exp(l_i/T − max/T); top-k keeps the k largest (ties: lower id); top-p keeps the smallest prefix of the
    /// candidates in descending order whose share of Σw reaches p; one uniform draw picks among what is kept
    /// (the kept tokens in descending order, or all tokens in id order when nothing is cut). O(V) work per token
    /// beside the kept candidates' sort — the server runs it for every sampling stream at every step.
    /// </summary>
    public static long Choose(ReadOnlySpan<float> logits, IReadOnlyList<long> history, SamplingOptions o, Random rng)
    {
        int v = logits.Length;
        float[] work = System.Buffers.ArrayPool<float>.Shared.Rent(v);
        try
        {
            var l = work.AsSpan(0, v);
            logits.CopyTo(l);
            if (o.RepetitionPenalty != 1f)
                foreach (var t in history.Distinct())
                    l[(int)t] = l[(int)t] > 0 ? l[(int)t] / o.RepetitionPenalty : l[(int)t] * o.RepetitionPenalty;
            if (o.Greedy) return ArgMax(l);
            int best = ArgMax(l);
            double t0 = o.Temperature, max = l[best] / t0;
            if (o.TopK > 0 && o.TopK < v) return SampleTopK(l, o, rng, max);
            // w_i = exp(l_i/T − max) in place, Σw in id order.
            var w = l;
            System.Numerics.Tensors.TensorPrimitives.Multiply(w, (float)(1 / t0), w);
            System.Numerics.Tensors.TensorPrimitives.Subtract(w, (float)max, w);
            System.Numerics.Tensors.TensorPrimitives.Exp(w, w);
            double sum = 0;
            foreach (var x in w) sum += x;
            if (o.TopP >= 1f)
            {
                double r = rng.NextDouble() * sum;
                for (int i = 0; i < v; i++)
                {
                    r -= w[i];
                    if (r <= 0) return i;
                }
                return best;
            }
            // Top-p: the prefix lies among the tokens of weight ≥ τ once their weights reach p·Σw; lower τ until they do.
            var candidates = new List<int>();
            for (double tau = 1.0 / 16; ; tau /= 16)
            {
                candidates.Clear();
                double part = 0;
                for (int i = 0; i < v; i++) if (w[i] >= tau) { candidates.Add(i); part += w[i]; }
                if (part >= o.TopP * sum || tau < 1e-300) break;
            }
            var wl = work;
            candidates.Sort((a, b) => wl[b] != wl[a] ? wl[b].CompareTo(wl[a]) : a.CompareTo(b));
            int keep = candidates.Count;
            double cumulative = 0, kept = 0;
            for (int i = 0; i < candidates.Count; i++)
            {
                kept += w[candidates[i]];
                cumulative += w[candidates[i]] / sum;
                if (cumulative >= o.TopP) { keep = i + 1; break; }
            }
            double u = rng.NextDouble() * kept;
            for (int i = 0; i < keep; i++)
            {
                u -= w[candidates[i]];
                if (u <= 0) return candidates[i];
            }
            return candidates[keep - 1];
        }
        finally { System.Buffers.ArrayPool<float>.Shared.Return(work); }
    }

    /// <summary>Top-k (then top-p among them): the k largest logits by a size-k heap (ties: lower id), sorted descending.</summary>
    private static long SampleTopK(ReadOnlySpan<float> l, SamplingOptions o, Random rng, double max)
    {
        int k = o.TopK;
        var heap = new PriorityQueue<int, (float Logit, int NegId)>(k + 1);
        for (int i = 0; i < l.Length; i++)
        {
            var key = (l[i], -i);
            if (heap.Count < k) heap.Enqueue(i, key);
            else if (heap.TryPeek(out _, out var min) && key.CompareTo(min) > 0) heap.EnqueueDequeue(i, key);
        }
        var order = new int[heap.Count];
        for (int i = order.Length - 1; i >= 0; i--) order[i] = heap.Dequeue();
        var probs = new double[order.Length];
        double sum = 0;
        for (int i = 0; i < order.Length; i++) sum += probs[i] = Math.Exp(l[order[i]] / o.Temperature - max);
        int keep = order.Length;
        if (o.TopP < 1f)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += probs[i] / sum;
                if (cumulative >= o.TopP) { keep = i + 1; break; }
            }
            sum = 0;
            for (int i = 0; i < keep; i++) sum += probs[i];
        }
        double r = rng.NextDouble() * sum;
        for (int i = 0; i < keep; i++)
        {
            r -= probs[i];
            if (r <= 0) return order[i];
        }
        return order[keep - 1];
    }
}
