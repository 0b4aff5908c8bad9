using Mamba4.Evaluation;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Full-ranking metrics against hand-computed cases and against RecBole's own top-k formulation.</summary>
public class RankingMetricsTests
{
    [Fact]
    public void RankCountsItemsScoringAboveTheGroundTruth()
    {
        //              pad   1    2    3    4
        float[] s = [0f, 0.1f, 0.9f, 0.5f, 0.3f];
        Assert.Equal(2, RankingMetrics.Rank(s, 3));   // only item 2 is above
        Assert.Equal(1, RankingMetrics.Rank(s, 2));
        Assert.Equal(4, RankingMetrics.Rank(s, 1));
    }

    [Fact]
    public void TiesCountAgainstTheGroundTruth()
    {
        float[] s = [0f, 0.5f, 0.5f, 0.5f, 0.1f];
        Assert.Equal(3, RankingMetrics.Rank(s, 2));   // items 1 and 3 tie with it: both count above
        Assert.Equal(3, RankingMetrics.Rank(s, 1));
        Assert.Equal(4, RankingMetrics.Rank(s, 4));
        float[] allEqual = [0f, 1f, 1f, 1f, 1f, 1f];
        Assert.Equal(5, RankingMetrics.Rank(allEqual, 3));   // a constant model ranks every item last
    }

