using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// The fused decoding step's op on the CPU (its reference twin): equal to the unfused MambaBlock.Step and
/// F.Linear head it stands for, the greedy ids equal the arg-max of the logits, and bad input is a one-line error.
/// </summary>
public class MambaStepTests
{
    /// <summary>A small Mamba-1 model (on <paramref name="device"/>) and a random state for it (<see cref="RandomState"/>).</summary>
    internal static (MambaLM Model, MambaState State) RandomModel(int dModel, int batch, int seed, Device? device = null, int dState = 16)
    {
        var model = new MambaLM(new MambaConfig { DModel = dModel, NLayer = 2, DState = dState, DConv = 4, VocabSize = 53 }, seed);
        if (device is { } d) model.To(d);
        return (model, RandomState(model, batch, seed));
    }

    /// <summary>A state of <paramref name="model"/> holding values in [−1, 1) (a state that has seen tokens); the same
    /// <paramref name="seed"/> gives the same values.</summary>
    internal static MambaState RandomState(MambaLM model, int batch, int seed)
    {
        var state = model.NewState(batch);
        var rng = new Random(seed + 1);
        var values = new float[state.Bytes / sizeof(float)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
        state.Load(values);
        return state;
    }

    internal static Tensor RandomHidden(int batch, int d, int seed)
    {
        var rng = new Random(seed);
        var v = new float[batch * d];
        for (int i = 0; i < v.Length; i++) v[i] = (float)(rng.NextDouble() * 4 - 2);
        return Tensor.From(v, batch, d);
    }

    [Theory]
    [InlineData(24, 1)]
    [InlineData(36, 3)]
    public void LayerStepEqualsTheUnfusedBlockStep(int dModel, int batch)
    {
        var (model, fusedState) = RandomModel(dModel, batch, 5);
        var unfusedState = RandomState(model, batch, 5);
        using (model)
        using (fusedState)
        using (unfusedState)
        using (GradMode.NoGrad())
        using (var scope = new TensorScope())
        {
            var h = RandomHidden(batch, dModel, 9);
            var block = model.Backbone.Layers[0];
            var mixer = (Nn.MambaMixer)block.Mixer;
            var fused = F.MambaStep(h, mixer.StepWeights(block.Norm), fusedState.Layers[0].ConvState, fusedState.Layers[0].SsmState);
            var unfused = block.Step(h, unfusedState.Layers[0]);
            Assert.Equal(unfused.ToFloatArray(), fused.ToFloatArray());
            Assert.Equal(unfusedState.ToArray(), fusedState.ToArray());
        }
    }

    [Fact]
    public void HeadStepGivesTheLogitsOfTheUnfusedHeadAndTheirArgMax()
    {
        var (model, state) = RandomModel(24, 4, 2);
        using (model)
        using (state)
        using (GradMode.NoGrad())
        using (var scope = new TensorScope())
        {
            var h = RandomHidden(4, 24, 3);
            var ids = Tensor.From(new long[] { 77, 77, 77, 77 }, 4);
            var logits = F.MambaHeadStep(h, model.Backbone.NormF.Weight, model.Backbone.NormF.Eps, model.LmHead, ids);
            var expected = F.Linear(model.Backbone.NormF.Forward(h), model.LmHead).ToFloatArray();
            Assert.Equal(expected, logits.ToFloatArray());
            var chosen = ids.ToInt64Array();
            for (int r = 0; r < 4; r++)
            {
                int best = 0;
                for (int v = 1; v < 53; v++) if (expected[r * 53 + v] > expected[r * 53 + best]) best = v;
                Assert.Equal(best, chosen[r]);
            }
        }
    }

    [Fact]
    public void HeadStepMarksARowWithANonFiniteLogit()
    {
        using var scope = new TensorScope();
        using var _ = GradMode.NoGrad();
        var h = RandomHidden(2, 8, 1);
        var head = RandomHidden(5, 8, 2);
        var w = head.AsSpan<float>();
        w[3 * 8] = float.PositiveInfinity;   // logit 3 is ±∞ or NaN in every row
        var ids = Tensor.Zeros(new Shape(2), DType.I64);
        F.MambaHeadStep(h, Tensor.Ones(new Shape(8)), 1e-5f, head, ids);
        Assert.Equal(new long[] { -1, -1 }, ids.ToInt64Array());
    }

    [Fact]
    public void ModelStepWithGreedyIdsMatchesTheArgMaxOfItsLogits()
    {
        var (model, state) = RandomModel(16, 2, 8);
        using (model)
        using (state)
        using (GradMode.NoGrad())
        using (var scope = new TensorScope())
        {
            var ids = Tensor.From(new long[] { 3, 40 }, 2);
            var logits = model.Step(ids, state, ids).ToFloatArray();
            var chosen = ids.ToInt64Array();
            for (int r = 0; r < 2; r++) Assert.Equal(Generator.ArgMax(logits.AsSpan(r * 53, 53)), chosen[r]);
        }
    }

    [Fact]
    public void BadInputIsAOneLineError()
    {
        var (model, state) = RandomModel(16, 1, 1);
        using (model)
        using (state)
        using (var scope = new TensorScope())
        {
            var block = model.Backbone.Layers[0];
            var w = ((Nn.MambaMixer)block.Mixer).StepWeights(block.Norm);
            var h = RandomHidden(1, 16, 1);
            var e = Assert.Throws<InvalidOperationException>(() => F.MambaStep(h, w, state.Layers[0].ConvState, state.Layers[0].SsmState));
            Assert.Contains("GradMode.NoGrad", e.Message);
            using var _ = GradMode.NoGrad();
            var a = Assert.Throws<ArgumentException>(() => F.MambaStep(RandomHidden(2, 16, 1), w, state.Layers[0].ConvState, state.Layers[0].SsmState));
            Assert.Equal("MambaStep: conv_state must have shape [2, 32, 3], got [1, 32, 3]", a.Message);
            a = Assert.Throws<ArgumentException>(() => F.MambaStep(h, w with { OutProj = w.InProj }, state.Layers[0].ConvState, state.Layers[0].SsmState));
            Assert.Equal("MambaStep: out_proj.weight must have shape [16, 32], got [64, 16]", a.Message);
            a = Assert.Throws<ArgumentException>(() => F.MambaHeadStep(h, block.Norm.Weight, 1e-5f, model.LmHead, Tensor.Zeros(new Shape(1))));
            Assert.Equal("MambaHeadStep: greedyIds must be I64, got F32", a.Message);
        }
    }
}
