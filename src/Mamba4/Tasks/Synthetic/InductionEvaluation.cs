using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Tasks.Synthetic;

/// <summary>
/// Induction-heads accuracy at any test length (the Mamba paper tests 2^6 … 2^20 after training at 2^8), on held-out
/// sequences fixed by (seed, length, index). A Mamba reads them through its chunked scan — the forward over 2,048 tokens
/// at a time, each chunk continuing from the conv window and SSM state the previous one left — so a million-token sequence
/// costs memory independent of its length; a Transformer (whose cost grows with L²) runs the full forward.
/// </summary>
public static class InductionEvaluation
{
    /// <summary>2^6 … 2^20, the paper's test lengths.</summary>
    public static readonly long[] PaperLengths = Enumerable.Range(6, 15).Select(k => 1L << k).ToArray();

    /// <summary>
    /// Held-out sequences per length: 400 while that costs at most 2^22 tokens (up to 2^13), so that at an observed
    /// 100 % the 95 % Wilson interval is [99.05 %, 100 %] (±1 %); beyond, 2^22 tokens per length (256 at 2^14 … 4 at
    /// 2^20), which keeps each length to the same cost on two shared CPU cores; on a GPU (<paramref name="gpu"/>) 400 at
    /// every length (the chunked scan reads 400 sequences of 2^20 tokens in about 11 s on an H100). `mamba4 eval --samples`
    /// asks for more.
    /// </summary>
    public static int SamplesFor(long length, bool gpu = false) => gpu ? 400 : (int)Math.Clamp((1L << 22) / length, 4, 400);

    /// <summary>Whether <paramref name="model"/>'s weights are on a GPU (where every length gets 400 sequences).</summary>
    public static bool OnGpu(ICausalLanguageModel model) => model.AsModule.Parameters().FirstOrDefault() is { Device.IsCpu: false };

    /// <summary>Sequence <paramref name="index"/> of the held-out set at <paramref name="length"/> (a stream training never uses).</summary>
    public static InductionSequence HeldOut(InductionHeads task, long seed, long length, int index, InductionTrigger placement = InductionTrigger.Uniform) =>
        task.Sequence(SplitMixRandom.ForStep(seed, index, stream: 10_000_000 + length), length, placement);

    /// <summary>The 95 % Wilson score interval of <paramref name="correct"/> out of <paramref name="n"/>.</summary>
    public static (double Low, double High) Wilson(long correct, long n, double z = 1.959964)
    {
        double p = correct / (double)n, z2 = z * z / n;
        double centre = (p + z2 / 2) / (1 + z2), half = z / (1 + z2) * Math.Sqrt(p * (1 - p) / n + z2 / (4 * n));
        return (Math.Max(0, centre - half), Math.Min(1, centre + half));
    }

    /// <summary>Fraction of the first <paramref name="samples"/> held-out sequences whose key is the arg-max at the last position.</summary>
    public static double Accuracy(ICausalLanguageModel model, InductionHeads task, long seed, long length, int samples, InductionTrigger placement = InductionTrigger.Uniform) =>
        Correct(model, task, seed, length, samples, placement) / (double)samples;

    /// <summary>How many of the first <paramref name="samples"/> held-out sequences have their key as the arg-max at the last position.</summary>
    public static int Correct(ICausalLanguageModel model, InductionHeads task, long seed, long length, int samples, InductionTrigger placement = InductionTrigger.Uniform)
    {
        var sequences = Enumerable.Range(0, samples).Select(i => HeldOut(task, seed, length, i, placement)).ToArray();
        var logits = model is MambaLM mamba ? LastLogitsChunked(mamba, sequences) : LastLogitsFull(model, sequences);
        int v = model.VocabSize, correct = 0;
        for (int s = 0; s < samples; s++)
            correct += Inference.Generator.ArgMax(logits.AsSpan(s * v, v)) == sequences[s].Key ? 1 : 0;
        return correct;
    }

