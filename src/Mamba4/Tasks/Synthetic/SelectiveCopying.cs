using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

/// <summary>
/// Selective copying (Mamba paper, §4.1): a region of <c>regionLength</c> positions holds
/// <c>dataTokens</c> data tokens at random positions among noise tokens; then come as many marker
/// tokens, at which the model must output the data tokens in order. Solving it needs content-aware
/// selection (which inputs to keep), which a time-invariant model cannot do.
/// Vocabulary: 0 = noise, 1..dataVocab = data, dataVocab + 1 = marker.
/// </summary>
public sealed class SelectiveCopying(int regionLength = 64, int dataTokens = 8, int dataVocab = 8) : ISequenceTask
{
    public string Name => "selective-copying";
    public int RegionLength { get; } = regionLength >= dataTokens ? regionLength
        : throw new ArgumentException($"--length: the selective-copying region must hold its {dataTokens} data tokens, got {regionLength}");
    public int DataTokens { get; } = dataTokens;
    public int DataVocab { get; } = dataVocab;
    public int VocabSize => DataVocab + 2;
    public int Length => LengthFor(1);
    public int LengthFor(int scale) => RegionLength * scale + DataTokens;

    public (long[] Inputs, long[] Targets) Sample(SplitMixRandom rng, int batch, int scale = 1)
    {
        int region = RegionLength * scale, t = LengthFor(scale), marker = DataVocab + 1;
        var inputs = new long[batch * t];
        var targets = new long[batch * t];
        Array.Fill(targets, -100L);
        var positions = new int[region];
        for (int b = 0; b < batch; b++)
        {
            long row = (long)b * t;
            for (int i = 0; i < region; i++) positions[i] = i;
            // Choose K distinct positions (partial Fisher–Yates), then keep them in order.
            for (int i = 0; i < DataTokens; i++)
            {
                int j = i + rng.Next(region - i);
                (positions[i], positions[j]) = (positions[j], positions[i]);
            }
            Array.Sort(positions, 0, DataTokens);
            for (int i = 0; i < DataTokens; i++)
            {
                long token = 1 + rng.Next(DataVocab);
                inputs[row + positions[i]] = token;
                // The output for data token i is read at marker i (whose input is the marker).
                targets[row + region + i] = token;
            }
            for (int i = 0; i < DataTokens; i++) inputs[row + region + i] = marker;
        }
        return (inputs, targets);
    }
}
