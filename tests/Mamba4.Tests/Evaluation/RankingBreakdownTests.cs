using Mamba4.Evaluation;

namespace Mamba4.Tests;

/// <summary>Metrics by group of a per-user key, against hand-computed cases.</summary>
public class RankingBreakdownTests
{
    [Fact]
    public void GroupsAverageTheMetricsOfTheirUsers()
    {
        // keys 1, 2, 2, 5, 9 in groups [1, 1], [2, 4], ≥5; ranks 1, 3, 20, 2, 10
        int[] ranks = [1, 3, 20, 2, 10];
        long[] keys = [1, 2, 2, 5, 9];
        var g = RankingBreakdown.ByKey(ranks, keys, [1, 2, 5], k: 10);
        Assert.Equal(["1", "2–4", "≥5"], g.Select(x => x.Label));
        Assert.Equal([1, 2, 2], g.Select(x => x.Count));
        // group 1: rank 1 → hit 1, ndcg 1, mrr 1
        Assert.Equal(1.0, g[0].Hit);
        Assert.Equal(1.0, g[0].Ndcg);
        Assert.Equal(1.0, g[0].Mrr);
        // group 2–4: ranks 3 and 20 (20 > K) → hit ½, ndcg ½·1/log2(4) = 0.25, mrr ½·⅓
        Assert.Equal(0.5, g[1].Hit);
        Assert.Equal(0.25, g[1].Ndcg, 12);
        Assert.Equal(1.0 / 6, g[1].Mrr, 12);
        // group ≥5: ranks 2 and 10 (K is inclusive) → hit 1, ndcg ½(1/log2 3 + 1/log2 11), mrr ½(½ + 1/10)
        Assert.Equal(1.0, g[2].Hit);
        Assert.Equal(0.5 * (1 / Math.Log2(3) + 1 / Math.Log2(11)), g[2].Ndcg, 12);
        Assert.Equal(0.3, g[2].Mrr, 12);
    }

    [Fact]
    public void KeysBelowTheFirstEdgeAreLeftOutAndEmptyGroupsAreKept()
    {
        var g = RankingBreakdown.ByKey([1, 1, 4], [0, 3, 3], [1, 2, 3], k: 5);
        Assert.Equal([0, 0, 2], g.Select(x => x.Count));    // key 0 < 1: not counted
        Assert.True(double.IsNaN(g[0].Hit));
        Assert.Equal(1.0, g[2].Hit);
        Assert.Equal(0.5 * (1 + 0.25), g[2].Mrr, 12);
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => RankingBreakdown.ByKey([1, 2], [1], [0]));
        Assert.Throws<ArgumentException>(() => RankingBreakdown.ByKey([1], [1], [2, 2]));
        Assert.Throws<ArgumentException>(() => RankingBreakdown.ByKey([1], [1], []));
    }
}
