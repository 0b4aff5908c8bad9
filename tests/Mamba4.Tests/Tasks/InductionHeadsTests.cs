using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tasks.Synthetic;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Tests;

/// <summary>Induction heads: the streamed sequences, the recurrent evaluation against the full forward, the interval.</summary>
public class InductionHeadsTests
{
    [Fact]
    public void SequenceReadInChunksEqualsOneRead()
    {
        var task = new InductionHeads(length: 20, vocab: 5);
        var whole = new long[1000];
        task.Sequence(SplitMixRandom.ForStep(3, 1), 1000).Read(whole);
        var chunked = new long[1000];
        var s = task.Sequence(SplitMixRandom.ForStep(3, 1), 1000);
        for (int start = 0; start < 1000; start += 37) s.Read(chunked.AsSpan(start, Math.Min(37, 1000 - start)));
        Assert.Equal(whole, chunked);
        // The structure: special (5) exactly at the trigger and the end, the key right after the trigger.
        Assert.Equal(5, whole[^1]);
        Assert.Equal(2, whole.Count(t => t == 5));
        int trigger = Array.IndexOf(whole, 5L);
        Assert.Equal(s.Trigger, trigger);
        Assert.Equal(s.Key, whole[trigger + 1]);
        Assert.All(whole, t => Assert.InRange(t, 0, 5));
        Assert.Throws<InvalidOperationException>(() => s.Read(new long[1]));
    }

    [Fact]
    public void TriggerIsSpreadOverTheWholeSequenceAtAMillionTokens()
    {
        // The trigger is uniform over the sequence, so long test lengths really test long memory.
        var task = new InductionHeads();
        var triggers = Enumerable.Range(0, 400).Select(i => InductionEvaluation.HeldOut(task, 1, 1 << 20, i).Trigger).ToArray();
        Assert.All(triggers, p => Assert.InRange(p, 0, (1 << 20) - 4));
        Assert.InRange(triggers.Count(p => p < 1 << 19), 160, 240);
        Assert.InRange(triggers.Count(p => p < 1 << 16), 10, 45);   // 1/16 of 400 = 25
    }

    [Fact]
    public void EarlyTriggerIsInTheFirstSixteenPositionsWithTheSameKeyAndOrdinaryTokens()
    {
        var task = new InductionHeads();
        const int length = 4096;
        for (int i = 0; i < 200; i++)
        {
            var uniform = InductionEvaluation.HeldOut(task, 1, length, i);
            var early = InductionEvaluation.HeldOut(task, 1, length, i, InductionTrigger.Early);
            Assert.InRange(early.Trigger, 0, InductionHeads.EarlyPositions - 1);
            Assert.Equal(uniform.Key, early.Key);
            var (u, e) = (new long[length], new long[length]);
            uniform.Read(u);
            early.Read(e);
            for (int p = 0; p < length - 1; p++)
                if (p != uniform.Trigger && p != uniform.Trigger + 1 && p != early.Trigger && p != early.Trigger + 1) Assert.Equal(u[p], e[p]);
            Assert.Equal(task.Vocab, e[early.Trigger]);
            Assert.Equal(early.Key, e[early.Trigger + 1]);
        }
        // Short sequences: the early window is cut to the positions a trigger may take (before key and query).
        Assert.All(Enumerable.Range(0, 100), i => Assert.InRange(InductionEvaluation.HeldOut(task, 2, 8, i, InductionTrigger.Early).Trigger, 0, 4));
    }

