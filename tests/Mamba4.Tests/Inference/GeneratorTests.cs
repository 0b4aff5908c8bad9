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
}
