using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Training;
using Mamba4.Ops;

namespace Mamba4.Tasks.LanguageModeling;

/// <summary>
/// A tokenized corpus split into training (the first <c>trainFraction</c>) and validation (the rest).
/// Training batches are random windows drawn from (seed, step), so a run is reproducible and resumable;
/// validation walks fixed consecutive windows.
/// </summary>
public sealed class TokenStream
{
    public TokenStream(int[] ids, double trainFraction = 0.9)
    {
        if (ids.Length < 4) throw new ArgumentException($"the corpus has only {ids.Length} tokens");
        if (trainFraction is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(trainFraction), "the training fraction must be in (0, 1)");
        int cut = (int)(ids.Length * trainFraction);
        Train = ids[..cut];
        Validation = ids[cut..];
    }

    private TokenStream(int[] train, int[] validation) => (Train, Validation) = (train, validation);

    /// <summary>A stream whose validation split is the whole of <paramref name="ids"/> (for evaluating a trained model).</summary>
    public static TokenStream ForEvaluation(int[] ids) => new([], ids);

    public int[] Train { get; }
    public int[] Validation { get; }

    /// <summary>Inputs and next-token targets, [batch, length] each, from random training windows.</summary>
    public (long[] Inputs, long[] Targets) Batch(long seed, long step, int batch, int length)
    {
        if (Train.Length <= length + 1) throw new ArgumentException($"the training split ({Train.Length} tokens) is shorter than one window of {length + 1}");
        var rng = SplitMixRandom.ForStep(seed, step);
        var x = new long[batch * length];
        var y = new long[batch * length];
        for (int b = 0; b < batch; b++)
        {
            int start = (int)(rng.NextDouble() * (Train.Length - length - 1));
            for (int t = 0; t < length; t++)
            {
                x[b * length + t] = Train[start + t];
                y[b * length + t] = Train[start + t + 1];
            }
        }
        return (x, y);
    }

    /// <summary>Mean next-token cross-entropy (nats/token) over up to <paramref name="maxWindows"/> consecutive validation windows.</summary>
    public double ValidationLoss(ICausalLanguageModel model, int length, int batch = 8, int maxWindows = 64)
    {
        if (length < 1) throw new ArgumentException($"--seq-len must be positive, got {length}");
        var m = model.AsModule;
        m.Eval();
        using var _ = GradMode.NoGrad();
        int windows = Math.Min(maxWindows, (Validation.Length - 1) / length);
        if (windows == 0) throw new ArgumentException($"the validation split ({Validation.Length} tokens) is shorter than one window of {length + 1}");
        double total = 0;
        long count = 0;
        for (int w0 = 0; w0 < windows; w0 += batch)
        {
            int n = Math.Min(batch, windows - w0);
            var x = new long[n * length];
            var y = new long[n * length];
            for (int b = 0; b < n; b++)
                for (int t = 0; t < length; t++)
                {
                    x[b * length + t] = Validation[(w0 + b) * length + t];
                    y[b * length + t] = Validation[(w0 + b) * length + t + 1];
                }
            using var scope = new TensorScope();
            var loss = model.CrossEntropy(Tensor.From(x, n, length), Tensor.From(y, n, length)).Item();
            total += loss * n * length;
            count += n * length;
        }
        m.Train();
        return total / count;
    }
}