    [Fact]
    public void TrainingBatchesFollowTheTasksTriggerPlacement()
    {
        int[] Triggers(InductionTrigger placement)
        {
            var task = new InductionHeads(length: 256, trigger: placement);
            var (inputs, _) = task.Sample(SplitMixRandom.ForStep(5, 3), 2000);
            return Enumerable.Range(0, 2000).Select(b => Array.IndexOf(inputs, (long)task.Vocab, b * 256) - b * 256).ToArray();
        }
        var uniform = Triggers(InductionTrigger.Uniform);
        var early = Triggers(InductionTrigger.Early);
        var mixed = Triggers(InductionTrigger.Mixed);
        Assert.All(early, p => Assert.InRange(p, 0, 15));
        Assert.InRange(uniform.Count(p => p < 16), 80, 170);   // 16/253 of 2000 = 126
        Assert.InRange(uniform.Average(), 115, 137);            // mean 126
        // Mixed: half early, half uniform: 1000 + 63 expected in the first 16 positions.
        Assert.InRange(mixed.Count(p => p < 16), 970, 1160);
        Assert.InRange(mixed.Count(p => p >= 128), 440, 560);
    }

    private const int StatePassingBatch = 4;

    /// <summary>A small perturbed induction-heads Mamba and two consecutive training batches of 4 sequences of 12 tokens.</summary>
    private static (InductionHeads Task, MambaLM Model, long[] First, long[] Second) StatePassingSetup()
    {
        var task = new InductionHeads(length: 12, vocab: 5);
        var o = new SyntheticOptions { Task = "induction-heads", DModel = 16, Layers = 2, DState = 4 };
        var model = new MambaLM(SyntheticTraining.ModelConfig(o, task), seed: 3);
        PerturbWeights(model);
        return (task, model, task.Sample(SplitMixRandom.ForStep(1, 0), StatePassingBatch).Inputs, task.Sample(SplitMixRandom.ForStep(1, 1), StatePassingBatch).Inputs);
    }

    /// <summary>
    /// State passing: a continuing row's logits equal the recurrent step run over the previous batch's row and then this
    /// one (the forward's conv window and h0 against MambaLM.Step, an independent path); the other rows equal a forward
    /// from zero.
    /// </summary>
    [Fact]
    public void StatePassingContinuesTheFirstRowsFromThePreviousBatchesStates()
    {
        var (task, model, first, second) = StatePassingSetup();
        using var _model = model;
        const int batch = StatePassingBatch, t = 12;
        using var passing = new StatePassing(model, batch, share: 0.5);
        Assert.Equal(2, passing.Rows);
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        passing.Logits(Tensor.From(first, batch, t));
        var logits = passing.Logits(Tensor.From(second, batch, t)).ToFloatArray();
        var fresh = model.Forward(Tensor.From(second, batch, t)).ToFloatArray();

        using var state = model.NewState(batch);
        float[] last = [];
        foreach (var ids in new[] { first, second })
        {
            for (int j = 0; j < t; j++)
                last = model.Step(Tensor.From(Enumerable.Range(0, batch).Select(b => ids[b * t + j]).ToArray(), batch), state).ToFloatArray();
        }
        int v = task.VocabSize;
        for (int b = 0; b < batch; b++)
            for (int k = 0; k < v; k++)
            {
                float got = logits[((b + 1) * t - 1) * v + k];
                Assert.Equal(b < passing.Rows ? last[b * v + k] : fresh[((b + 1) * t - 1) * v + k], got, 1e-4);
            }
        Assert.NotEqual(fresh[(t - 1) * v], logits[(t - 1) * v], 1e-4);   // row 0 really continued
    }

