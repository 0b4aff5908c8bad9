using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// F.LinearSplit (nn.Linear whose output is split along the last axis, computed on row views of the weight: no joined
/// output, no copies) against the two ops it replaces, SplitLastAxis(Linear(x, W, b)), forward and every gradient; a
/// part that gets no gradient leaves its rows of dW and db zero; bad sizes are refused by name.
/// </summary>
public class LinearSplitTests
{
    private static Tensor Random(Random rng, params int[] shape) =>
        Tensor.From(Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), shape);

    /// <summary>x's gradient written by the products themselves: when x already has a gradient (its other use recorded after
    /// the product, so its backward runs first) Linear's and LinearSplit's dx add to it with β = 1 instead of a new tensor
    /// and an addition; against finite differences.</summary>
    [Fact]
    public void DxAddsToAGradientTheInputAlreadyHas()
    {
        var rng = new Random(4);
        using var x = GradCheck.Random(rng, 1f, 3, 5);
        using var w = GradCheck.Random(rng, 1f, 5, 5);
        using var b = GradCheck.Random(rng, 1f, 5);
        GradCheck.Check(t => F.Add(F.Linear(t[0], t[1], t[2]), F.Mul(t[0], t[0])), [x, w, b]);
        GradCheck.Check(t =>
        {
            var parts = F.LinearSplit(t[0], t[1], t[2], 2, 3);
            return F.Add(F.ConcatLastAxis(parts[0], parts[1]), F.Mul(t[0], t[0]));
        }, [x, w, b]);
    }

    [Theory]
    [InlineData(true, new[] { 0, 1, 2 })]
    [InlineData(false, new[] { 0, 1, 2 })]
    [InlineData(true, new[] { 1 })]        // only the middle part is used: the other rows of dW and db stay zero
    [InlineData(false, new[] { 0, 2 })]
    public void EqualsLinearThenSplitForwardAndBackward(bool withBias, int[] used)
    {
        int[] sizes = [5, 3, 4];
        var results = new List<(float[][] Parts, float[] Dx, float[] Dw, float[]? Db)>();
        foreach (bool fused in new[] { false, true })
        {
            var rng = new Random(11);
            using var scope = new TensorScope();
            var x = Random(rng, 2, 7, 6); x.RequiresGrad = true;
            var w = Random(rng, 12, 6); w.RequiresGrad = true;
            var b = withBias ? Random(rng, 12) : null;
            if (b is not null) b.RequiresGrad = true;
            var weights = Random(rng, 2, 7, 12);
            var parts = fused ? F.LinearSplit(x, w, b, sizes) : F.SplitLastAxis(F.Linear(x, w, b), sizes);
            Tensor? loss = null;
            for (int i = 0; i < parts.Length; i++)
            {
                // a different weight per element, so every gradient element is distinct
                var term = F.Sum(F.Mul(parts[i], F.SplitLastAxis(weights, sizes)[i]));
                if (used.Contains(i)) loss = loss is null ? term : F.Add(loss, term);
            }
            loss!.Backward();
            results.Add((parts.Select(p => p.ToFloatArray()).ToArray(), x.Grad!.ToFloatArray(), w.Grad!.ToFloatArray(), b?.Grad!.ToFloatArray()));
        }
        var (expected, actual) = (results[0], results[1]);
        for (int i = 0; i < sizes.Length; i++) Close(expected.Parts[i], actual.Parts[i], $"part {i}");
        Close(expected.Dx, actual.Dx, "dx");
        Close(expected.Dw, actual.Dw, "dW");
        if (withBias) Close(expected.Db!, actual.Db!, "db");
        int first = 0;
        for (int i = 0; i < sizes.Length; first += sizes[i], i++)
            if (!used.Contains(i))
            {
                Assert.All(actual.Dw.Skip(first * 6).Take(sizes[i] * 6), v => Assert.Equal(0f, v));
                if (withBias) Assert.All(actual.Db!.Skip(first).Take(sizes[i]), v => Assert.Equal(0f, v));
            }
    }

    private static void Close(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * Math.Max(1, Math.Abs(expected[i])), $"{what}[{i}]: {expected[i]} vs {actual[i]}");
    }

    [Fact]
    public void AnyPartWithoutGradientsRunsWithoutRecording()
    {
        var rng = new Random(3);
        using var scope = new TensorScope();
        var x = Random(rng, 4, 6);
        var w = Random(rng, 5, 6);
        var parts = F.LinearSplit(x, w, null, 2, 3);
        Assert.All(parts, p => Assert.False(p.RequiresGrad));
        Assert.Equal(F.SplitLastAxis(F.Linear(x, w), 2, 3)[1].ToFloatArray(), parts[1].ToFloatArray());
    }

    [Fact]
    public void SizesThatDoNotCoverTheOutputsAreRefused()
    {
        using var scope = new TensorScope();
        var x = Tensor.Zeros(new Shape(2, 6));
        var w = Tensor.Zeros(new Shape(5, 6));
        var e = Assert.Throws<ArgumentException>(() => F.LinearSplit(x, w, null, 2, 2));
        Assert.Equal("LinearSplit: sizes [2, 2] must be ≥ 0 and add up to weight [5, 6]'s 5 outputs", e.Message);
        Assert.Throws<ArgumentException>(() => F.LinearSplit(x, w, null, 6, -1));
        var parts = F.LinearSplit(x, w, null, 5, 0);   // an empty part, as SplitLastAxis allows
        Assert.Equal(new Shape(2, 0), parts[1].Shape);
    }
}
