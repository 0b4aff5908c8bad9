using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

public class LinearCrossEntropyTests
{
    /// <summary>Float64 reference written out here: logits = h Wᵀ, mean CE over counted rows, and its gradients
    /// dh = dlogits W, dW = dlogitsᵀ h with dlogits = (softmax − onehot)/N.</summary>
    private static (double Loss, double[] DHidden, double[] DWeight) Reference(float[] h, float[] w, long[] t, int d, int v, long ignore)
    {
        int rows = t.Length, counted = t.Count(x => x != ignore);
        var dh = new double[h.Length];
        var dw = new double[w.Length];
        double total = 0;
        var z = new double[v];
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < v; j++)
            {
                double s = 0;
                for (int k = 0; k < d; k++) s += (double)h[r * d + k] * w[j * d + k];
                z[j] = s;
            }
            if (t[r] == ignore) continue;
            double m = z.Max(), sum = 0;
            foreach (var x in z) sum += Math.Exp(x - m);
            double lse = m + Math.Log(sum);
            total += lse - z[t[r]];
            for (int j = 0; j < v; j++)
            {
                double g = (Math.Exp(z[j] - lse) - (j == t[r] ? 1 : 0)) / counted;
                for (int k = 0; k < d; k++)
                {
                    dh[r * d + k] += g * w[j * d + k];
                    dw[j * d + k] += g * h[r * d + k];
                }
            }
        }
        return (total / counted, dh, dw);
    }

    [Theory]
    [InlineData(1, 4, 5, 0)]      // one row, default chunk
    [InlineData(13, 8, 37, 1)]    // a chunk per row
    [InlineData(13, 8, 37, 5)]    // chunks that do not divide the rows
    [InlineData(24, 16, 300, 0)]
    [InlineData(9, 3, 1000, 4)]
    public void LossAndGradientsMatchTheFloat64Reference(int rows, int d, int v, int chunk)
    {
        using var scope = new TensorScope();
        var rng = new Random(rows * 7 + v + chunk);
        var hidden = GradCheck.Random(rng, 1.5f, rows, d);
        var weight = GradCheck.Random(rng, 1.5f, v, d);
        var t = new long[rows];
        for (int i = 0; i < rows; i++) t[i] = i > 0 && rng.NextDouble() < 0.3 ? -100 : rng.Next(v);
        hidden.RequiresGrad = weight.RequiresGrad = true;
        var loss = F.LinearCrossEntropy(hidden, weight, Tensor.From(t, rows), chunkRows: chunk);
        F.Scale(loss, 2.5f).Backward();      // an upstream factor other than 1 reaches both gradients

        var (refLoss, refDh, refDw) = Reference(hidden.ToFloatArray(), weight.ToFloatArray(), t, d, v, -100);
        Assert.Equal(refLoss, loss.Item(), 2e-5 * Math.Max(1, Math.Abs(refLoss)));
        var dh = hidden.Grad!.ToFloatArray();
        for (int i = 0; i < dh.Length; i++) Assert.Equal(2.5 * refDh[i], dh[i], 2e-5);
        var dw = weight.Grad!.ToFloatArray();
        for (int i = 0; i < dw.Length; i++) Assert.Equal(2.5 * refDw[i], dw[i], 2e-5);
    }

    [Fact]
    public void LeadingAxesAreRowsAndWithoutAGradientNothingIsKept()
    {
        using var scope = new TensorScope();
        var rng = new Random(3);
        var hidden = GradCheck.Random(rng, 1f, 2, 5, 6);
        var weight = GradCheck.Random(rng, 1f, 11, 6);
        var t = new long[10];
        for (int i = 0; i < t.Length; i++) t[i] = rng.Next(11);
        var (refLoss, _, _) = Reference(hidden.ToFloatArray(), weight.ToFloatArray(), t, 6, 11, -100);
        var loss = F.LinearCrossEntropy(hidden, weight, Tensor.From(t, 2, 5), chunkRows: 3);
        Assert.Equal(refLoss, loss.Item(), 2e-5);
        Assert.False(loss.RequiresGrad);   // no input wants a gradient: nothing recorded, no gradient buffers made
    }

    [Fact]
    public void EveryTargetIgnoredGivesNaNAndZeroGradients()
    {
        using var scope = new TensorScope();
        var rng = new Random(4);
        var hidden = GradCheck.Random(rng, 1f, 3, 4);
        var weight = GradCheck.Random(rng, 1f, 5, 4);
        hidden.RequiresGrad = weight.RequiresGrad = true;
        var loss = F.LinearCrossEntropy(hidden, weight, Tensor.From(new long[] { -100, -100, -100 }, 3), chunkRows: 2);
        Assert.True(float.IsNaN(loss.Item()));
        loss.Backward();
        Assert.All(hidden.Grad!.ToFloatArray(), g => Assert.Equal(0f, g));
        Assert.All(weight.Grad!.ToFloatArray(), g => Assert.Equal(0f, g));
    }

    [Fact]
    public void BadShapesAreOneLineErrors()
    {
        using var scope = new TensorScope();
        var weight = Tensor.Zeros(new Shape(5, 4));
        var e = Assert.Throws<ArgumentException>(() => F.LinearCrossEntropy(Tensor.Zeros(new Shape(3, 6)), weight, Tensor.From(new long[3], 3)));
        Assert.Contains("must end in 4 features", e.Message);
        e = Assert.Throws<ArgumentException>(() => F.LinearCrossEntropy(Tensor.Zeros(new Shape(3, 4)), weight, Tensor.From(new long[2], 2)));
        Assert.Contains("targets must have shape [3]", e.Message);
        // The row is counted among all rows, not within a chunk (chunks of 2: row 3 is the second chunk's row 1).
        e = Assert.Throws<ArgumentException>(() => F.LinearCrossEntropy(Tensor.Zeros(new Shape(4, 4)), weight, Tensor.From(new long[] { 0, 1, 2, 5 }, 4), chunkRows: 2));
        Assert.Contains("target 5 at row 3 is outside [0, 5)", e.Message);
    }
}
