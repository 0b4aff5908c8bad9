using Mamba4.Tensors;

namespace Mamba4.Data.Recommendation;

/// <summary>
/// A batch in RecBole's field layout: <see cref="ItemSeq"/> [batch, L] I64 (item_id_list, left-aligned, right-padded
/// with 0), <see cref="ItemSeqLen"/> [batch] I64 (item_length), and either <see cref="PosItems"/> [batch] I64 (the next
/// item after the last position; next-item samples) or <see cref="Targets"/> [batch, L] I64 (the next item at every
/// position, −100 at padding; all-positions windows). Tensors belong to the TensorScope open when it was made, if any.
/// </summary>
public sealed class SequenceBatch : IDisposable
{
    internal SequenceBatch(Tensor itemSeq, Tensor itemSeqLen, Tensor? posItems, Tensor? targets, int[] users)
    {
        ItemSeq = itemSeq;
        ItemSeqLen = itemSeqLen;
        PosItems = posItems;
        Targets = targets;
        Users = users;
    }

    public Tensor ItemSeq { get; }
    public Tensor ItemSeqLen { get; }
    public Tensor? PosItems { get; }
    public Tensor? Targets { get; }
    /// <summary>The user of each row.</summary>
    public int[] Users { get; }

    public void Dispose()
    {
        ItemSeq.Dispose();
        ItemSeqLen.Dispose();
        PosItems?.Dispose();
        Targets?.Dispose();
    }
}

/// <summary>Builds <see cref="SequenceBatch"/>es from samples or windows.</summary>
public static class SequenceBatcher
{
    /// <summary>The target value at padded positions of <see cref="SequenceBatch.Targets"/> (CrossEntropy's default ignore index).</summary>
    public const long IgnoreIndex = -100;

    /// <summary>
    /// Next-item samples (RecBole's objective and evaluation): row b holds the most recent max_len items before the
    /// target. L is max_len with <paramref name="padToMaxLen"/> (RecBole's fixed MAX_ITEM_LIST_LENGTH), else the
    /// longest row (causal models give the same outputs either way).
    /// </summary>
    public static SequenceBatch FromSamples(SequenceDataset data, ReadOnlySpan<SeqSample> samples, int maxLen, bool padToMaxLen = false)
    {
        if (maxLen < 1) throw new ArgumentOutOfRangeException(nameof(maxLen), maxLen, "max_len must be at least 1");
        int b = samples.Length;
        if (b == 0) throw new ArgumentException("a batch needs at least one sample", nameof(samples));
        int l = 1;
        for (int i = 0; i < b; i++)
        {
            var s = samples[i];
            if ((uint)s.User >= (uint)data.UserCount || s.End < 1 || s.End >= data.Sequences[s.User].Length)
                throw new ArgumentOutOfRangeException(nameof(samples), $"sample {s} is outside the data (user count {data.UserCount})");
            l = Math.Max(l, Math.Min(maxLen, s.End));
        }
        if (padToMaxLen) l = maxLen;
        var seq = new long[b * l];
        var lens = new long[b];
        var pos = new long[b];
        var users = new int[b];
        for (int i = 0; i < b; i++)
        {
            var s = samples[i];
            var items = data.Sequences[s.User];
            int start = Math.Max(0, s.End - maxLen), len = s.End - start;
            for (int t = 0; t < len; t++) seq[i * l + t] = items[start + t];
            lens[i] = len;
            pos[i] = items[s.End];
            users[i] = s.User;
        }
        return new SequenceBatch(Tensor.From(seq, b, l), Tensor.From(lens, b), Tensor.From(pos, b), null, users);
    }

    /// <summary>All-positions windows: inputs and, at every position, the next item (−100 at padding).</summary>
    public static SequenceBatch FromWindows(SequenceDataset data, ReadOnlySpan<SeqWindow> windows, int maxLen, bool padToMaxLen = false)
    {
        if (maxLen < 1) throw new ArgumentOutOfRangeException(nameof(maxLen), maxLen, "max_len must be at least 1");
        int b = windows.Length;
        if (b == 0) throw new ArgumentException("a batch needs at least one window", nameof(windows));
        int l = 1;
        for (int i = 0; i < b; i++)
        {
            var w = windows[i];
            if ((uint)w.User >= (uint)data.UserCount || w.Start < 0 || w.Length < 1 || w.Length > maxLen
                || w.Start + w.Length >= data.Sequences[w.User].Length)
                throw new ArgumentOutOfRangeException(nameof(windows), $"window {w} is outside the data or longer than max_len {maxLen}");
            l = Math.Max(l, w.Length);
        }
        if (padToMaxLen) l = maxLen;
        var seq = new long[b * l];
        var targets = new long[b * l];
        Array.Fill(targets, IgnoreIndex);
        var lens = new long[b];
        var users = new int[b];
        for (int i = 0; i < b; i++)
        {
            var w = windows[i];
            var items = data.Sequences[w.User];
            for (int t = 0; t < w.Length; t++)
            {
                seq[i * l + t] = items[w.Start + t];
                targets[i * l + t] = items[w.Start + t + 1];
            }
            lens[i] = w.Length;
            users[i] = w.User;
        }
        return new SequenceBatch(Tensor.From(seq, b, l), Tensor.From(lens, b), null, Tensor.From(targets, b, l), users);
    }

    /// <summary>Batches of next-item samples in order, or shuffled by <paramref name="shuffle"/> (a fresh permutation per call).</summary>
    public static IEnumerable<SequenceBatch> Samples(SequenceDataset data, IReadOnlyList<SeqSample> samples, int maxLen, int batchSize,
        Random? shuffle = null, bool padToMaxLen = false)
    {
        foreach (var chunk in Chunks(samples, batchSize, shuffle))
            yield return FromSamples(data, chunk, maxLen, padToMaxLen);
    }

    /// <summary>Batches of all-positions windows in order, or shuffled by <paramref name="shuffle"/>.</summary>
    public static IEnumerable<SequenceBatch> Windows(SequenceDataset data, IReadOnlyList<SeqWindow> windows, int maxLen, int batchSize,
        Random? shuffle = null, bool padToMaxLen = false)
    {
        foreach (var chunk in Chunks(windows, batchSize, shuffle))
            yield return FromWindows(data, chunk, maxLen, padToMaxLen);
    }

    private static IEnumerable<T[]> Chunks<T>(IReadOnlyList<T> all, int batchSize, Random? shuffle)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1");
        var order = Enumerable.Range(0, all.Count).ToArray();
        shuffle?.Shuffle(order);
        for (int s = 0; s < order.Length; s += batchSize)
        {
            var chunk = new T[Math.Min(batchSize, order.Length - s)];
            for (int i = 0; i < chunk.Length; i++) chunk[i] = all[order[s + i]];
            yield return chunk;
        }
    }
}
