using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Tests.Server;

/// <summary>
/// Continuous batching must not change what a stream computes: a batched step's logits for each stream are
/// bit-identical to that stream stepped alone, whatever the batch size (few-row products share one dot order).
/// </summary>
[Collection(EngineSettingsCollection.Name)]
public class BatchedStepTests
{
    [Fact]
    public void EveryStreamOfABatchedStepIsBitIdenticalToItsSingleStep()
    {
        var config = new MambaConfig { DModel = 64, NLayer = 2, DState = 8, VocabSize = 101 };
        using var model = new MambaLM(config, seed: 4);
        model.Eval();
        using var _ = GradMode.NoGrad();
        var rng = new Random(3);
        bool wide = Mamba4.Backends.Cpu.CpuGemv.WideSupported, tile = Mamba4.Backends.Cpu.CpuGemv.Tile4x3Supported;
        var engine = Mamba4.Backends.Backend.Settings;
        // Every few-row kernel (4×3 tiles on 512-bit vectors with AVX-512F, 3×2 tiles with AVX-512VL, 3×1 without)
        // keeps the single-row dot order.
        var kernels = new List<Mamba4.Backends.CpuGemvTiles> { Mamba4.Backends.CpuGemvTiles.Rows };
        if (wide) kernels.Add(Mamba4.Backends.CpuGemvTiles.Up3x2);
        if (tile) kernels.Add(Mamba4.Backends.CpuGemvTiles.Auto);
        try
        {
        foreach (var tiles in kernels)
        foreach (int batch in new[] { 2, 3, 4, 5, 7, 9, 33 })
        {
            Mamba4.Backends.Backend.Configure(engine with { CpuGemvTiles = tiles });
            var ids = Enumerable.Range(0, batch).Select(_ => Enumerable.Range(0, 6).Select(_ => (long)rng.Next(101)).ToArray()).ToArray();
            var single = new float[batch][];
            for (int s = 0; s < batch; s++)
            {
                using var st = model.NewState(1);
                using var scope = new TensorScope();
                for (int t = 0; t < 6; t++) single[s] = model.Step(Tensor.From([ids[s][t]], 1), st).ToFloatArray();
            }
            using var state = model.NewState(batch + 4);
            using var view = state.Slice(2, batch);   // a view in the middle of a larger state, as the scheduler uses
            float[] batched = [];
            for (int t = 0; t < 6; t++)
            {
                using var scope = new TensorScope();
                batched = model.Step(Tensor.From(ids.Select(x => x[t]).ToArray(), batch), view).ToFloatArray();
            }
            for (int s = 0; s < batch; s++)
                Assert.True(single[s].AsSpan().SequenceEqual(batched.AsSpan(s * 101, 101)), $"batch {batch}, stream {s} differs (kernels: {tiles})");
        }
        }
        finally { Mamba4.Backends.Backend.Configure(engine); }
    }

    [Fact]
    public void CopySlotMovesOneStreamsStateBetweenStates()
    {
        var config = new MambaConfig { DModel = 16, NLayer = 2, DState = 4, VocabSize = 11 };
        using var model = new MambaLM(config, seed: 2);
        using var _ = GradMode.NoGrad();
        using var one = model.NewState(1);
        using var scope = new TensorScope();
        model.Forward(Tensor.From([1L, 2, 3], 1, 3), one);
        using var many = model.NewState(4);
        many.CopySlot(2, one);
        many.CopySlot(0, many, 2);
        for (int l = 0; l < 2; l++)
        {
            var src = one.Layers[l].SsmState.ToFloatArray();
            var all = many.Layers[l].SsmState.ToFloatArray();
            Assert.Equal(src, all.AsSpan(2 * src.Length, src.Length).ToArray());
            Assert.Equal(src, all.AsSpan(0, src.Length).ToArray());
            Assert.All(all.AsSpan(src.Length, src.Length).ToArray(), v => Assert.Equal(0f, v));
            var conv = one.Layers[l].ConvState.ToFloatArray();
            Assert.Equal(conv, many.Layers[l].ConvState.ToFloatArray().AsSpan(2 * conv.Length, conv.Length).ToArray());
        }
    }
}
