using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>The O(1) recurrent step must reproduce the parallel forward, token by token.</summary>
public class RecurrentStepTests
{
    [Theory]
    [InlineData(16, 2, 16, 4, 2100, true)]
    [InlineData(24, 1, 8, 3, 2000, true)]
    [InlineData(16, 2, 4, 2, 300, false)]
    public void StepEqualsParallelForward(int dModel, int layers, int dState, int dConv, int length, bool selective)
    {
        var config = new MambaConfig { DModel = dModel, NLayer = layers, DState = dState, DConv = dConv, VocabSize = 37, Selective = selective };
        using var model = new MambaLM(config, seed: 3);
        var rng = new Random(1);
        var ids = Enumerable.Range(0, length).Select(_ => (long)rng.Next(37)).ToArray();
        using var _ = GradMode.NoGrad();
        float[] parallel;
        using (var scope = new TensorScope()) parallel = model.Forward(Tensor.From(ids, 1, length)).ToFloatArray();
        using var state = model.NewState(1);
        long stateBytes = state.Bytes;
        double worst = 0;
        for (int t = 0; t < length; t++)
        {
            using var scope = new TensorScope();
            var step = model.Step(Tensor.From([ids[t]], 1), state).ToFloatArray();
            for (int v = 0; v < 37; v++) worst = Math.Max(worst, Math.Abs(step[v] - parallel[t * 37 + v]) / (1 + Math.Abs(parallel[t * 37 + v])));
        }
        Assert.True(worst < 2e-4, $"max relative difference step vs parallel: {worst:G3}");
        Assert.Equal(stateBytes, state.Bytes);
        Assert.Equal(length, state.Position);
    }

    /// <summary>A small model of either mixer; the Mamba-2 ones have 4 heads in 2 groups and chunks of 4 (prefills span several).</summary>
    internal static MambaConfig Small(string mixer, int vocab) => mixer switch
    {
        "mamba1" => new MambaConfig { DModel = 16, NLayer = 2, DState = 8, DConv = 4, VocabSize = vocab },
        "mamba2" => new MambaConfig { Mixer = MixerKind.Mamba2, DModel = 16, NLayer = 2, DState = 8, DConv = 4, VocabSize = vocab, HeadDim = 8, NGroups = 2, ChunkSize = 4, TimeStepLimitMin = 0.01, TimeStepLimitMax = 0.5 },
        // mamba_ssm's variants of the gated norm: per group of heads, and the norm before the gate.
        "mamba2-ssm" => Small("mamba2", vocab) with { NormGroups = 2, NormBeforeGate = true },
        _ => throw new ArgumentException(mixer),
    };

    /// <summary>ForwardContinues: forwards over consecutive pieces (one token, shorter than the conv window, longer)
    /// equal the forward over the whole sequence; Mamba-2 refuses it with one clear line.</summary>
    [Fact]
    public void ContinuingForwardsOverPiecesEqualOneForward()
    {
        using var model = new MambaLM(Small("mamba1", 23), seed: 6);
        var rng = new Random(3);
        var ids = Enumerable.Range(0, 40).Select(_ => (long)rng.Next(23)).ToArray();
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        var whole = model.Forward(Tensor.From(ids, 1, 40)).ToFloatArray();
        using var state = model.NewState(1);
        foreach (var layer in state.Layers) layer.ForwardContinues = true;
        int start = 0;
        foreach (int piece in new[] { 1, 2, 12, 25 })
        {
            var logits = model.Forward(Tensor.From(ids[start..(start + piece)], 1, piece), state).ToFloatArray();
            for (int i = 0; i < piece * 23; i++) Assert.Equal(whole[start * 23 + i], logits[i], 1e-4);
            start += piece;
        }

        using var mamba2 = new MambaLM(Small("mamba2", 23), seed: 6);
        using var state2 = mamba2.NewState(1);
        state2.Layers[0].ForwardContinues = true;
        var e = Assert.Throws<NotSupportedException>(() => mamba2.Forward(Tensor.From(ids[..4], 1, 4), state2));
        Assert.Contains("Mamba-2: a forward that continues from the state", e.Message);
    }

    /// <summary>Training through a continuing forward (state passing): the tape's gradients of the second piece's logits
    /// with respect to the mixers' parameters match finite differences, the carried state (conv window and SSM state of
    /// the first piece) held fixed as in training, where it is detached.</summary>
    [Fact]
    public void GradientsThroughAContinuingForwardMatchFiniteDifferences()
    {
        using var model = new MambaLM(Small("mamba1", 11) with { NLayer = 1 }, seed: 4);
        var rng = new Random(8);
        var first = Enumerable.Range(0, 9).Select(_ => (long)rng.Next(11)).ToArray();
        var second = Enumerable.Range(0, 6).Select(_ => (long)rng.Next(11)).ToArray();
        using var state = model.NewState(1);
        foreach (var layer in state.Layers) layer.ForwardContinues = true;
        Tensor conv, ssm;
        using (GradMode.NoGrad())
        using (new TensorScope())
        {
            model.Forward(Tensor.From(first, 1, first.Length), state);
            conv = state.Layers[0].ConvState.Clone().Persist();
            ssm = state.Layers[0].SsmState.Clone().Persist();
        }
        Assert.Contains(ssm.ToFloatArray(), v => v != 0);   // the second piece really starts from a carried state
        var parameters = model.NamedParameters().Where(p => p.Name.Contains("mixer.")).Select(p => p.Tensor).ToArray();
        foreach (var p in model.Parameters()) p.RequiresGrad = false;
        GradCheck.Check(_ =>
        {
            state.Layers[0].ConvState.CopyFrom(conv);
            state.Layers[0].SsmState.CopyFrom(ssm);
            return model.Forward(Tensor.From(second, 1, second.Length), state);
        }, parameters, maxChecksPerInput: 12);
        conv.Dispose(); ssm.Dispose();
    }

