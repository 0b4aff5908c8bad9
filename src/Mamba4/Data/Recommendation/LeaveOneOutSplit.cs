namespace Mamba4.Data.Recommendation;

/// <summary>
/// One next-item sample: predict <c>Sequences[User][End]</c> from the items before it (the most recent
/// max_len of them when the history is longer).
/// </summary>
public readonly record struct SeqSample(int User, int End);

/// <summary>
/// One causal window for the "all positions" objective: inputs <c>seq[Start .. Start+Length)</c>, and at input
/// position t the target <c>seq[Start + t + 1]</c>.
/// </summary>
public readonly record struct SeqWindow(int User, int Start, int Length);

/// <summary>
/// RecBole's leave-one-out protocol for sequential models (eval_args split LS "valid_and_test", order TO).
/// Each user's sequence of n items yields n − 1 samples (every item after the first is a target — RecBole's
/// data_augmentation); the last sample is the test sample, the one before it the validation sample, the rest
/// train. As RecBole's _split_index_by_leave_one_out, at least one sample stays in training: a user with 2 samples
/// has no validation sample, a user with 1 sample only trains, a user with one item has no sample at all.
/// </summary>
public sealed class LeaveOneOutSplit
{
    private readonly int[] _trainLength;

    private LeaveOneOutSplit(SequenceDataset data, SeqSample[] train, SeqSample[] valid, SeqSample[] test, int[] trainLength)
    {
        Data = data;
        Train = train;
        Valid = valid;
        Test = test;
        _trainLength = trainLength;
    }

    public SequenceDataset Data { get; }
    /// <summary>Every training prefix sample, users in id order, each user's samples in time order.</summary>
    public SeqSample[] Train { get; }
    /// <summary>One sample per user (the second-to-last item), where the user has one.</summary>
    public SeqSample[] Valid { get; }
    /// <summary>One sample per user (the last item), where the user has one.</summary>
    public SeqSample[] Test { get; }

    /// <summary>Items of the user's training part: positions 0 .. TrainLength−1 (the last of them the last training target).</summary>
    public int TrainLength(int user) => _trainLength[user];

    public static LeaveOneOutSplit Create(SequenceDataset data)
    {
        var train = new List<SeqSample>();
        var valid = new List<SeqSample>();
        var test = new List<SeqSample>();
        var trainLength = new int[data.UserCount];
        for (int u = 0; u < data.UserCount; u++)
        {
            int n = data.Sequences[u].Length;
            int samples = Math.Max(0, n - 1);
            int heldOut = Math.Max(0, Math.Min(2, samples - 1));
            int lastTrain = n - 1 - heldOut;                  // the last training target's position
            for (int e = 1; e <= lastTrain; e++) train.Add(new SeqSample(u, e));
            if (heldOut == 2) valid.Add(new SeqSample(u, n - 2));
            if (heldOut >= 1) test.Add(new SeqSample(u, n - 1));
            trainLength[u] = samples == 0 ? 0 : lastTrain + 1;
        }
        return new LeaveOneOutSplit(data, train.ToArray(), valid.ToArray(), test.ToArray(), trainLength);
    }

    /// <summary>The items before a sample's target (its full history, untruncated).</summary>
    public ReadOnlySpan<int> History(SeqSample sample) => Data.Sequences[sample.User].AsSpan(0, sample.End);

    /// <summary>
    /// Windows covering every training target exactly once for the "all positions" objective. A user whose training
    /// part has at most max_len + 1 items gets one window (inputs = all but its last item), and then every target sees
    /// exactly the history the prefix sample would. Longer training parts are cut into windows of max_len inputs from
    /// the most recent backwards (the oldest window may be shorter); a target early in a later window then sees fewer
    /// than max_len items of history, where the prefix sample would see max_len.
    /// </summary>
    public SeqWindow[] TrainWindows(int maxLen)
    {
        if (maxLen < 1) throw new ArgumentOutOfRangeException(nameof(maxLen), maxLen, "max_len must be at least 1");
        var windows = new List<SeqWindow>();
        for (int u = 0; u < Data.UserCount; u++)
        {
            int inputs = _trainLength[u] - 1;                // positions 0 .. inputs−1 feed targets 1 .. inputs
            if (inputs < 1) continue;
            int end = inputs;
            var mine = new List<SeqWindow>();
            while (end > 0)
            {
                int start = Math.Max(0, end - maxLen);
                mine.Add(new SeqWindow(u, start, end - start));
                end = start;
            }
            mine.Reverse();
            windows.AddRange(mine);
        }
        return windows.ToArray();
    }
}
