using System.Globalization;
using Mamba4.Autograd;
using Mamba4.Data.Recommendation;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Tasks.Recommendation;

/// <summary>
/// Scores and top-k after user histories (item ids, oldest first, already cut to the model's max_len), for
/// `mamba4 rec recommend`: one user, or many users in batches. Mamba4Rec walks each history with its recurrent
/// step (O(1) per interaction); the other models run one full forward.
/// </summary>
public static class RecRecommend
{
    /// <summary>
    /// A history given as text (comma-separated, oldest first) → model item ids, cut to the model's max_len most recent:
    /// through the model's token map when it has one (unless <paramref name="ids"/>), else item ids 1..n_items−1.
    /// </summary>
    public static long[] ParseHistory(string text, RecModel model, bool ids)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException("--history must list at least one item, e.g. --history 5,9,2");
        bool tokens = !ids && model.ItemTokens is not null;
        var result = new long[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (tokens)
            {
                result[i] = model.ItemId(parts[i]) ?? throw new ArgumentException($"--history: item '{parts[i]}' is not one of the model's items (pass --ids to give item ids 1..{model.NItems - 1})");
                continue;
            }
            if (!long.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out result[i]) || result[i] < 1 || result[i] >= model.NItems)
                throw new ArgumentException($"--history: '{parts[i]}' is not an item id in 1..{model.NItems - 1} (0 is padding)");
        }
        return result.Length > model.MaxLen ? result[^model.MaxLen..] : result;
    }

    /// <summary>Scores of every item (0..n_items−1) after one history, by one full forward.</summary>
    public static float[] FullScores(RecModel model, long[] history)
    {
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        model.Module.Eval();
        return model.Model.Scores(model.Model.Forward(Tensor.From(history, 1, history.Length), Tensor.From([(long)history.Length], 1))).ToFloatArray();
    }

    /// <summary>Scores after one history; Mamba4Rec through its recurrent step, one interaction at a time.</summary>
    public static float[] RecurrentScores(RecModel model, long[] history)
    {
        if (model.Model is not Mamba4Rec m) return FullScores(model, history);
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        m.Eval();
        using var state = m.NewState(1);
        Tensor h = null!;
        foreach (var item in history) h = m.Step(Tensor.From([item], 1), state);
        return m.Scores(h).ToFloatArray();
    }

    /// <summary>
    /// Scores of every item after each history, as a batch: [histories.Count][n_items]. Mamba4Rec: the histories
    /// side by side in one recurrent state, stepped together; a user's seq_output is taken at its own last item
    /// (shorter histories are fed padding after their end, which only touches their own, no longer read, state
    /// rows). Other models: one right-padded forward. Pass histories of similar lengths together (as
    /// <see cref="Recommend"/> does) to waste few steps.
    /// </summary>
    public static float[][] BatchScores(RecModel model, IReadOnlyList<long[]> histories)
    {
        int b = histories.Count;
        if (b == 0) return [];
        int l = histories.Max(h => h.Length);
        if (histories.Any(h => h.Length == 0)) throw new ArgumentException("every history needs at least one item", nameof(histories));
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        model.Module.Eval();
        Tensor seqOutput;
        if (model.Model is Mamba4Rec m)
        {
            int d = m.Config.HiddenSize;
            var last = new float[b * d];
            using var state = m.NewState(b);
            var items = new long[b];
            for (int t = 0; t < l; t++)
            {
                for (int i = 0; i < b; i++) items[i] = t < histories[i].Length ? histories[i][t] : 0;
                using var stepScope = new TensorScope();
                var h = m.Step(Tensor.From(items, b), state);
                float[]? rows = null;
                for (int i = 0; i < b; i++)
                    if (histories[i].Length == t + 1)
                    {
                        rows ??= h.ToFloatArray();
                        Array.Copy(rows, i * d, last, i * d, d);
                    }
            }
            seqOutput = Tensor.From(last, b, d);
        }
        else
        {
            var seq = new long[b * l];
            var lens = new long[b];
            for (int i = 0; i < b; i++)
            {
                histories[i].CopyTo(seq, i * l);
                lens[i] = histories[i].Length;
            }
            seqOutput = model.Model.Forward(Tensor.From(seq, b, l), Tensor.From(lens, b));
        }
        var scores = model.Model.Scores(seqOutput).ToFloatArray();
        int n = model.NItems;
        return Enumerable.Range(0, b).Select(i => scores.AsSpan(i * n, n).ToArray()).ToArray();
    }

    /// <summary>The k best item ids (never the padding item 0 nor an excluded one), best first; ties by lower id.</summary>
    public static int[] TopK(ReadOnlySpan<float> scores, int k, IReadOnlySet<long>? exclude = null)
    {
        var heap = new PriorityQueue<int, (float Score, int NegId)>();
        for (int i = 1; i < scores.Length; i++)
        {
            if (exclude?.Contains(i) == true) continue;
            var key = (scores[i], -i);
            if (heap.Count < k) heap.Enqueue(i, key);
            else if (heap.TryPeek(out _, out var min) && key.CompareTo(min) > 0) heap.EnqueueDequeue(i, key);
        }
        var result = new int[heap.Count];
        for (int r = result.Length - 1; heap.TryDequeue(out var id, out _); r--) result[r] = id;
        return result;
    }

    /// <summary>
    /// Top-k for many users: histories grouped by length into batches of <paramref name="batch"/> users
    /// (<see cref="BatchScores"/>), results in the input order as (ids, scores) per user.
    /// </summary>
    public static (int[] Ids, float[] Scores)[] Recommend(RecModel model, IReadOnlyList<long[]> histories, int k, bool excludeHistory, int batch = 512)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), $"top-k must be positive, got {k}");
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), $"batch must be positive, got {batch}");
        var result = new (int[] Ids, float[] Scores)[histories.Count];
        var order = Enumerable.Range(0, histories.Count).OrderBy(i => histories[i].Length).ToArray();
        for (int start = 0; start < order.Length; start += batch)
        {
            var users = order[start..Math.Min(order.Length, start + batch)];
            var scores = BatchScores(model, users.Select(u => histories[u]).ToArray());
            for (int j = 0; j < users.Length; j++)
            {
                var ids = TopK(scores[j], k, excludeHistory ? histories[users[j]].ToHashSet() : null);
                result[users[j]] = (ids, ids.Select(i => scores[j][i]).ToArray());
            }
        }
        return result;
    }

    /// <summary>
    /// User histories for batch recommendation: one line per user, <c>user item item ...</c> oldest first (the `seq`
    /// format), items as the model's original item tokens, or item ids 1..n_items−1 with <paramref name="ids"/> (or
    /// when the model has no token map). Each line is one request, cut to the model's max_len most recent items.
    /// Item tokens the model does not know (new items, items the k-core filter removed) are dropped and counted in
    /// <paramref name="unknownItems"/>, as `--user` and `eval` do. A malformed line, an id outside 1..n_items−1, or a
    /// line with no known item → <see cref="RecDataFormatException"/> with file:line,
    /// or, with <paramref name="skipBadLines"/>, the line is skipped, counted in <paramref name="badLines"/> and (the first
    /// ten) described in <paramref name="badMessages"/>.
    /// </summary>
    public static List<(string User, long[] History)> ReadHistories(string path, RecModel model, bool ids, bool skipBadLines, out int badLines, out List<string> badMessages, out int unknownItems)
    {
        var options = new RecReadOptions { SkipBadLines = skipBadLines };
        var log = InteractionReader.Read(path, RecFormat.Seq, options);
        badLines = log.BadLines;
        unknownItems = 0;
        badMessages = [.. log.BadLineMessages];
        bool tokens = !ids && model.ItemTokens is not null;
        var result = new List<(string User, long[] History)>();
        for (int start = 0, end; start < log.Count; start = end)
        {
            int line = log.Lines[start];
            for (end = start; end < log.Count && log.Lines[end] == line; end++) { }
            var history = new List<long>(end - start);
            string? error = null;
            int unknown = 0;
            for (int j = start; j < end && error is null; j++)
            {
                var item = log.ItemTokens[log.Items[j]];
                if (tokens)
                {
                    if (model.ItemId(item) is int id) history.Add(id);
                    else unknown++;
                }
                else if (long.TryParse(item, NumberStyles.Integer, CultureInfo.InvariantCulture, out var id) && id >= 1 && id < model.NItems) history.Add(id);
                else error = $"'{item}' is not an item id in 1..{model.NItems - 1} (0 is padding)";
            }
            if (error is null && history.Count == 0) error = $"none of the {unknown} item(s) of user '{log.UserTokens[log.Users[start]]}' is known to the model";
            unknownItems += error is null ? unknown : 0;
            if (error is not null)
            {
                if (!skipBadLines) throw new RecDataFormatException(path, line, error);
                if (badLines++ < options.MaxReportedBadLines) badMessages.Add($"{path}:{line}: {error}");
                continue;
            }
            result.Add((log.UserTokens[log.Users[start]], history.GetRange(Math.Max(0, history.Count - model.MaxLen), Math.Min(history.Count, model.MaxLen)).ToArray()));
        }
        return result;
    }
}