    /// <summary>
    /// Held keys: over 300 steps of a batch of 8 (6 continuing rows, hold 0.6), every scored target equals the token after
    /// the most recent special token before the query in that row's whole stream — found here by scanning the
    /// concatenated stream, independently of the bookkeeping — hold sequences have no special token and no target, the
    /// fresh rows are exactly as drawn, and keys held across several sequences occur (distances beyond one length).
    /// </summary>
    [Fact]
    public void HeldKeysFollowTheTasksRuleOverEachRowsWholeStream()
    {
        var task = new InductionHeads(length: 12, vocab: 5);
        var o = new SyntheticOptions { Task = "induction-heads", DModel = 8, Layers = 1, DState = 2 };
        using var model = new MambaLM(SyntheticTraining.ModelConfig(o, task), seed: 3);
        const int batch = 8, t = 12, special = 5;
        using var passing = new StatePassing(model, batch, share: 0.75, hold: 0.6);
        var streams = Enumerable.Range(0, passing.Rows).Select(_ => new List<long>()).ToArray();
        int scored = 0, holds = 0, recalls = 0, longest = 0;
        for (int step = 0; step < 300; step++)
        {
            var (inputs, targets) = task.Sample(SplitMixRandom.ForStep(1, step), batch);
            var (drawnInputs, drawnTargets) = ((long[])inputs.Clone(), (long[])targets.Clone());
            passing.HoldAndRecall(inputs, targets, t, task.Vocab, SplitMixRandom.ForStep(1, step, stream: 11));
            Assert.Equal(drawnInputs[(passing.Rows * t)..], inputs[(passing.Rows * t)..]);
            Assert.Equal(drawnTargets[(passing.Rows * t)..], targets[(passing.Rows * t)..]);
            for (int r = 0; r < passing.Rows; r++)
            {
                var row = inputs.AsSpan(r * t, t);
                var stream = streams[r];
                stream.AddRange(row.ToArray());
                long target = targets[r * t + t - 1];
                Assert.All(targets.AsSpan(r * t, t - 1).ToArray(), x => Assert.Equal(-100, x));
                if (row.IndexOf((long)special) < 0) { holds++; Assert.Equal(-100, target); continue; }
                Assert.Equal(special, row[t - 1]);   // every other sequence ends with the query
                int query = stream.Count - 1, previous = stream.LastIndexOf(special, query - 1);
                if (target == -100) { Assert.True(previous < 0 || previous + 1 == query); continue; }   // a recall before any key
                Assert.True(previous >= 0 && previous + 1 < query);
                Assert.Equal(stream[previous + 1], target);
                scored++;
                if (previous < query - t) { recalls++; longest = Math.Max(longest, query - previous); }
            }
        }
        Assert.InRange(holds, 0.5 * 0.6 * 1800, 1.5 * 0.6 * 1800);
        Assert.True(scored > 400 && recalls > 100, $"{scored} scored, {recalls} held across sequences");
        Assert.True(longest > 5 * t, $"longest key-to-query distance {longest}");
    }

    /// <summary>Held keys wait for <see cref="StatePassing.Holding"/>: until the run sets it, a step's loss with --hold
    /// equals the loss without (the batches are left as drawn); once set, the batches change and so does the loss.</summary>
    [Fact]
    public void HeldKeysStartOnlyOnceHolding()
    {
        var task = new InductionHeads(length: 12, vocab: 5);
        var o = new SyntheticOptions { Task = "induction-heads", DModel = 8, Layers = 1, DState = 2 };
        using var model = new MambaLM(SyntheticTraining.ModelConfig(o, task), seed: 3);
        using var _ = GradMode.NoGrad();
        float[] Losses(StatePassing passing, bool holding)
        {
            passing.Holding = holding;
            var losses = new float[6];
            for (int step = 0; step < losses.Length; step++)
            {
                using var scope = new TensorScope();
                losses[step] = SyntheticTraining.Loss(model, task, 1, step, 8, passing).Loss.ToFloatArray()[0];
            }
            return losses;
        }
        using (var plain = new StatePassing(model, 8, 0.75))
        using (var waiting = new StatePassing(model, 8, 0.75, hold: 0.6))
        using (var holding = new StatePassing(model, 8, 0.75, hold: 0.6))
        {
            var expected = Losses(plain, holding: false);
            Assert.Equal(expected, Losses(waiting, holding: false));
            Assert.NotEqual(expected, Losses(holding, holding: true));
        }
    }