    [Fact]
    public void ThePaddingItemNeverCounts()
    {
        float[] s = [100f, 0.2f, 0.1f];
        Assert.Equal(2, RankingMetrics.Rank(s, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => RankingMetrics.Rank(s, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => RankingMetrics.Rank(s, 3));
    }

    [Fact]
    public void NaNScoresArePessimistic()
    {
        Assert.Equal(4, RankingMetrics.Rank([0f, 0.3f, float.NaN, 0.1f, 0.2f], 2));   // a NaN ground truth ranks last
        Assert.Equal(2, RankingMetrics.Rank([0f, 0.3f, float.NaN, 0.1f, 0.2f], 1));   // a NaN elsewhere counts above
    }

    [Fact]
    public void ExcludedItemsLeaveTheRankingButNeverTheGroundTruth()
    {
        float[] s = [0f, 0.9f, 0.8f, 0.5f, 0.7f, 0.1f];
        Assert.Equal(4, RankingMetrics.Rank(s, 3));
        Assert.Equal(2, RankingMetrics.Rank(s, 3, [1, 2]));
        Assert.Equal(2, RankingMetrics.Rank(s, 3, [1, 2, 2, 1, 3, 5, 0, 99]));   // duplicates, the target, below-ranked, pad and out-of-range are no-ops
    }

    [Fact]
    public void MetricDefinitionsWithOneRelevantItem()
    {
        Assert.Equal(1.0, RankingMetrics.Hit(10, 10));
        Assert.Equal(0.0, RankingMetrics.Hit(11, 10));
        Assert.Equal(0.1, RankingMetrics.Mrr(10, 10), 15);
        Assert.Equal(0.0, RankingMetrics.Mrr(11, 10));
        Assert.Equal(1.0, RankingMetrics.Ndcg(1, 5), 15);
        Assert.Equal(0.5, RankingMetrics.Ndcg(3, 5), 15);   // 1/log2(4)
        Assert.Equal(0.0, RankingMetrics.Ndcg(6, 5));
    }

    [Fact]
    public void AccumulatorAveragesUnderRecBoleNames()
    {
        var acc = new RankingAccumulator();
        acc.AddRange([1, 2, 7, 15, 30]);
        var r = acc.Result();
        Assert.Equal(["hit@5", "ndcg@5", "mrr@5", "hit@10", "ndcg@10", "mrr@10", "hit@20", "ndcg@20", "mrr@20"], r.Keys);
        // By hand: hits at ranks ≤ K; ndcg terms 1, 1/log2 3 = 0.6309298, 1/log2 8 = 1/3, 1/log2 16 = 1/4; mrr terms 1, 1/2, 1/7, 1/15.
        Assert.Equal(0.4, r["hit@5"], 12);
        Assert.Equal(0.6, r["hit@10"], 12);
        Assert.Equal(0.8, r["hit@20"], 12);
        Assert.Equal((1 + 0.63092975357) / 5, r["ndcg@5"], 10);
        Assert.Equal((1 + 0.63092975357 + 1.0 / 3) / 5, r["ndcg@10"], 10);
        Assert.Equal((1 + 0.63092975357 + 1.0 / 3 + 0.25) / 5, r["ndcg@20"], 10);
        Assert.Equal(0.3, r["mrr@5"], 12);
        Assert.Equal((1.5 + 1.0 / 7) / 5, r["mrr@10"], 12);
        Assert.Equal((1.5 + 1.0 / 7 + 1.0 / 15) / 5, r["mrr@20"], 12);
        Assert.Equal(5, acc.Count);
        Assert.Throws<InvalidOperationException>(() => new RankingAccumulator().Result());
    }

    [Fact]
    public void CutoffLargerThanTheItemCountCountsEveryUserAsAHit()
    {
        // 3 real items: the worst possible rank is 3, so @5, @10 and @20 all see every ground truth.
        using var scores = Tensor.From([0f, 0.3f, 0.2f, 0.1f, 0f, 0.3f, 0.2f, 0.1f], 2, 4);
        var acc = new RankingAccumulator();
        acc.Add(scores, [3L, 1L]);
        var r = acc.Result();
        foreach (var k in new[] { 5, 10, 20 })
        {
            Assert.Equal(1.0, r[$"hit@{k}"]);
            Assert.Equal((1.0 / 3 + 1.0) / 2, r[$"mrr@{k}"], 12);
            Assert.Equal((0.5 + 1.0) / 2, r[$"ndcg@{k}"], 12);
        }
    }

    [Fact]
    public void BatchRanksValidateTargetsAndExclusions()
    {
        using var scores = Tensor.From([0f, 1f, 2f, 3f, 0f, 3f, 2f, 1f], 2, 4);
        Assert.Equal([3, 1], RankingMetrics.Ranks(scores, [1L, 1L]));
        Assert.Equal([1, 1], RankingMetrics.Ranks(scores, [1L, 1L], [[2, 3], []]));
        Assert.Throws<ArgumentOutOfRangeException>(() => RankingMetrics.Ranks(scores, [0L, 1L]));
        Assert.Throws<ArgumentException>(() => RankingMetrics.Ranks(scores, [1L]));
        Assert.Throws<ArgumentException>(() => RankingMetrics.Ranks(scores, [1L, 1L], [[2]]));
    }

    /// <summary>
    /// RecBole's pipeline written out: scores[:, 0] = −∞, top-k indices (distinct scores, so no tie ambiguity), the 0/1
    /// pos_index matrix, then metrics.py's Hit (cumsum &gt; 0), MRR (first hit at idx → 1/(idx+1) from there on) and NDCG
    /// (cumulative DCG over the cumulative IDCG truncated at the number of positives), each averaged over users.
    /// </summary>
    private static Dictionary<string, double> RecBoleTopK(float[][] scores, int[] targets, int[] ks)
    {
        int maxK = ks.Max();
        int users = scores.Length;
        var hit = new double[maxK];
        var mrr = new double[maxK];
        var ndcg = new double[maxK];
        for (int u = 0; u < users; u++)
        {
            var s = (float[])scores[u].Clone();
            s[0] = float.NegativeInfinity;
            var top = Enumerable.Range(0, s.Length).OrderByDescending(i => s[i]).Take(maxK).ToArray();
            var pos = top.Select(i => i == targets[u] ? 1 : 0).ToArray();
            int cum = 0;
            int first = Array.IndexOf(pos, 1);
            double dcg = 0;
            for (int i = 0; i < maxK; i++)
            {
                cum += pos[i];
                hit[i] += cum > 0 ? 1 : 0;
                mrr[i] += first >= 0 && i >= first ? 1.0 / (first + 1) : 0;
                dcg += pos[i] / Math.Log2(i + 2);
                double idcg = 1.0 / Math.Log2(2);          // one positive: IDCG stops growing after rank 1
                ndcg[i] += dcg / idcg;
            }
        }
        var r = new Dictionary<string, double>();
        foreach (var k in ks)
        {
            r[$"hit@{k}"] = hit[k - 1] / users;
            r[$"ndcg@{k}"] = ndcg[k - 1] / users;
            r[$"mrr@{k}"] = mrr[k - 1] / users;
        }
        return r;
    }

    [Fact]
    public void AgreesWithRecBolesTopKFormulationOnRandomScores()
    {
        var rng = new Random(17);
        const int users = 200, items = 60;
        var rows = Enumerable.Range(0, users).Select(_ => Enumerable.Range(0, items).Select(_ => (float)rng.NextDouble()).ToArray()).ToArray();
        // Targets biased toward high scores so every cutoff sees hits and misses.
        var targets = rows.Select(r => Enumerable.Range(1, items - 1).OrderByDescending(i => r[i]).ElementAt(rng.Next(0, 30))).ToArray();
        int[] ks = [1, 5, 10, 20];
        var expected = RecBoleTopK(rows, targets, ks);
        var acc = new RankingAccumulator(ks);
        using var t = Tensor.From(rows.SelectMany(r => r).ToArray(), users, items);
        acc.Add(t, targets.Select(x => (long)x).ToArray());
        var actual = acc.Result();
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, v) in expected) Assert.Equal(v, actual[name], 12);
    }
}
