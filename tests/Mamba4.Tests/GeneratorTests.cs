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
    public void RepetitionPenaltyDemotesSeenTokens()
    {
        // token 1 (3.0) penalised by 2 → 1.5 < token 2 (2.5)
        Assert.Equal(2, Generator.Choose(Logits, [1L], new SamplingOptions { Greedy = true, RepetitionPenalty = 2f }, new Random(1)));
    }
}
