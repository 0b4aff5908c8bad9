using Mamba4.Autograd;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// F.LinearAccumulate (into += x·Wᵀ + b in place, the prefill's residual stream) against Add(into, Linear(x, W, b)), with
/// F32 and BF16 weights and leading axes; refused, by name, where a gradient would be recorded.
/// </summary>
public class LinearAccumulateTests
{
    private static Tensor Random(Random rng, params int[] shape) =>
        Tensor.From(Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), shape);

    [Theory]
    [InlineData(false, true)]
    [InlineData(false, false)]
    [InlineData(true, true)]   // a BF16 weight: Linear, then Add
    public void EqualsAddOfLinear(bool bf16Weight, bool withBias)
    {
        var rng = new Random(3);
        using var scope = new TensorScope();
        using var noGrad = GradMode.NoGrad();
        var x = Random(rng, 2, 9, 40);
        var w = Random(rng, 24, 40);
        if (bf16Weight) w = w.To(DType.BF16);
        var b = withBias ? Random(rng, 24) : null;
        var h = Random(rng, 2, 9, 24);
        var expected = F.Add(h, F.Linear(x, w, b)).ToFloatArray();
        var into = h.Clone();
        Assert.Same(into, F.LinearAccumulate(x, w, b, into));
        var got = into.ToFloatArray();
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - got[i]) <= 1e-6f * (1 + Math.Abs(expected[i])), $"element {i}: {got[i]} vs {expected[i]}");
    }

    [Fact]
    public void WithATapeOrAWrongShapeItIsAOneLineError()
    {
        var rng = new Random(5);
        using var scope = new TensorScope();
        var x = Random(rng, 3, 8);
        var w = Random(rng, 4, 8);
        w.RequiresGrad = true;
        var e = Assert.Throws<InvalidOperationException>(() => F.LinearAccumulate(x, w, null, Random(rng, 3, 4)));
        Assert.Contains("LinearAccumulate", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        using var noGrad = GradMode.NoGrad();
        var bad = Assert.ThrowsAny<ArgumentException>(() => F.LinearAccumulate(x, w, null, Random(rng, 3, 5)));
        Assert.Contains("into", bad.Message);
    }
}
