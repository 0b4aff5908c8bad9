using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

/// <summary>A synthetic sequence task generated on the fly: inputs and targets (−100 where nothing is scored).</summary>
public interface ISequenceTask
{
    string Name { get; }
    int VocabSize { get; }
    /// <summary>Total input length at the task's training size.</summary>
    int Length { get; }
    /// <summary>A batch of [batch, T] inputs and targets, T = <see cref="LengthFor"/>(scale).</summary>
    (long[] Inputs, long[] Targets) Sample(SplitMixRandom rng, int batch, int scale = 1);
    /// <summary>Input length when the content region is <paramref name="scale"/>× the training size.</summary>
    int LengthFor(int scale);
}
