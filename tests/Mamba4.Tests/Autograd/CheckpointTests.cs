using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// Activation checkpointing (<see cref="Checkpoint"/>): a segment run without recording and rerun in the backward gives
/// the gradients of the recorded segment bit for bit (the CPU kernels are deterministic), keeps only its output, records
/// one node; and MambaLM.Recompute (the mixers' inner ops rerun, the scan's forward not) changes no gradient.
/// </summary>
public class CheckpointTests
{
    private static Tensor Random(int seed, params int[] shape)
    {
        var rng = new Random(seed);
        var n = shape.Aggregate(1, (a, b) => a * b);
        return Tensor.From(Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), shape);
    }

    // exp(x·x) W, a few ops with intermediates
    private static Tensor Segment(Tensor x, Tensor w) => F.Linear(F.Exp(F.Scale(F.Mul(x, x), 0.5f)), w);

    private static (float[] Dx, float[] Dw, float Loss, int LiveTensors, int Nodes) Run(bool checkpoint)
    {
        using var x = Random(1, 4, 6); x.RequiresGrad = true;
        using var w = Random(2, 5, 6); w.RequiresGrad = true;
        using var scope = new TensorScope();
        int nodesBefore = Tape.Count;
        var y = checkpoint ? Checkpoint.Run("segment", () => Segment(x, w), x, w) : Segment(x, w);
        int live = scope.Count, nodes = Tape.Count - nodesBefore;
        var loss = F.Sum(F.Mul(y, y));
        float value = loss.Item();
        loss.Backward();
        return (x.Grad!.ToFloatArray(), w.Grad!.ToFloatArray(), value, live, nodes);
    }

    [Fact]
    public void TheRerunGivesTheRecordedSegmentsGradientsBitForBit()
    {
        var recorded = Run(checkpoint: false);
        var rerun = Run(checkpoint: true);
        Assert.Equal(recorded.Loss, rerun.Loss);
        Assert.Equal(recorded.Dx, rerun.Dx);
        Assert.Equal(recorded.Dw, rerun.Dw);
        Assert.Equal(4, recorded.Nodes);   // Mul, Scale, Exp, Linear
        Assert.Equal(1, rerun.Nodes);      // one node for the segment
        Assert.Equal(4, recorded.LiveTensors);   // the three intermediates and y
        Assert.Equal(1, rerun.LiveTensors);      // y only: the intermediates were freed when the segment returned
    }

    [Fact]
    public void WithoutGradientsTheSegmentJustRuns()
    {
        using var x = Random(1, 3, 4); x.RequiresGrad = true;
        using var w = Random(2, 2, 4);
        using var scope = new TensorScope();
        int before = Tape.Count;
        using (GradMode.NoGrad())
        {
            var y = Checkpoint.Run("segment", () => Segment(x, w), x, w);
            Assert.False(y.RequiresGrad);
        }
        var constant = Checkpoint.Run("segment", () => Segment(w, w), w);   // no input requires a gradient
        Assert.False(constant.RequiresGrad);
        Assert.Equal(before, Tape.Count);
    }

    [Fact]
    public void TheSegmentKnowsWhenItIsRerun()
    {
        using var x = Random(1, 3, 4); x.RequiresGrad = true;
        using var w = Random(2, 2, 4);
        using var scope = new TensorScope();
        var seen = new List<(bool Rerunning, bool Recording)>();
        var y = Checkpoint.Run("segment", () => { seen.Add((Checkpoint.IsRerunning, GradMode.IsEnabled)); return Segment(x, w); }, x);
        F.Sum(y).Backward();
        Assert.Equal([(false, false), (true, true)], seen);   // first run not recorded; the rerun recorded, inside the backward
        Assert.False(Checkpoint.IsRerunning);
        Assert.True(GradMode.IsEnabled);
        Assert.Equal(0, Tape.Count);
    }

    /// <summary>A Recompute mixer inside another checkpoint's segment: the outer rerun must not make the inner first run
    /// skip its scan (the inner segment's output is used).</summary>
    [Fact]
    public void ACheckpointInsideAnothersRerunRunsItsFirstPassInFull()
    {
        var config = new MambaConfig { DModel = 16, NLayer = 1, DState = 4, VocabSize = 23 };
        var ids = Tensor.From(Enumerable.Range(0, 9).Select(i => (long)(i * 7 % 23)).ToArray(), 1, 9);
        var grads = new List<Dictionary<string, float[]>>();
        foreach (bool nested in new[] { false, true })
        {
            using var model = new MambaLM(config, seed: 3);
            model.Recompute = nested;
            using var scope = new TensorScope();
            var block = model.Backbone.Layers[0];
            var h0 = model.Backbone.Embeddings.Forward(ids);
            var h = nested ? Checkpoint.Run("block", () => block.Forward(h0), [h0, .. block.Parameters()]) : block.Forward(h0);
            F.Sum(F.Mul(h, h)).Backward();
            grads.Add(model.NamedParameters().Where(p => p.Tensor.Grad is not null).ToDictionary(p => p.Name, p => p.Tensor.Grad!.ToFloatArray()));
        }
        Assert.Equal(grads[0].Keys.Order(), grads[1].Keys.Order());
        foreach (var (name, g) in grads[0]) Assert.True(g.SequenceEqual(grads[1][name]), $"grad.{name} differs with the mixer's checkpoint inside a block's");
    }

    [Fact]
    public void NoGradDisposedOutOfOrderStillBalances()
    {
        var a = GradMode.NoGrad();
        var b = GradMode.NoGrad();
        a.Dispose();   // e.g. two iterators, each holding one
        Assert.False(GradMode.IsEnabled);
        b.Dispose();
        Assert.True(GradMode.IsEnabled);
    }

    [Fact]
    public void ASegmentThatReturnsAnInputIsRefused()
    {
        using var x = Random(1, 3, 4); x.RequiresGrad = true;
        using var scope = new TensorScope();
        var e = Assert.Throws<InvalidOperationException>(() => Checkpoint.Run("identity", () => x, x));
        Assert.Equal("Checkpoint 'identity': the segment returned a tensor it did not make (an input, or one made outside it); return a new tensor (e.g. a copy)", e.Message);
        Assert.True(x.IsLeaf);   // its producer was not replaced
    }

    [Fact]
    public void EnableGradInsideNoGradRestoresTheOuterMode()
    {
        using (GradMode.NoGrad())
        using (GradMode.NoGrad())
        {
            using (GradMode.EnableGrad()) Assert.True(GradMode.IsEnabled);
            Assert.False(GradMode.IsEnabled);
        }
        Assert.True(GradMode.IsEnabled);
    }

    public static TheoryData<string> Mixers => new() { "selective", "time-invariant", "falcon" };

    private static MambaConfig Config(string kind) => new()
    {
        DModel = 16, NLayer = 2, DState = 4, VocabSize = 23,
        Selective = kind != "time-invariant", MixerRmsEps = kind == "falcon" ? 1e-6f : null,
    };

    /// <summary>MambaLM.Recompute: the same loss and every parameter's gradient bit for bit, and fewer live tensors after the forward.</summary>
    [Theory, MemberData(nameof(Mixers))]
    public void MambaLmRecomputeChangesNoGradient(string kind)
    {
        var ids = Tensor.From(Enumerable.Range(0, 2 * 9).Select(i => (long)(i * 7 % 23)).ToArray(), 2, 9);
        var results = new List<(float Loss, Dictionary<string, float[]> Grads, int Live)>();
        foreach (bool recompute in new[] { false, true })
        {
            using var model = new MambaLM(Config(kind), seed: 3);
            model.Recompute = recompute;
            Assert.Equal(recompute, model.Recompute);
            using var scope = new TensorScope();
            var loss = model.Loss(ids);
            int live = scope.Count;
            float value = loss.Item();
            loss.Backward();
            results.Add((value, model.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor.Grad!.ToFloatArray()), live));
        }
        Assert.Equal(results[0].Loss, results[1].Loss);
        foreach (var (name, grad) in results[0].Grads)
            Assert.True(grad.SequenceEqual(results[1].Grads[name]), $"grad.{name} differs with Recompute");
        Assert.True(results[1].Live < results[0].Live, $"{results[1].Live} live tensors after the forward with Recompute, {results[0].Live} without");
    }

    /// <summary>A forward continued from a state keeps everything (the conv state is written once): same results with Recompute.</summary>
    [Fact]
    public void AForwardFromAStateIgnoresRecompute()
    {
        var ids = Tensor.From(Enumerable.Range(0, 12).Select(i => (long)(i * 5 % 23)).ToArray(), 1, 12);
        var last = new List<float[]>();
        foreach (bool recompute in new[] { false, true })
        {
            using var model = new MambaLM(Config("selective"), seed: 3);
            model.Recompute = recompute;
            using var scope = new TensorScope();
            using var state = new MambaState(model.Config.NLayer, 1, model.Config);
            model.Forward(ids, state);
            last.Add(state.Layers[0].SsmState.ToFloatArray());
        }
        Assert.Equal(last[0], last[1]);
    }
}
