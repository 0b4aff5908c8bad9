using Mamba4.Backends;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

public class ElementwiseTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(33)]
    [InlineData(1000)]
    public void ActivationsMatchScalarMath(int n)
    {
        using var scope = new TensorScope();
        var rng = new Random(n);
        var x = GradCheck.Random(rng, 8f, n);
        var xs = x.ToFloatArray();
        var silu = F.SiLU(x).ToFloatArray();
        var gelu = F.Gelu(x).ToFloatArray();
        var sp = F.Softplus(x).ToFloatArray();
        for (int i = 0; i < n; i++)
        {
            double v = xs[i];
            Assert.Equal(v / (1 + Math.Exp(-v)), silu[i], 5e-6 * Math.Max(1, Math.Abs(v)));
            Assert.Equal(0.5 * v * (1 + Erf(v / Math.Sqrt(2))), gelu[i], 5e-6 * Math.Max(1, Math.Abs(v)));
            Assert.Equal(v > 20 ? v : Math.Log(1 + Math.Exp(v)), sp[i], 5e-6 * Math.Max(1, Math.Abs(v)));
        }
    }

    [Fact]
    public void SoftplusIsAccurateForSmallOutputs()
    {
        using var scope = new TensorScope();
        float[] xs = [-6.9f, -10f, -15f, -25f, 25f];
        var y = F.Softplus(Tensor.From(xs, xs.Length)).ToFloatArray();
        for (int i = 0; i < xs.Length; i++)
        {
            double exact = xs[i] > 20 ? xs[i] : Math.Log(1 + Math.Exp(xs[i]));
            Assert.True(Math.Abs(y[i] - exact) <= 2e-6 * Math.Abs(exact), $"softplus({xs[i]}) = {y[i]}, expected {exact}");
        }
    }

    [Theory]
    [InlineData(Activation.SiLU)]
    [InlineData(Activation.Gelu)]
    [InlineData(Activation.Softplus)]
    [InlineData(Activation.Exp)]
    public void ActivationGradients(Activation kind)
    {
        var rng = new Random(1);
        using var x = GradCheck.Random(rng, 3f, 3, 11);
        GradCheck.Check(t => F.Activate(kind, t[0]), [x]);
    }

    [Fact]
    public void AddMulScaleGradients()
    {
        var rng = new Random(2);
        using var a = GradCheck.Random(rng, 1f, 5, 9);
        using var b = GradCheck.Random(rng, 1f, 5, 9);
        GradCheck.Check(t => F.Add(F.Mul(t[0], t[1]), F.Scale(t[0], -1.5f)), [a, b]);
    }

    [Fact]
    public void TensorUsedTwiceReceivesTheSum()
    {
        using var scope = new TensorScope();
        var x = Tensor.From([1f, 2f, 3f], 3);
        x.RequiresGrad = true;
        var y = F.Sum(F.Add(F.Mul(x, x), x)); // Σ x² + x → dx = 2x + 1
        y.Backward();
        Assert.Equal([3f, 5f, 7f], x.Grad!.ToFloatArray());
    }

    [Fact]
    public void AddHandsItsGradientToAnInputWithoutChangingAnyGradient()
    {
        // F.Add's backward gives y's gradient to a (no copy) unless y keeps it: x + x, a kept output, and an input whose
        // taken-over gradient is added to later (a used before the Add) must all still get the exact sums.
        using var scope = new TensorScope();
        var x = Tensor.From([1f, 2f, 3f], 3);
        x.RequiresGrad = true;
        F.Sum(F.Mul(F.Add(x, x), Tensor.From([1f, 10f, 100f], 3))).Backward();
        Assert.Equal([2f, 20f, 200f], x.Grad!.ToFloatArray());

        var a = Tensor.From([1f, -2f], 2);
        var b = Tensor.From([0.5f, 4f], 2);
        a.RequiresGrad = b.RequiresGrad = true;
        var c = Tensor.From([3f, 5f], 2);
        var y = F.Add(a, F.Mul(a, b));   // a + a·b
        y.RetainGrad = true;
        F.Sum(F.Mul(y, c)).Backward();   // dy = c, da = c·(1 + b), db = c·a
        Assert.Equal([3f, 5f], y.Grad!.ToFloatArray());
        Assert.Equal([4.5f, 25f], a.Grad!.ToFloatArray());
        Assert.Equal([3f, -10f], b.Grad!.ToFloatArray());

        var p = Tensor.From([2f, 3f], 2);
        p.RequiresGrad = true;
        F.Sum(F.Mul(F.Add(p, F.Mul(p, p)), c)).Backward();   // not kept: da = c·(1 + 2p)
        Assert.Equal([15f, 35f], p.Grad!.ToFloatArray());
    }

    [Fact]
    public void GradientsAccumulateAcrossBackwardCalls()
    {
        using var scope = new TensorScope();
        var x = Tensor.From([1f, -2f], 2);
        x.RequiresGrad = true;
        F.Sum(F.Scale(x, 3f)).Backward();
        F.Mean(x).Backward();
        Assert.Equal([3.5f, 3.5f], x.Grad!.ToFloatArray());
    }

    [Fact]
    public void MeanAndSumRowsGradients()
    {
        var rng = new Random(3);
        using var x = GradCheck.Random(rng, 1f, 4, 3, 5);
        GradCheck.Check(t => F.SumRows(t[0]), [x]);
        GradCheck.Check(t => F.Mean(t[0]).Reshape(1), [x]);
    }

    [Fact]
    public void SliceAndReshapeGradients()
    {
        var rng = new Random(4);
        using var x = GradCheck.Random(rng, 1f, 6, 4);
        GradCheck.Check(t => F.SiLU(t[0].Slice(2, 3).Reshape(12)), [x]);
    }

    /// <summary>erf by its Maclaurin series / continued fraction in double (independent of the kernel's approximation).</summary>
    internal static double Erf(double x)
    {
        double ax = Math.Abs(x);
        double r;
        if (ax < 3)
        {
            double term = ax, sum = ax;
            for (int n = 1; n < 200; n++)
            {
                term *= -ax * ax / n;
                sum += term / (2 * n + 1);
                if (Math.Abs(term) < 1e-17) break;
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // erfc continued fraction (Lentz), converges fast for x ≥ 3
            double f = ax, c = ax, d = 0;
            for (int n = 1; n < 200; n++)
            {
                double an = n / 2.0;
                d = ax + an * d; d = 1 / d;
                c = ax + an / c;
                double delta = c * d;
                f *= delta;
                if (Math.Abs(delta - 1) < 1e-16) break;
            }
            r = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f;
        }
        return x < 0 ? -r : r;
    }
}
