using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

public class LossTests
{
    /// <summary>Independent reference: per-row log-sum-exp in double, mean over the counted rows.</summary>
    private static (double Loss, double[] Grad) Reference(float[] x, long[] t, int v, long ignore)
    {
        int rows = t.Length;
        var grad = new double[x.Length];
        double total = 0;
        int counted = 0;
        var lse = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double m = double.NegativeInfinity;
            for (int j = 0; j < v; j++) m = Math.Max(m, x[r * v + j]);
            double s = 0;
            for (int j = 0; j < v; j++) s += Math.Exp(x[r * v + j] - m);
            lse[r] = m + Math.Log(s);
            if (t[r] == ignore) continue;
            counted++;
            total += lse[r] - x[r * v + t[r]];
        }
        for (int r = 0; r < rows; r++)
        {
            if (t[r] == ignore) continue;
            for (int j = 0; j < v; j++)
                grad[r * v + j] = (Math.Exp(x[r * v + j] - lse[r]) - (j == t[r] ? 1 : 0)) / counted;
        }
        return (total / counted, grad);
    }

    private static long[] Targets(Random rng, int n, int v, long ignore, double ignoreFraction)
    {
        var t = new long[n];
        for (int i = 0; i < n; i++) t[i] = rng.NextDouble() < ignoreFraction ? ignore : rng.Next(v);
        return t;
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 7)]
    [InlineData(17, 33)]
    [InlineData(5, 1000)]
    public void CrossEntropyMatchesDoubleReference(int rows, int v)
    {
        using var scope = new TensorScope();
        var rng = new Random(rows * 31 + v);
        var logits = GradCheck.Random(rng, 6f, rows, v);
        var t = Targets(rng, rows, v, -100, 0.25);
        t[0] = rng.Next(v); // at least one counted row
        var targets = Tensor.From(t, rows);
        logits.RequiresGrad = true;
        var loss = F.CrossEntropy(logits, targets);
        loss.Backward();

        var (refLoss, refGrad) = Reference(logits.ToFloatArray(), t, v, -100);
        Assert.Equal(refLoss, loss.Item(), 2e-6 * Math.Max(1, Math.Abs(refLoss)));
        var g = logits.Grad!.ToFloatArray();
        for (int i = 0; i < g.Length; i++) Assert.Equal(refGrad[i], g[i], 1e-6);
    }

    [Fact]
    public void CrossEntropyAcceptsLeadingAxesAndIgnoreIndexInsideTheVocabulary()
    {
        using var scope = new TensorScope();
        var rng = new Random(5);
        const int b = 2, l = 5, v = 9;
        var logits = GradCheck.Random(rng, 3f, b, l, v);
        var t = Targets(rng, b * l, v, 0, 0.3); // ignore index 0: a padding item, as in recommendation
        t[1] = 4;
        var loss = F.CrossEntropy(logits, Tensor.From(t, b, l), ignoreIndex: 0);
        var (refLoss, _) = Reference(logits.ToFloatArray(), t, v, 0);
        Assert.Equal(refLoss, loss.Item(), 2e-6 * Math.Max(1, Math.Abs(refLoss)));
        Assert.Equal(0, loss.Rank);
    }

    [Fact]
    public void IgnoredRowsDoNotCountAndGetZeroGradient()
    {
        using var scope = new TensorScope();
        var logits = Tensor.From([1f, 2f, 3f, 9f, -9f, 0f], 2, 3);
        logits.RequiresGrad = true;
        var loss = F.CrossEntropy(logits, Tensor.From([2L, -100L], 2));
        // Only row 0 counts: mean over one row.
        double expected = Math.Log(Math.Exp(1) + Math.Exp(2) + Math.Exp(3)) - 3;
        Assert.Equal(expected, loss.Item(), 1e-6);
        loss.Backward();
        var g = logits.Grad!.ToFloatArray();
        Assert.Equal([0f, 0f, 0f], g[3..]);
    }

    [Fact]
    public void EveryTargetIgnoredGivesNaNAndZeroGradientLikePyTorch()
    {
        using var scope = new TensorScope();
        var logits = Tensor.From([1f, 2f, 3f, 4f], 2, 2);
        logits.RequiresGrad = true;
        var loss = F.CrossEntropy(logits, Tensor.From([-100L, -100L], 2));
        Assert.True(float.IsNaN(loss.Item()));
        loss.Backward();
        Assert.All(logits.Grad!.ToFloatArray(), g => Assert.Equal(0f, g));
    }

    [Fact]
    public void HugeLogitsStayFinite()
    {
        using var scope = new TensorScope();
        const int v = 19;
        var x = new float[2 * v];
        for (int j = 0; j < v; j++) { x[j] = j % 2 == 0 ? 1e4f : -1e4f; x[v + j] = -1e4f + j; }
        var logits = Tensor.From(x, 2, v);
        logits.RequiresGrad = true;
        long[] t = [1, 3]; // row 0: a −1e4 target among +1e4 logits → loss ≈ 2e4 + log(10)
        var loss = F.CrossEntropy(logits, Tensor.From(t, 2));
        loss.Backward();
        var (refLoss, refGrad) = Reference(x, t, v, -100);
        Assert.True(float.IsFinite(loss.Item()));
        Assert.Equal(refLoss, loss.Item(), 2e-6 * Math.Abs(refLoss));
        // The gradient is exp(x − lse) with lse stored in float32: its rounding (half an ulp of |lse| ≈ 1e4, i.e.
        // ≈ 5e-4) becomes a relative error of the probabilities, the inherent cost of a float32 lse.
        var g = logits.Grad!.ToFloatArray();
        for (int i = 0; i < g.Length; i++)
        {
            Assert.True(float.IsFinite(g[i]));
            Assert.Equal(refGrad[i], g[i], 1e-6 + Math.Abs(refGrad[i]) * 1e4 * 1.2e-7);
        }
        var ls = F.LogSoftmax(Tensor.From(x, 2, v)).ToFloatArray();
        Assert.All(ls, f => Assert.True(float.IsFinite(f)));
        Assert.Equal(-Math.Log(10), ls[0], 1e-5);
    }

    [Theory]
    [InlineData(5L)]
    [InlineData(-1L)]
    [InlineData(long.MaxValue)]
    public void OutOfRangeTargetNamesRowAndValue(long bad)
    {
        using var scope = new TensorScope();
        var logits = Tensor.Zeros(new Shape(3, 5));
        var ex = Assert.Throws<ArgumentException>(() => F.CrossEntropy(logits, Tensor.From([0L, 4L, bad], 3)));
        Assert.Contains("row 2", ex.Message);
        Assert.Contains(bad.ToString(), ex.Message);
    }

    [Fact]
    public void BadShapesAndDTypesAreClearErrors()
    {
        using var scope = new TensorScope();
        var logits = Tensor.Zeros(new Shape(2, 3, 4));
        var ex = Assert.Throws<ArgumentException>(() => F.CrossEntropy(logits, Tensor.From([0L, 1L, 2L], 3)));
        Assert.Contains("[2, 3]", ex.Message);
        Assert.Contains("[3]", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => F.CrossEntropy(logits, Tensor.From([0, 1, 2, 0, 1, 2], 2, 3)));
        Assert.Contains("I64", ex.Message);
    }

    [Fact]
    public void LogSoftmaxMatchesDoubleReference()
    {
        using var scope = new TensorScope();
        var rng = new Random(11);
        foreach (var (rows, v) in new[] { (1, 1), (4, 7), (3, 45) })
        {
            var x = GradCheck.Random(rng, 10f, rows, v);
            var y = F.LogSoftmax(x).ToFloatArray();
            var xs = x.ToFloatArray();
            for (int r = 0; r < rows; r++)
            {
                double m = xs.Skip(r * v).Take(v).Max();
                double lse = m + Math.Log(xs.Skip(r * v).Take(v).Sum(e => Math.Exp(e - m)));
                for (int j = 0; j < v; j++) Assert.Equal(xs[r * v + j] - lse, y[r * v + j], 2e-6 * Math.Max(1, Math.Abs(lse)));
            }
        }
    }

    [Fact]
    public void CrossEntropyGradient()
    {
        var rng = new Random(12);
        using var logits = GradCheck.Random(rng, 2f, 2, 3, 11);
        using var targets = Tensor.From([3L, -100L, 0L, 10L, 7L, -100L], 2, 3);
        GradCheck.Check(t => F.CrossEntropy(t[0], targets).Reshape(1), [logits]);
    }

    [Fact]
    public void LogSoftmaxGradient()
    {
        var rng = new Random(13);
        using var x = GradCheck.Random(rng, 2f, 3, 13);
        GradCheck.Check(t => F.LogSoftmax(t[0]), [x]);
    }
}
