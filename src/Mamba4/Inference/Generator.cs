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
        for (int i = 0; i < maxNewTokens; i++)
        {
            long next = Choose(logits, history, options, rng);
            history.Add(next);
            yield return next;
            if (next == options.EosTokenId || i == maxNewTokens - 1) yield break;
            using (GradMode.NoGrad())
            using (var scope = new TensorScope())
                logits = model.Step(Tensor.From([next], 1), state).ToFloatArray();
        }
    }

    /// <summary>The index of the largest logit (the first one of equal largest; vectorized: the server runs it on every stream's row each step).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits) => System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);

    /// <summary>Picks the next token from one row of logits.</summary>
    public static long Choose(float[] logits, IReadOnlyList<long> history, SamplingOptions o, Random rng)
    {
        var l = (float[])logits.Clone();
        if (o.RepetitionPenalty != 1f)
            foreach (var t in history.Distinct())
                l[t] = l[t] > 0 ? l[t] / o.RepetitionPenalty : l[t] * o.RepetitionPenalty;
        if (o.Greedy) return ArgMax(l);
        var order = Enumerable.Range(0, l.Length).OrderByDescending(i => l[i]).ToArray();
        int keep = o.TopK > 0 ? Math.Min(o.TopK, l.Length) : l.Length;
        double max = l[order[0]] / o.Temperature;
        var probs = new double[keep];
        double sum = 0;
        for (int i = 0; i < keep; i++) sum += probs[i] = Math.Exp(l[order[i]] / o.Temperature - max);
        if (o.TopP < 1f)
        {
            double cumulative = 0;
            int cut = keep;
            for (int i = 0; i < keep; i++)
            {
                cumulative += probs[i] / sum;
                if (cumulative >= o.TopP) { cut = i + 1; break; }
            }
            keep = cut;
            sum = probs.Take(keep).Sum();
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
