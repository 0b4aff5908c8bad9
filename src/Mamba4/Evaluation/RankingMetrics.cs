using System.Globalization;
using Mamba4.Tensors;

namespace Mamba4.Evaluation;

/// <summary>
/// Full-ranking evaluation with one ground-truth item per user (leave-one-out), RecBole's metrics and names.
/// <para>
/// Rank: over all items except the padding item 0, the ground truth t gets
/// <c>rank = 1 + #{ j ≥ 1, j ≠ t, j not excluded : not (s_j &lt; s_t) }</c> — ties count against it (pessimistic), as
/// does a NaN score anywhere in the comparison. RecBole sets item 0's score to −∞ and takes torch.topk, whose order
/// among tied scores is unspecified; counting ties pessimistically makes the result deterministic and never flatters.
/// </para>
/// <para>
/// With a single relevant item RecBole's definitions (recbole/evaluator/metrics.py) reduce to
/// <c>hit@K = [rank ≤ K]</c>, <c>mrr@K = [rank ≤ K] / rank</c>, <c>ndcg@K = [rank ≤ K] / log₂(rank + 1)</c>
/// (its IDCG is 1/log₂2 = 1), each averaged over the evaluated users. K may exceed the number of items: the rank
/// is at most n_items − 1, so such a K counts every user as a hit (RecBole's topk would fail there).
/// </para>
/// <para>
/// History: RecBole's FullSortEvalDataLoader passes no history index for sequential models, so the user's past
/// items stay in the ranking (only item 0 is masked); that is the default here. Optionally the caller may exclude
/// items (e.g. the user's history, as RecBole does for general recommenders); the ground truth is never excluded.
/// </para>
/// </summary>
public static class RankingMetrics
{
    /// <summary>RecBole's topk: [5, 10, 20] in the Mamba4Rec setup.</summary>
    public static readonly IReadOnlyList<int> DefaultKs = [5, 10, 20];

    /// <summary>Pessimistic 1-based rank of <paramref name="target"/> among items 1..n−1 of one score row.</summary>
    public static int Rank(ReadOnlySpan<float> scores, int target, ReadOnlySpan<int> excluded = default)
    {
        if (target < 1 || target >= scores.Length)
            throw new ArgumentOutOfRangeException(nameof(target), $"ground-truth item {target} is outside [1, {scores.Length}) (item 0 is padding)");
        float st = scores[target];
        int above = 0;
        for (int j = 1; j < scores.Length; j++)
            if (j != target && !(scores[j] < st)) above++;
        // Excluded items are taken back out (each once, never the target, only those counted above).
        if (!excluded.IsEmpty)
        {
            var seen = new HashSet<int>();
            foreach (var j in excluded)
                if (j >= 1 && j < scores.Length && j != target && seen.Add(j) && !(scores[j] < st)) above--;
        }
        return above + 1;
    }

    /// <summary>Ranks for a batch: scores [b, n_items] (F32, any device), one target per row, optional exclusions per row.</summary>
    public static int[] Ranks(Tensor scores, ReadOnlySpan<long> targets, IReadOnlyList<int[]>? excluded = null)
    {
        if (scores.Rank != 2) throw new ArgumentException($"ranking: scores must be [batch, n_items], got {scores.Shape}");
        int b = scores.Shape[0], n = scores.Shape[1];
        if (targets.Length != b) throw new ArgumentException($"ranking: {targets.Length} targets for {b} score rows");
        if (excluded is not null && excluded.Count != b) throw new ArgumentException($"ranking: {excluded.Count} exclusion lists for {b} score rows");
        float[]? host = null;
        Span<float> all;
        if (scores.Device.IsCpu && scores.DType == DType.F32) all = scores.AsSpan<float>();
        else all = host = scores.ToFloatArray();
        var ranks = new int[b];
        for (int i = 0; i < b; i++)
        {
            long t = targets[i];
            if (t < 1 || t >= n) throw new ArgumentOutOfRangeException(nameof(targets), $"ranking: target {t} of row {i} is outside [1, {n})");
            ranks[i] = Rank(all.Slice(i * n, n), (int)t, excluded is null ? default : excluded[i]);
        }
        GC.KeepAlive(host);
        return ranks;
    }

    public static double Hit(int rank, int k) => rank <= k ? 1.0 : 0.0;
    public static double Mrr(int rank, int k) => rank <= k ? 1.0 / rank : 0.0;
    public static double Ndcg(int rank, int k) => rank <= k ? 1.0 / Math.Log2(rank + 1) : 0.0;

    /// <summary>"hit@10" etc.</summary>
    public static string Name(string family, int k) => string.Create(CultureInfo.InvariantCulture, $"{family}@{k}");
}

/// <summary>Accumulates ranks and reports the averaged metrics under RecBole's names ("hit@10", "ndcg@10", "mrr@10").</summary>
public sealed class RankingAccumulator
{
    private readonly int[] _ks;
    private readonly double[] _hit, _ndcg, _mrr;

    public RankingAccumulator(IReadOnlyList<int>? ks = null)
    {
        _ks = (ks ?? RankingMetrics.DefaultKs).ToArray();
        if (_ks.Length == 0 || _ks.Any(k => k < 1)) throw new ArgumentException($"cutoffs must be positive, got [{string.Join(", ", _ks)}]");
        _hit = new double[_ks.Length];
        _ndcg = new double[_ks.Length];
        _mrr = new double[_ks.Length];
    }

    public int Count { get; private set; }

    public void Add(int rank)
    {
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank), rank, "ranks start at 1");
        for (int i = 0; i < _ks.Length; i++)
        {
            _hit[i] += RankingMetrics.Hit(rank, _ks[i]);
            _ndcg[i] += RankingMetrics.Ndcg(rank, _ks[i]);
            _mrr[i] += RankingMetrics.Mrr(rank, _ks[i]);
        }
        Count++;
    }

    public void AddRange(IEnumerable<int> ranks)
    {
        foreach (var r in ranks) Add(r);
    }

    /// <summary>The metrics (see <see cref="Result"/>) of a set of ranks.</summary>
    public static IReadOnlyDictionary<string, double> Of(IEnumerable<int> ranks, IReadOnlyList<int>? ks = null)
    {
        var acc = new RankingAccumulator(ks);
        acc.AddRange(ranks);
        return acc.Result();
    }

    /// <summary>Ranks a batch of scores and adds them (see <see cref="RankingMetrics.Ranks"/>).</summary>
    public void Add(Tensor scores, ReadOnlySpan<long> targets, IReadOnlyList<int[]>? excluded = null) =>
        AddRange(RankingMetrics.Ranks(scores, targets, excluded));

    /// <summary>Means over the users added so far, keyed "hit@K", "ndcg@K", "mrr@K" for every K (in that order).</summary>
    public IReadOnlyDictionary<string, double> Result()
    {
        if (Count == 0) throw new InvalidOperationException("no users were ranked");
        var r = new Dictionary<string, double>();
        for (int i = 0; i < _ks.Length; i++)
        {
            r[RankingMetrics.Name("hit", _ks[i])] = _hit[i] / Count;
            r[RankingMetrics.Name("ndcg", _ks[i])] = _ndcg[i] / Count;
            r[RankingMetrics.Name("mrr", _ks[i])] = _mrr[i] / Count;
        }
        return r;
    }
}