    /// <summary>Gradient accumulation: the micro-batches of a step train on different generated batches (they used to
    /// repeat the step's one batch k times), and one micro-batch a step keeps the step's own batch.</summary>
    [Fact]
    public void MicroBatchesOfAStepDrawBatchesOfTheirOwn()
    {
        var task = new InductionHeads(length: 12, vocab: 5);
        for (int accumulate = 1; accumulate <= 4; accumulate++)
        {
            var seen = new HashSet<string>();
            for (long step = 0; step < 6; step++)
                for (int micro = 0; micro < accumulate; micro++)
                {
                    var (inputs, _) = task.Sample(SplitMixRandom.ForStep(1, SyntheticTraining.BatchIndex(step, micro, accumulate)), 2);
                    Assert.True(seen.Add(string.Join(",", inputs)), $"accumulate {accumulate}: step {step} micro {micro} repeats a batch");
                }
        }
        Assert.Equal(7, SyntheticTraining.BatchIndex(7, 0, 1));
    }

    /// <summary>A step that went non-finite (here: NaN weights for one batch) leaves NaN in the carried states; the next
    /// batch starts those rows from zero again instead of carrying the NaN on, so its logits equal a fresh forward.</summary>
    [Fact]
    public void StatePassingStartsAgainFromZeroAfterANonFiniteStep()
    {
        var (_, model, first, second) = StatePassingSetup();
        using var _model = model;
        const int batch = StatePassingBatch, t = 12;
        using var passing = new StatePassing(model, batch, share: 0.5);
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        var w = model.Backbone.Layers[0].Mixer.Parameters().First();
        var saved = w.Clone();
        w.Backend.Fill(w, float.NaN);
        Assert.Contains(passing.Logits(Tensor.From(first, batch, t)).ToFloatArray(), float.IsNaN);
        w.Backend.Fill(w, 0f);
        w.Backend.AddInPlace(w, saved, 1f);
        var logits = passing.Logits(Tensor.From(second, batch, t)).ToFloatArray();
        Assert.Equal(1, passing.ResetCount);
        Assert.Equal(model.Forward(Tensor.From(second, batch, t)).ToFloatArray(), logits);
        passing.Logits(Tensor.From(first, batch, t));
        Assert.Equal(1, passing.ResetCount);   // finite states are carried on as before
    }