    /// <summary>The most held-out sequences one length may take (--samples): they are evaluated side by side.</summary>
    public const int MaxSamples = 65_536;

    /// <summary>The longest sequence the model is evaluated on: a GPT's positions; the recurrent models have no limit.</summary>
    public static long MaxLength(ICausalLanguageModel model) => model is GptLM g ? g.Config.MaxPositions : long.MaxValue;

    /// <summary>
    /// Accuracy at each length in turn, up to the model's <see cref="MaxLength"/>; a model below twice chance beyond
    /// the training length is not run further (the longer lengths cost more and cannot do better).
    /// </summary>
    public static IEnumerable<LengthAccuracy> ByLength(ICausalLanguageModel model, InductionHeads task, long seed, IEnumerable<long> lengths, int samples,
        InductionTrigger placement = InductionTrigger.Uniform)
    {
        foreach (long length in lengths)
        {
            if (length > MaxLength(model)) yield break;
            var row = LengthAccuracy.Measure(model, task, seed, length, samples, placement);
            yield return row;
            if (length > task.Length && row.Accuracy < 2.0 / task.Vocab) yield break;
        }
    }

    /// <summary>Tokens per chunk of the chunked evaluation (fixed, so a sequence's result does not depend on how many are evaluated).</summary>
    public const int ChunkLength = 2048;

    /// <summary>
    /// Logits at the last position, (n, vocab), of sequences of one length read <paramref name="chunk"/> tokens at a time by
    /// <see cref="MambaLM.Forward"/> with a continuing state (<see cref="Inference.MambaLayerState.ForwardContinues"/>): equal
    /// to the full forward (and to <see cref="LastLogitsRecurrent"/>) at a memory of (sequences at once) × chunk tokens.
    /// Sequences go side by side in groups of 2^15 / chunk on the CPU, 2^19 / chunk on a GPU.
    /// </summary>
    public static float[] LastLogitsChunked(MambaLM model, IReadOnlyList<InductionSequence> sequences, int chunk = ChunkLength)
    {
        long length = SameLength(sequences);
        int v = model.Config.VocabSize, group = Math.Max(1, (model.LmHead.Device.IsCpu ? 1 << 15 : 1 << 19) / chunk);
        bool training = model.Training;
        model.Eval();
        using var _ = GradMode.NoGrad();
        try
        {
            var last = new float[sequences.Count * v];
            for (int first = 0; first < sequences.Count; first += group)
            {
                int n = Math.Min(group, sequences.Count - first);
                using var state = model.NewState(n);
                foreach (var layer in state.Layers) layer.ForwardContinues = true;
                for (long start = 0; start < length; start += chunk)
                {
                    int width = (int)Math.Min(chunk, length - start);
                    var ids = new long[n * width];
                    for (int s = 0; s < n; s++) sequences[first + s].Read(ids.AsSpan(s * width, width));
                    using var scope = new TensorScope();
                    state.Position = 0;
                    var hidden = model.Hidden(Tensor.From(ids, n, width), state);
                    if (start + width < length) continue;
                    // the head on each sequence's last position only
                    F.Linear(F.LastPosition(hidden), model.LmHead).ToFloatArray().CopyTo(last.AsSpan(first * v, n * v));
                }
            }
            return last;
        }
        finally { if (training) model.Train(); }
    }

    /// <summary>
    /// Logits at the last position, (n, vocab), of sequences of one length fed one token per step through
    /// <see cref="MambaLM.Step(Tensor, Inference.MambaState)"/> (conv and SSM state carried; memory O(n), not O(n·L)).
    /// </summary>
    public static float[] LastLogitsRecurrent(MambaLM model, IReadOnlyList<InductionSequence> sequences, int chunk = 256)
    {
        int n = sequences.Count;
        long length = SameLength(sequences);
        bool training = model.Training;
        model.Eval();
        try { return LastLogitsRecurrentEval(model, sequences, n, length, chunk); }
        finally { if (training) model.Train(); }
    }

