using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Tests;

/// <summary>The Transformer baseline: KV-cache decoding equals the parallel forward; the cache grows with length.</summary>
public class GptTests
{
    [Fact]
    public void KvCacheStepEqualsParallelForward()
    {
        var config = new GptConfig { DModel = 24, NLayer = 2, NHead = 3, VocabSize = 31, MaxPositions = 64 };
        using var model = new GptLM(config, seed: 2);
        var rng = new Random(3);
        int len = 50;
        var a = Enumerable.Range(0, len).Select(_ => (long)rng.Next(31)).ToArray();
        var b = Enumerable.Range(0, len).Select(_ => (long)rng.Next(31)).ToArray();
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        var parallel = model.Forward(Tensor.From([.. a, .. b], 2, len)).ToFloatArray();
        using var cache = model.NewCache(2, 64);
        // prefill the first 10 tokens, then step
        var prefill = model.Forward(Tensor.From([.. a[..10], .. b[..10]], 2, 10), cache).ToFloatArray();
        for (int t = 0; t < 10; t++)
            for (int v = 0; v < 31; v++) Assert.Equal(parallel[t * 31 + v], prefill[t * 31 + v], 1e-4);
        long bytes10 = cache.Bytes;
        for (int t = 10; t < len; t++)
        {
            var step = model.Step(Tensor.From([a[t], b[t]], 2), cache).ToFloatArray();
            for (int v = 0; v < 31; v++)
            {
                Assert.Equal(parallel[t * 31 + v], step[v], 1e-4);
                Assert.Equal(parallel[(len + t) * 31 + v], step[31 + v], 1e-4);
            }
        }
        Assert.Equal(bytes10 * len / 10, cache.Bytes);

        // rewinding: after Truncate(20) the next step is position 20 again and matches the parallel forward there
        cache.Truncate(20);
        Assert.Equal(bytes10 * 2, cache.Bytes);
        var again = model.Step(Tensor.From([a[20], b[20]], 2), cache).ToFloatArray();
        for (int v = 0; v < 31; v++)
        {
            Assert.Equal(parallel[20 * 31 + v], again[v], 1e-4);
            Assert.Equal(parallel[(len + 20) * 31 + v], again[31 + v], 1e-4);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Truncate(22));
    }

    [Fact]
    public void GptLearnsAndHasGpt2Names()
    {
        using var model = new GptLM(new GptConfig { DModel = 16, NLayer = 1, NHead = 2, VocabSize = 11, MaxPositions = 8 });
        var names = model.NamedParameters().Select(p => p.Name).ToList();
        Assert.Contains("transformer.wte.weight", names);
        Assert.Contains("transformer.h.0.attn.c_attn.weight", names);
        Assert.Contains("transformer.h.0.mlp.c_proj.bias", names);
        Assert.Contains("transformer.ln_f.weight", names);
        var ids = Tensor.From(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }, 1, 8).Persist();
        float first = 0, last = 0;
        using var opt = new Training.AdamW(model, lr: 1e-2f, weightDecay: 0);
        for (int i = 0; i < 30; i++)
        {
            using var scope = new TensorScope();
            model.ZeroGrad();
            var logits = model.Forward(ids);
            var targets = Tensor.From(new long[] { 2, 3, 4, 5, 6, 7, 8, -100 }, 1, 8);
            var loss = F.CrossEntropy(logits, targets);
            if (i == 0) first = loss.Item();
            last = loss.Item();
            loss.Backward();
            opt.Step();
        }
        Assert.True(last < first * 0.2, $"loss {first} → {last}");
        ids.Dispose();
    }
}
