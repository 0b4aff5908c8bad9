using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

/// <summary>
/// Induction heads (Olsson et al.; Mamba paper §4.1): a random token sequence contains a special token
/// followed by a key; the sequence ends with the special token again and the model must output the key
/// (recall by association). Tokens 0..vocab−1 are ordinary, <c>vocab</c> is the special token.
/// </summary>
public sealed class InductionHeads(int length = 64, int vocab = 16) : ISequenceTask
{
    private readonly int _length = length >= 4 ? length
        : throw new ArgumentException($"--length: an induction-heads sequence needs at least 4 tokens (special, key, …, special), got {length}");

    public string Name => "induction-heads";
    public int Vocab { get; } = vocab;
    public int VocabSize => Vocab + 1;
    public int Length => LengthFor(1);
    public int LengthFor(int scale) => _length * scale;

    public (long[] Inputs, long[] Targets) Sample(SplitMixRandom rng, int batch, int scale = 1)
    {
        int t = LengthFor(scale), special = Vocab;
        var inputs = new long[batch * t];
        var targets = new long[batch * t];
        Array.Fill(targets, -100L);
        for (int b = 0; b < batch; b++)
        {
            long row = (long)b * t;
            for (int i = 0; i < t; i++) inputs[row + i] = rng.Next(Vocab);
            int p = rng.Next(t - 3);               // special at p, key at p + 1, both before the final query
            long key = rng.Next(Vocab);
            inputs[row + p] = special;
            inputs[row + p + 1] = key;
            inputs[row + t - 1] = special;
            targets[row + t - 1] = key;
        }
        return (inputs, targets);
    }
}