    private static float[] LastLogitsRecurrentEval(MambaLM model, IReadOnlyList<InductionSequence> sequences, int n, long length, int chunk)
    {
        using var _ = GradMode.NoGrad();
        using var state = model.NewState(n);
        var tokens = new long[n * chunk];
        var column = new long[n];
        float[] last = [];
        for (long start = 0; start < length; start += chunk)
        {
            int width = (int)Math.Min(chunk, length - start);
            for (int s = 0; s < n; s++) sequences[s].Read(tokens.AsSpan(s * width, width));
            for (int j = 0; j < width; j++)
            {
                for (int s = 0; s < n; s++) column[s] = tokens[s * width + j];
                using var scope = new TensorScope();
                var logits = model.Step(Tensor.From(column, n), state);
                if (start + j == length - 1) last = logits.ToFloatArray();
            }
        }
        return last;
    }

    /// <summary>Logits at the last position, (n, vocab), from the model's full forward (batched to ~16k tokens).</summary>
    public static float[] LastLogitsFull(ICausalLanguageModel model, IReadOnlyList<InductionSequence> sequences)
    {
        int n = sequences.Count, v = model.VocabSize;
        int length = checked((int)SameLength(sequences));
        bool training = model.AsModule.Training;
        model.AsModule.Eval();
        try { return LastLogitsFullEval(model, sequences, n, v, length); }
        finally { if (training) model.AsModule.Train(); }
    }

    private static float[] LastLogitsFullEval(ICausalLanguageModel model, IReadOnlyList<InductionSequence> sequences, int n, int v, int length)
    {
        using var _ = GradMode.NoGrad();
        var last = new float[n * v];
        int batch = Math.Max(1, 16384 / length);
        for (int first = 0; first < n; first += batch)
        {
            int count = Math.Min(batch, n - first);
            var ids = new long[count * length];
            for (int s = 0; s < count; s++) sequences[first + s].Read(ids.AsSpan(s * length, length));
            using var scope = new TensorScope();
            var logits = model.Logits(Tensor.From(ids, count, length)).ToFloatArray();
            for (int s = 0; s < count; s++)
                logits.AsSpan(((s + 1) * length - 1) * v, v).CopyTo(last.AsSpan((first + s) * v, v));
        }
        return last;
    }

    private static long SameLength(IReadOnlyList<InductionSequence> sequences)
    {
        if (sequences.Count == 0) throw new ArgumentException("no sequences to evaluate");
        long length = sequences[0].Length;
        if (sequences.Any(s => s.Length != length || s.Position != 0))
            throw new ArgumentException("the sequences evaluated together must have one length and be unread");
        return length;
    }
}

/// <summary>One row of the length table: accuracy on <see cref="Samples"/> held-out sequences, its 95 % Wilson interval and the time it took.</summary>
public sealed record LengthAccuracy(long Length, double Accuracy, int Samples, double Low, double High, double Seconds)
{
    /// <param name="samples">Sequences; 0 = <see cref="InductionEvaluation.SamplesFor"/>.</param>
    public static LengthAccuracy Measure(ICausalLanguageModel model, InductionHeads task, long seed, long length, int samples = 0,
        InductionTrigger placement = InductionTrigger.Uniform)
    {
        if (samples <= 0) samples = InductionEvaluation.SamplesFor(length, InductionEvaluation.OnGpu(model));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int correct = InductionEvaluation.Correct(model, task, seed, length, samples, placement);
        var (low, high) = InductionEvaluation.Wilson(correct, samples);
        return new LengthAccuracy(length, correct / (double)samples, samples, low, high, clock.Elapsed.TotalSeconds);
    }

    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{Accuracy:P2} of {Samples} sequences (95% interval {Low:P1}–{High:P1}), {Seconds:F1} s");
}