    [Theory]
    [InlineData("mamba1")]
    [InlineData("mamba2")]
    [InlineData("mamba2-ssm")]
    public void PrefillThenStepEqualsParallelForward(string mixer)
    {
        var config = Small(mixer, 23);
        using var model = new MambaLM(config, seed: 5);
        var rng = new Random(2);
        var ids = Enumerable.Range(0, 40).Select(_ => (long)rng.Next(23)).ToArray();
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        var parallel = model.Forward(Tensor.From(ids, 1, 40)).ToFloatArray();
        foreach (int prefix in new[] { 1, 2, 3, 25 })
        {
            using var state = model.NewState(1);
            model.Forward(Tensor.From(ids[..prefix], 1, prefix), state);
            for (int t = prefix; t < 40; t++)
            {
                var step = model.Step(Tensor.From([ids[t]], 1), state).ToFloatArray();
                for (int v = 0; v < 23; v++) Assert.Equal(parallel[t * 23 + v], step[v], 1e-4);
            }
        }
    }

    [Theory]
    [InlineData("mamba1")]
    [InlineData("mamba2")]
    public void BatchedPrefillThenStepEqualsEachStreamsParallelForward(string mixer)
    {
        var config = Small(mixer, 23);
        using var model = new MambaLM(config, seed: 6);
        var rng = new Random(4);
        long[][] seqs = [Enumerable.Range(0, 12).Select(_ => (long)rng.Next(23)).ToArray(), Enumerable.Range(0, 12).Select(_ => (long)rng.Next(23)).ToArray()];
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        var parallel = seqs.Select(s => model.Forward(Tensor.From(s, 1, 12)).ToFloatArray()).ToArray();
        foreach (int prefix in new[] { 2, 7 })
        {
            using var state = model.NewState(2);
            model.Forward(Tensor.From(seqs[0][..prefix].Concat(seqs[1][..prefix]).ToArray(), 2, prefix), state);
            for (int t = prefix; t < 12; t++)
            {
                var step = model.Step(Tensor.From([seqs[0][t], seqs[1][t]], 2), state).ToFloatArray();
                for (int s = 0; s < 2; s++)
                    for (int v = 0; v < 23; v++) Assert.Equal(parallel[s][t * 23 + v], step[s * 23 + v], 1e-4);
            }
        }
    }

    [Fact]
    public void BatchedStreamsAreIndependent()
    {
        var config = new MambaConfig { DModel = 16, NLayer = 1, DState = 4, DConv = 4, VocabSize = 11 };
        using var model = new MambaLM(config, seed: 9);
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        long[] a = [1, 2, 3, 4, 5], b = [7, 7, 0, 10, 3];
        var pa = model.Forward(Tensor.From(a, 1, 5)).ToFloatArray();
        var pb = model.Forward(Tensor.From(b, 1, 5)).ToFloatArray();
        using var state = model.NewState(2);
        for (int t = 0; t < 5; t++)
        {
            var step = model.Step(Tensor.From([a[t], b[t]], 2), state).ToFloatArray();
            for (int v = 0; v < 11; v++)
            {
                Assert.Equal(pa[t * 11 + v], step[v], 1e-4);
                Assert.Equal(pb[t * 11 + v], step[11 + v], 1e-4);
            }
        }
    }
}

public class Mamba4RecStepTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void StepOverAHistoryEqualsTheFullForward(int layers)
    {
        using var model = new Mamba4Rec(new Mamba4RecConfig { NItems = 30, HiddenSize = 16, NumLayers = layers, DState = 8, InnerSize = 32, Dropout = 0.2f }, seed: 4);
        model.Eval();
        var rng = new Random(6);
        long[] a = Enumerable.Range(0, 12).Select(_ => (long)rng.Next(1, 30)).ToArray();
        long[] b = Enumerable.Range(0, 12).Select(_ => (long)rng.Next(1, 30)).ToArray();
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        using var state = model.NewState(2);
        for (int t = 0; t < 12; t++)
        {
            var step = model.Step(Tensor.From([a[t], b[t]], 2), state).ToFloatArray();
            // Full forward over each history so far, read at its last position.
            var full = model.Forward(Tensor.From([.. a[..(t + 1)], .. b[..(t + 1)]], 2, t + 1), Tensor.From([t + 1L, t + 1L], 2)).ToFloatArray();
            for (int i = 0; i < full.Length; i++) Assert.Equal(full[i], step[i], 1e-4);
        }
    }
}
