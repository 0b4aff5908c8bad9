using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Inference;

/// <summary>
/// How the next token is chosen. Greedy takes the arg-max; otherwise logits are divided by the temperature, filtered
/// by top-k and top-p (nucleus), and sampled with a seeded generator. The ranges (<see cref="Problem"/>) hold for the
/// float values the sampler reads: a temperature below <see cref="MinTemperature"/> (0 included) takes the arg-max,
/// as <see cref="Greedy"/> does.
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>Temperatures below this take the most likely token: 1/T must stay finite in float, and at T = 1e-5 a logit gap of 0.001 is already a factor e^-100.</summary>
    public const float MinTemperature = 1e-5f;
    public const float MaxTemperature = 10f;
    public const float MinRepetitionPenalty = 0.1f, MaxRepetitionPenalty = 10f;

    public bool Greedy { get; init; }
    public float Temperature { get; init; } = 1f;
    public int TopK { get; init; }
    public float TopP { get; init; } = 1f;
    /// <summary>CTRL-style penalty on tokens already in the sequence (1 = off).</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    public int Seed { get; init; }
    /// <summary>Stop after this token (not emitted twice); null = never.</summary>
    public long? EosTokenId { get; init; }

    /// <summary>True when the next token is the arg-max: <see cref="Greedy"/>, or a temperature below <see cref="MinTemperature"/>.</summary>
    public bool IsGreedy => Greedy || Temperature < MinTemperature;

    /// <summary>The first option outside its range — its API name (temperature, top_p, top_k, repetition_penalty) and the
    /// rule, e.g. ("top_p", "must be in (0, 1], got 2") — or null when every option is usable. NaN is outside every range.</summary>
    public (string Field, string Rule)? Problem() =>
        !(Temperature >= 0 && Temperature <= MaxTemperature)
            ? ("temperature", Invariant($"must be in [0, {MaxTemperature}] (below {MinTemperature} it takes the most likely token, as 0 does), got {Temperature}"))
        : !(TopP > 0 && TopP <= 1) ? ("top_p", Invariant($"must be in (0, 1], got {TopP}"))
        : TopK < 0 ? ("top_k", Invariant($"must be ≥ 0 (0 = all tokens), got {TopK}"))
        : !(RepetitionPenalty >= MinRepetitionPenalty && RepetitionPenalty <= MaxRepetitionPenalty)
            ? ("repetition_penalty", Invariant($"must be in [{MinRepetitionPenalty}, {MaxRepetitionPenalty}] (1 = off), got {RepetitionPenalty}"))
        : null;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first option outside its range (<see cref="Problem"/>).</summary>
    public void Validate()
    {
        if (Problem() is { } p) throw new ArgumentException($"{p.Field} {p.Rule}");
    }

    private static string Invariant(FormattableString s) => FormattableString.Invariant(s);
}

/// <summary>The logits to sample from hold NaN or ±∞ (a model whose weights or state hold them): generation cannot go on.</summary>
public sealed class NonFiniteLogitsException(string message) : ArithmeticException(message);

/// <summary>
/// Text generation on the recurrent path: the prompt is prefilled with the parallel scan (which hands
/// back the state), then each new token costs one O(1) <see cref="MambaLM.Step(Tensor, MambaState)"/>.
/// </summary>
public static class Generator
{
    public static long[] Greedy(MambaLM model, long[] prompt, int maxNewTokens) =>
        [.. prompt, .. Stream(model, prompt, maxNewTokens, new SamplingOptions { Greedy = true })];

