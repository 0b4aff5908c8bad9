using CsCheck;
using Mamba4.Inference;

namespace Mamba4.Tests;

public class GeneratorTests
{
    private static readonly float[] Logits = [1f, 3f, 2.5f, -1f, 0f];

    [Fact]
    public void GreedyTopK1AndTinyTopPAllPickTheArgMax()
    {
        var rng = new Random(1);
        Assert.Equal(1, Generator.Choose(Logits, [], new SamplingOptions { Greedy = true }, rng));
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(1, Generator.Choose(Logits, [], new SamplingOptions { TopK = 1 }, rng));
            Assert.Equal(1, Generator.Choose(Logits, [], new SamplingOptions { TopP = 0.01f }, rng));
        }
    }

    [Fact]
    public void SamplingFollowsTheTemperedSoftmaxAndIsSeeded()
    {
        const int n = 20000;
        var counts = new int[5];
        var rng = new Random(7);
        var o = new SamplingOptions { Temperature = 2f };
        for (int i = 0; i < n; i++) counts[Generator.Choose(Logits, [], o, rng)]++;
        var p = Logits.Select(l => Math.Exp(l / 2)).ToArray();
        double z = p.Sum();
        for (int k = 0; k < 5; k++)
        {
            double expected = p[k] / z, sd = Math.Sqrt(expected * (1 - expected) / n);
            Assert.InRange(counts[k] / (double)n, expected - 5 * sd, expected + 5 * sd);
        }
        var a = Enumerable.Range(0, 20).Select(_ => Generator.Choose(Logits, [], o, new Random(3))).ToArray();
        Assert.All(a, v => Assert.Equal(a[0], v));
    }

    [Fact]
    public void TopKAndTopPRestrictTheCandidates()
    {
        var rng = new Random(5);
        for (int i = 0; i < 500; i++)
        {
            Assert.Contains(Generator.Choose(Logits, [], new SamplingOptions { TopK = 2 }, rng), new long[] { 1, 2 });
            // p(1) ≈ 0.52, p(2) ≈ 0.32: the nucleus of mass 0.8 holds exactly tokens 1 and 2.
            Assert.Contains(Generator.Choose(Logits, [], new SamplingOptions { TopP = 0.8f }, rng), new long[] { 1, 2 });
        }
    }

    [Fact]
    public void TopKAndTopPOnAVocabularySizedRowFollowTheirDistributions()
    {
        // 20k logits (the server's O(V) path): the frequency of each kept token matches a plain reference —
        // sort all tokens by logit (ties: lower id), keep the top k and/or the smallest prefix of mass ≥ p,
        // renormalise — and nothing outside the kept set is ever drawn.
        var rng = new Random(11);
        var logits = Enumerable.Range(0, 20_000).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        for (int i = 0; i < 6; i++) logits[i * 3001] = 9f - i;   // a few strong tokens (a tie between two of them below)
        logits[3 * 3001] = logits[2 * 3001];
        foreach (var o in new[] { new SamplingOptions { TopK = 4 }, new SamplingOptions { TopP = 0.5f, Temperature = 0.7f }, new SamplingOptions { TopK = 5, TopP = 0.9f } })
        {
            var order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ThenBy(i => i).ToArray();
            double max = logits[order[0]] / o.Temperature;
            var w = order.Select(i => Math.Exp(logits[i] / o.Temperature - max)).ToArray();
            int keep = o.TopK > 0 ? o.TopK : w.Length;
            double total = w.Take(keep).Sum();
            if (o.TopP < 1f)
            {
                double c = 0;
                for (int i = 0; i < keep; i++) { c += w[i] / total; if (c >= o.TopP) { keep = i + 1; break; } }
            }
            double z = w.Take(keep).Sum();
            const int n = 5000;
            var counts = new Dictionary<long, int>();
            var draw = new Random(3);
            for (int i = 0; i < n; i++)
            {
                long t = Generator.Choose(logits, [], o, draw);
                counts[t] = counts.GetValueOrDefault(t) + 1;
            }
            Assert.Subset(order.Take(keep).Select(i => (long)i).ToHashSet(), counts.Keys.ToHashSet());
            for (int i = 0; i < keep; i++)
            {
                double expected = w[i] / z, sd = Math.Sqrt(expected * (1 - expected) / n);
                Assert.InRange(counts.GetValueOrDefault(order[i]) / (double)n, expected - 5 * sd - 1e-9, expected + 5 * sd + 1e-9);
            }
        }
    }

    [Fact]
    public void RepetitionPenaltyDemotesSeenTokens()
    {
        // token 1 (3.0) penalised by 2 → 1.5 < token 2 (2.5)
        Assert.Equal(2, Generator.Choose(Logits, [1L], new SamplingOptions { Greedy = true, RepetitionPenalty = 2f }, new Random(1)));
    }

    // ---- Termination and clear errors for every input (issue 16): each call runs on a task with a generous bound, so a
    // loop that never ends fails the test instead of hanging it.

    /// <summary>Runs <paramref name="f"/> on the thread pool; a call still running after 60 s fails the test (TimeoutException).</summary>
    private static Task<T> Bounded<T>(Func<T> f) => Task.Run(f, TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
    private static Task Bounded(Action f) => Bounded(() => { f(); return 0; });

    /// <summary>
    /// What the documented policy says a call must do, stated independently of the sampler: options outside their
    /// ranges (temperature [0, 10], top_p (0, 1], top_k ≥ 0, repetition_penalty [0.1, 10]; NaN is outside) are an
    /// ArgumentException naming the field; else a row holding NaN or ±∞ is a NonFiniteLogitsException; else a token id
    /// of the row — one of largest penalised logit when the choice is deterministic (greedy, a temperature below 1e-5,
    /// top_k = 1, or a nucleus smaller than any token's share), one of the k largest under top_k.
    /// </summary>
    private static void AssertPolicy(float[] row, long[] history, SamplingOptions o, int seed)
    {
        string? badField =
            !(o.Temperature >= 0 && o.Temperature <= 10) ? "temperature"
            : !(o.TopP > 0 && o.TopP <= 1) ? "top_p"
            : o.TopK < 0 ? "top_k"
            : !(o.RepetitionPenalty >= 0.1f && o.RepetitionPenalty <= 10) ? "repetition_penalty"
            : null;
        if (badField is not null)
        {
            var e = Assert.Throws<ArgumentException>(() => Generator.Choose(row, history, o, new Random(seed)));
            Assert.StartsWith(badField + " must be", e.Message);
            return;
        }
        if (!row.All(float.IsFinite))
        {
            var e = Assert.Throws<NonFiniteLogitsException>(() => Generator.Choose(row, history, o, new Random(seed)));
            Assert.Contains("non-finite", e.Message);
            return;
        }
        long id = Generator.Choose(row, history, o, new Random(seed));
        Assert.InRange(id, 0, row.Length - 1);
        var penalised = (float[])row.Clone();
        if (o.RepetitionPenalty != 1f)
            foreach (var t in history.Distinct())
                penalised[t] = Math.Clamp(penalised[t] > 0 ? penalised[t] / o.RepetitionPenalty : penalised[t] * o.RepetitionPenalty, -float.MaxValue, float.MaxValue);
        float max = penalised.Max();
        bool greedy = o.Greedy || o.Temperature < 1e-5f;
        if (greedy || o.TopK == 1) Assert.Equal(max, penalised[id]);
        // A nucleus smaller than any token's share holds one token of the largest weight (equal to it once rounded to float).
        else if (o.TopP < 1e-30f) Assert.True(((double)penalised[id] - max) / o.Temperature > -1e-6, $"token {id} is not of the largest weight");
        if (o.TopK > 0 && o.TopK < row.Length)   // among the k largest of the penalised row
            Assert.True(penalised.Count(x => x > penalised[id]) < o.TopK, $"token {id} is not among the top {o.TopK}");
    }

    [Fact]
    public async Task ExtremeOptionsAndRowsEndWithATokenOrAClearError()
    {
        float[][] rows =
        [
            [1f, 3f, 2.5f, -1f, 0f],
            [3e38f, -3e38f, 3e38f, 1e38f, -1e-38f],
            [-3e38f, -3e38f, -2e38f],
            [2f, 2f, 2f, 2f],
            [7f],
            [1f, float.NaN, 2f],
            [1f, float.PositiveInfinity, 2f],
            [float.NegativeInfinity, 0f, 1f],
        ];
        float[] temperatures = [1e-40f, 1e-30f, 0f, 1e-5f, 0.7f, 10f, 1e30f, float.NaN];
        float[] topPs = [1e-40f, 0.5f, 1f];
        int[] topKs = [0, 1, 3, int.MaxValue];
        float[] penalties = [1e-40f, 0.1f, 1f, 10f, 1e30f];
        await Bounded(() =>
        {
            foreach (var row in rows)
            {
                long[] history = [.. new long[] { 0, 2 }.Where(t => t < row.Length)];
                foreach (var t in temperatures)
                    foreach (var p in topPs)
                        foreach (var k in topKs)
                            foreach (var r in penalties)
                                AssertPolicy(row, history, new SamplingOptions { Temperature = t, TopP = p, TopK = k, RepetitionPenalty = r }, seed: 1);
            }
        });
    }

    [Fact]
    public async Task AnySamplingOptionsOnAnyRowEndWithATokenOrAClearError()
    {
        // Mostly usable values (to reach every sampling path), then any float at all: huge, tiny, NaN, ±∞.
        var temperature = Gen.Frequency((3, Gen.Float[0f, 10f]), (1, Gen.Float[0f, 1e-4f]), (1, Gen.Float.Special), (1, Gen.Float));
        var topP = Gen.Frequency((3, Gen.Float[0f, 1f]), (1, Gen.Float.Special), (1, Gen.Float));
        var topK = Gen.Frequency((3, Gen.Int[0, 70]), (1, Gen.Int));
        var penalty = Gen.Frequency((3, Gen.Float[0.1f, 10f]), (1, Gen.Const(1f)), (1, Gen.Float.Special), (1, Gen.Float));
        var logit = Gen.Frequency((4, Gen.Float[-20f, 20f]), (1, Gen.Float[-3.4e38f, 3.4e38f]), (1, Gen.Float.Special));
        var options = Gen.Select(temperature, topP, topK, penalty, Gen.Bool, Gen.Int,
            (t, p, k, r, greedy, seed) => new SamplingOptions { Temperature = t, TopP = p, TopK = k, RepetitionPenalty = r, Greedy = greedy, Seed = seed });
        var rowAndHistory = logit.Array[1, 64].SelectMany(row => Gen.Long[0, row.Length - 1].Array[0, 6].Select(h => (row, h)));
        await Bounded(() => Gen.Select(rowAndHistory, options).Sample(x => AssertPolicy(x.Item1.row, x.Item1.h, x.Item2, x.Item2.Seed), iter: 5_000, threads: 1));
    }

    [Fact]
    public async Task ALargeVocabularyWithHugeLogitsAndATinyNucleusStillSamples()
    {
        // The case on a vocabulary-sized row: T = 1e-40 is greedy, and at T = 1e-5 with top_p 0.5 the nucleus
        // search runs over weights of which almost all underflow to 0.
        var rng = new Random(4);
        var row = Enumerable.Range(0, 50_000).Select(_ => (float)((rng.NextDouble() * 2 - 1) * 3e38)).ToArray();
        int argMax = Array.IndexOf(row, row.Max());
        foreach (var t in new[] { 1e-40f, 1e-5f })
        {
            var o = new SamplingOptions { Temperature = t, TopP = 0.5f };
            Assert.Equal(argMax, await Bounded(() => Generator.Choose(row, [], o, new Random(1))));
        }
    }
}