    /// <summary>The chunked scan (forwards over consecutive chunks, each continuing from the conv window and SSM state the
    /// previous left) equals the recurrent step, for chunks that do not divide the length and chunks shorter than the conv window.</summary>
    [Theory]
    [InlineData(true, 8)]
    [InlineData(true, 2)]
    [InlineData(false, 13)]
    public void ChunkedEvaluationEqualsTheRecurrentStep(bool selective, int chunk)
    {
        var task = new InductionHeads(length: 16, vocab: 6);
        var o = new SyntheticOptions { Task = "induction-heads", DModel = 16, Layers = 2, DState = 4, Selective = selective };
        using var model = new MambaLM(SyntheticTraining.ModelConfig(o, task), seed: 5);
        PerturbWeights(model);
        const int length = 45, n = 5;
        var chunked = InductionEvaluation.LastLogitsChunked(model, Sequences(task, length, n), chunk);
        var recurrent = InductionEvaluation.LastLogitsRecurrent(model, Sequences(task, length, n));
        Assert.Equal(recurrent.Length, chunked.Length);
        for (int i = 0; i < recurrent.Length; i++) Assert.Equal(recurrent[i], chunked[i], 1e-4);
        Assert.True(model.Training, "the evaluation restores training mode");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RecurrentEvaluationEqualsTheFullForward(bool selective)
    {
        var task = new InductionHeads(length: 16, vocab: 6);
        var o = new SyntheticOptions { Task = "induction-heads", DModel = 16, Layers = 2, DState = 4, Selective = selective };
        using var model = new MambaLM(SyntheticTraining.ModelConfig(o, task), seed: 4);
        PerturbWeights(model);
        const int length = 45, n = 5;
        var recurrent = InductionEvaluation.LastLogitsRecurrent(model, Sequences(task, length, n), chunk: 8);   // chunks of 8 do not divide 45
        var ids = new long[n * length];
        var sequences = Sequences(task, length, n);
        for (int s = 0; s < n; s++) sequences[s].Read(ids.AsSpan(s * length, length));
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        var full = model.Forward(Tensor.From(ids, n, length)).ToFloatArray();
        int v = task.VocabSize;
        for (int s = 0; s < n; s++)
            for (int k = 0; k < v; k++)
                Assert.Equal(full[((s + 1) * length - 1) * v + k], recurrent[s * v + k], 1e-4);
        Assert.True(model.Training, "the evaluation restores training mode");
    }

    [Fact]
    public void TransformerEvaluationTakesTheLastPositionOfEachSequence()
    {
        var task = new InductionHeads(length: 16, vocab: 6);
        var o = new SyntheticOptions { Task = "induction-heads", DModel = 16, Layers = 1, Transformer = true };
        var model = (GptLM)SyntheticTraining.CreateModel(o, task, seed: 2);
        using var owned = model;
        const int length = 40, n = 3;
        var last = InductionEvaluation.LastLogitsFull(model, Sequences(task, length, n));
        var sequences = Sequences(task, length, n);
        using var _ = GradMode.NoGrad();
        for (int s = 0; s < n; s++)
        {
            var ids = new long[length];
            sequences[s].Read(ids);
            using var scope = new TensorScope();
            var one = model.Forward(Tensor.From(ids, 1, length)).ToFloatArray();
            for (int k = 0; k < task.VocabSize; k++) Assert.Equal(one[(length - 1) * task.VocabSize + k], last[s * task.VocabSize + k], 1e-4);
        }
    }

    [Theory]
    // Wilson score intervals (95 %) as tabulated by Newcombe (1998), Statistics in Medicine 17:857, table I.
    [InlineData(81, 263, 0.2553, 0.3662)]
    [InlineData(15, 148, 0.0624, 0.1605)]
    [InlineData(0, 20, 0.0, 0.1611)]
    [InlineData(1, 29, 0.0061, 0.1718)]
    public void WilsonIntervalMatchesPublishedValues(long correct, long n, double low, double high)
    {
        var (l, h) = InductionEvaluation.Wilson(correct, n);
        Assert.Equal(low, l, 3e-4);
        Assert.Equal(high, h, 3e-4);
    }

    [Fact]
    public void SamplesPerLengthGiveAnIntervalWithinOnePercentUpToTwoToTheThirteen()
    {
        foreach (long length in InductionEvaluation.PaperLengths.Where(l => l <= 1 << 13))
        {
            int n = InductionEvaluation.SamplesFor(length);
            Assert.True(InductionEvaluation.Wilson(n, n).Low >= 0.99, $"{n} sequences at {length}");
        }
        Assert.Equal(4, InductionEvaluation.SamplesFor(1 << 20));
        Assert.All(InductionEvaluation.PaperLengths, l => Assert.Equal(400, InductionEvaluation.SamplesFor(l, gpu: true)));
    }

    private static InductionSequence[] Sequences(InductionHeads task, long length, int n) =>
        Enumerable.Range(0, n).Select(i => InductionEvaluation.HeldOut(task, 9, length, i)).ToArray();

    /// <summary>Random weights of a larger scale than the init, so that Δ, the state and the logits all vary.</summary>
    private static void PerturbWeights(MambaLM model)
    {
        var rng = new Random(7);
        foreach (var p in model.Parameters())
        {
            var w = p.AsSpan<float>();
            for (int i = 0; i < w.Length; i++) w[i] += (float)(rng.NextDouble() - 0.5) * 0.5f;
        }
    }
}
