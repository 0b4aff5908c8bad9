using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

/// <summary>
/// Induction heads (Olsson et al.; Mamba paper §4.1 and appendix E.1, as in the H3/safari synthetic tasks): a random
/// sequence over <c>vocab</c> ordinary tokens holds the special (trigger) token once, followed by a key; the sequence
/// ends with the special token again, where the model must output the key. Only that last position is scored.
/// Tokens 0..vocab−1 are ordinary, <c>vocab</c> is the special token. The paper's setting: vocabulary 16, training
/// length 2^8 = 256, test lengths 2^6 … 2^20. <paramref name="trigger"/>: where the training sequences put the first
/// special token (held-out sequences choose their own placement, uniform for the table).
/// </summary>
public sealed class InductionHeads(int length = 256, int vocab = 16, InductionTrigger trigger = InductionTrigger.Uniform) : ISequenceTask
{
    private readonly int _length = length >= 4 ? length
        : throw new ArgumentException($"--length: an induction-heads sequence needs at least 4 tokens (special, key, …, special), got {length}");

    public string Name => "induction-heads";
    public int Vocab { get; } = vocab;
    public int VocabSize => Vocab + 1;
    /// <summary>Placement of the first special token in training sequences.</summary>
    public InductionTrigger Trigger { get; } = trigger;
    public int Length => LengthFor(1);
    public int LengthFor(int scale) => _length * scale;

    public (long[] Inputs, long[] Targets) Sample(SplitMixRandom rng, int batch, int scale = 1)
    {
        int t = LengthFor(scale);
        var inputs = new long[batch * t];
        var targets = new long[batch * t];
        Array.Fill(targets, -100L);
        for (int b = 0; b < batch; b++)
        {
            var sequence = Sequence(rng, t, Trigger);
            sequence.Read(inputs.AsSpan(b * t, t));
            targets[b * t + t - 1] = sequence.Key;
        }
        return (inputs, targets);
    }

    /// <summary>Positions the first special token may take under <see cref="InductionTrigger.Early"/>: the first 16.</summary>
    public const int EarlyPositions = 16;

    /// <summary>
    /// One sequence of <paramref name="length"/> tokens, drawn from <paramref name="rng"/> and read in order. The special
    /// token goes at a position uniform over [0, length − 3) (the query is the last token, the key follows the trigger),
    /// or over the first <see cref="EarlyPositions"/> of them (Early: the key must be held over the whole sequence), or,
    /// Mixed, one of the two with probability ½ each. Uniform and Early draw the same numbers, so the same sequence
    /// index gives the same key and ordinary tokens under both.
    /// </summary>
    public InductionSequence Sequence(SplitMixRandom rng, long length, InductionTrigger placement = InductionTrigger.Uniform)
    {
        if (length < 4) throw new ArgumentException($"an induction-heads sequence needs at least 4 tokens, got {length}");
        bool early = placement == InductionTrigger.Early || (placement == InductionTrigger.Mixed && rng.NextDouble() < 0.5);
        long span = early ? Math.Min(EarlyPositions, length - 3) : length - 3;
        long trigger = (long)(rng.NextDouble() * span);   // special at trigger, key at trigger + 1, both before the final query
        int key = rng.Next(Vocab);
        return new InductionSequence(length, trigger, key, Vocab, new SplitMixRandom(rng.NextUInt64()));
    }
}

/// <summary>Where an induction-heads sequence puts its first special token (see <see cref="InductionHeads.Sequence"/>).</summary>
public enum InductionTrigger { Uniform, Early, Mixed }

/// <summary>The placements' names as options and run.json write them ("uniform", "early", "mixed").</summary>
public static class InductionTriggers
{
    public static string Name(InductionTrigger trigger) => trigger.ToString().ToLowerInvariant();

    public static InductionTrigger Parse(string value) => value switch
    {
        "uniform" => InductionTrigger.Uniform,
        "early" => InductionTrigger.Early,
        "mixed" => InductionTrigger.Mixed,
        _ => throw new ArgumentException($"--trigger must be uniform, early or mixed, got '{value}'"),
    };
}

/// <summary>
/// An induction-heads sequence produced position by position, so that a million-token sequence never exists whole:
/// ordinary tokens from its own random stream, the special token at <see cref="Trigger"/> and at the last position,
/// <see cref="Key"/> right after the trigger.
/// </summary>
public sealed class InductionSequence(long length, long trigger, int key, int vocab, SplitMixRandom noise)
{
    public long Length { get; } = length;
    public long Trigger { get; } = trigger;
    public int Key { get; } = key;
    public int Special => vocab;
    /// <summary>Tokens read so far.</summary>
    public long Position { get; private set; }

    /// <summary>The next <c>destination.Length</c> tokens.</summary>
    public void Read(Span<long> destination)
    {
        if (Position + destination.Length > Length)
            throw new InvalidOperationException($"reading {destination.Length} tokens at position {Position} passes the sequence's end ({Length})");
        for (int i = 0; i < destination.Length; i++, Position++)
        {
            long noiseToken = noise.Next(vocab);   // drawn at every position, so the stream never depends on the chunking
            destination[i] = Position == Trigger || Position == Length - 1 ? Special : Position == Trigger + 1 ? Key : noiseToken;
        }
    }
}