    /// <summary>Yields new tokens one at a time as they are produced (the prompt is not repeated).</summary>
    public static IEnumerable<long> Stream(MambaLM model, long[] prompt, int maxNewTokens, SamplingOptions options)
    {
        if (prompt.Length == 0) throw new ArgumentException("generation needs a prompt of at least one token");
        options.Validate();
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
            // the head on the last position only: the prompt's other logits ([L × vocab]) are never needed
            logits = model.LastLogits(Tensor.From(prompt, 1, prompt.Length), state).ToFloatArray();
        }
        // On a GPU, steps after the first replay one captured CUDA graph (StepGraph) instead of launching every kernel;
        // greedy decoding (no repetition penalty) then takes the arg-max the graph computed on the device.
        StepGraph? graph = null;
        bool greedyOnDevice = options.IsGreedy && options.RepetitionPenalty == 1f;
        long? chosen = null;   // the next token, when the device already picked it
        try
        {
            for (int i = 0; i < maxNewTokens; i++)
            {
                long next = chosen ?? Choose(logits, history, options, rng);
                history.Add(next);
                yield return next;
                if (next == options.EosTokenId || i == maxNewTokens - 1) yield break;
                using (GradMode.NoGrad())
                using (var scope = new TensorScope())
                {
                    if (i == 1 && !model.LmHead.Device.IsCpu) graph = StepGraph.TryCreate(model, state, 1);
                    chosen = null;
                    if (greedyOnDevice && graph is { GreedyOnDevice: true })
                    {
                        long id = graph.StepGreedy([next])[0];
                        if (id >= 0) chosen = id;
                        else logits = graph.Logits.ToFloatArray();   // a NaN or ±∞ logit: Choose names it
                    }
                    else logits = graph is not null ? graph.Step([next]).ToFloatArray() : model.Step(Tensor.From([next], 1), state).ToFloatArray();
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
    /// Picks the next token from one row of logits (not modified). Greedy (or a temperature below
    /// <see cref="SamplingOptions.MinTemperature"/>): the arg-max. Otherwise w_i = exp((l_i − max)/T); top-k keeps the k
    /// largest (ties: lower id); top-p keeps the smallest prefix of the tokens in descending order (ties: lower id first)
    /// whose share of Σw reaches p; one uniform draw picks among what is kept, in proportion to w (walking top-k's
    /// candidates in descending order, other kept tokens in id order). O(V) expected work per token, no sort of the
    /// vocabulary — the server runs it for every sampling stream at every step.
    /// Every loop is bounded: options outside their ranges are an <see cref="ArgumentException"/>, a row holding NaN or
    /// ±∞ a <see cref="NonFiniteLogitsException"/>; a repetition penalty that overflows a logit saturates it at ±float.MaxValue.
    /// </summary>
    public static long Choose(ReadOnlySpan<float> logits, IReadOnlyList<long> history, SamplingOptions o, Random rng)
    {
        o.Validate();
        CheckFinite(logits);
        if (o.IsGreedy && o.RepetitionPenalty == 1f) return ArgMax(logits);   // nothing to change in the row: no copy
        int v = logits.Length;
        float[] work = System.Buffers.ArrayPool<float>.Shared.Rent(v);
        try
        {
            var l = work.AsSpan(0, v);
            logits.CopyTo(l);
            if (o.RepetitionPenalty != 1f)
                foreach (var t in history.Distinct())
                {
                    float x = l[(int)t] > 0 ? l[(int)t] / o.RepetitionPenalty : l[(int)t] * o.RepetitionPenalty;
                    l[(int)t] = Math.Clamp(x, -float.MaxValue, float.MaxValue);
                }
            int best = ArgMax(l);
            if (o.IsGreedy) return best;
            float max = l[best];
            if (o.TopK > 0 && o.TopK < v) return SampleTopK(l, o, rng, max);
            // w_i = exp((l_i − max)/T) in place: every l_i is finite, so l_i − max is in [−∞, 0] (−∞ when the gap
            // overflows), 1/T ≤ 1e5, and every w_i is in [0, 1] with w_best = 1: no NaN, Σw in [1, V].
            var w = l;
            System.Numerics.Tensors.TensorPrimitives.Subtract(w, max, w);
            System.Numerics.Tensors.TensorPrimitives.Multiply(w, 1f / o.Temperature, w);
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
            // Top-p: the weight t of the last token of the prefix (found by selection, O(V) expected), then every token
            // heavier than t and, of those weighing exactly t, the first ones by id until the mass reaches p·Σw.
            var (cut, ties) = NucleusThreshold(w, o.TopP * sum);
            double kept = 0;
            int tiesLeft = ties;
            for (int i = 0; i < v; i++)
                if (w[i] > cut || (w[i] == cut && tiesLeft-- > 0)) kept += w[i];
            double u = rng.NextDouble() * kept;
            tiesLeft = ties;
            int last = best;
            for (int i = 0; i < v; i++)
            {
                if (!(w[i] > cut || (w[i] == cut && tiesLeft-- > 0))) continue;
                last = i;
                u -= w[i];
                if (u <= 0) return i;
            }
            return last;
        }
        finally { System.Buffers.ArrayPool<float>.Shared.Return(work); }
    }

    /// <summary>Throws <see cref="NonFiniteLogitsException"/> naming the first NaN or ±∞ of the row (and an empty row).</summary>
    private static void CheckFinite(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("the row of logits is empty: there is no token to choose");
        if (System.Numerics.Tensors.TensorPrimitives.IsFiniteAll(logits)) return;
        int i = 0;
        while (float.IsFinite(logits[i])) i++;
        throw new NonFiniteLogitsException($"the model produced a non-finite logit ({logits[i]} for token {i} of {logits.Length}): its weights or its state hold NaN or infinity");
    }

    /// <summary>
    /// The nucleus of weights <paramref name="w"/> (finite, not negative) for a mass <paramref name="target"/>: the weight t
    /// of the last token when tokens are taken heaviest first, and how many tokens of weight exactly t it takes (the mass
    /// of the heavier ones falls short of the target; adding them reaches it). Quickselect-style partitioning on a copy:
    /// each round drops at least the pivot from the range, so at most w.Length rounds.
    /// </summary>
    private static (float T, int Ties) NucleusThreshold(ReadOnlySpan<float> w, double target)
    {
        float[] buffer = System.Buffers.ArrayPool<float>.Shared.Rent(w.Length);
        try
        {
            var a = buffer.AsSpan(0, w.Length);
            w.CopyTo(a);
            double above = 0;   // mass of the tokens known to be heavier than everything left in a
            var rng = new Random(a.Length);
            for (int round = 0; round < w.Length; round++)
            {
                float pivot = a[rng.Next(a.Length)];
                int gt = 0, eq = 0;
                double sumGt = 0;
                // Partition a into [> pivot | == pivot | < pivot].
                int lo = 0, mid = 0, hi = a.Length - 1;
                while (mid <= hi)
                {
                    float x = a[mid];
                    if (x > pivot) { (a[lo], a[mid]) = (a[mid], a[lo]); sumGt += x; lo++; mid++; }
                    else if (x == pivot) mid++;
                    else { (a[mid], a[hi]) = (a[hi], a[mid]); hi--; }
                }
                gt = lo;
                eq = mid - lo;
                if (above + sumGt >= target && gt > 0) { a = a[..gt]; continue; }
                if (above + sumGt + (double)eq * pivot >= target || mid == a.Length)
                {
                    int ties = Math.Max(1, (int)Math.Min(eq, Math.Ceiling((target - above - sumGt) / pivot)));
                    return (pivot, ties);
                }
                above += sumGt + (double)eq * pivot;
                a = a[mid..];
            }
            throw new InvalidOperationException($"the nucleus search did not converge in {w.Length} rounds (a weight is NaN)");
        }
        finally { System.Buffers.ArrayPool<float>.Shared.Return(buffer); }
    }

    /// <summary>Top-k (then top-p among them): the k largest logits by a size-k heap (ties: lower id), sorted descending.</summary>
    private static long SampleTopK(ReadOnlySpan<float> l, SamplingOptions o, Random rng, float max)
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
        for (int i = 0; i < order.Length; i++) sum += probs[i] = Math.Exp(((double)l[order[i]] - max) / o.Temperature);
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
