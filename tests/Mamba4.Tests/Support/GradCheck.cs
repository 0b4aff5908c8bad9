using Mamba4.Autograd;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// Central finite differences against the tape's gradients. The loss is L = Σ w ⊙ f(inputs) with a
/// fixed random w, accumulated in double; each input element is nudged by ±eps (in float32).
/// </summary>
public static class GradCheck
{
    public static Tensor Random(Random rng, float scale, params int[] shape)
    {
        var n = (int)new Shape(shape).NumElements;
        var data = new float[n];
        for (int i = 0; i < n; i++) data[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return Tensor.From(data, shape);
    }

    /// <summary>
    /// A double-precision reference backward against central differences (±1e-6) of <paramref name="loss"/>, which
    /// recomputes the forward from the inputs as they are: every element of every input whose gradient is given must
    /// match within 1e-7 + 1e-6·|numeric|. An input and its gradient are both null (an absent optional input) or neither.
    /// </summary>
    public static void ReferenceBackward(Func<double> loss, IEnumerable<(string Name, Tensor? Input, Tensor? Grad)> pairs)
    {
        const double eps = 1e-6;
        foreach (var (name, input, grad) in pairs)
        {
            Assert.Equal(input is null, grad is null);
            if (input is null) continue;
            var analytic = grad!.ToDoubleArray();
            var x = input.AsSpan<double>();
            for (int i = 0; i < x.Length; i++)
            {
                double orig = x[i];
                x[i] = orig + eps;
                double plus = loss();
                x[i] = orig - eps;
                double minus = loss();
                x[i] = orig;
                double numeric = (plus - minus) / (2 * eps);
                Assert.True(Math.Abs(numeric - analytic[i]) <= 1e-7 + 1e-6 * Math.Abs(numeric),
                    $"d{name}[{i}]: reference backward {analytic[i]:G10}, finite difference {numeric:G10}");
            }
        }
    }

    /// <summary>Asserts that every input's tape gradient matches finite differences within atol + rtol·|g|.</summary>
    public static void Check(Func<Tensor[], Tensor> f, Tensor[] inputs, double eps = 1e-2, double atol = 2e-3, double rtol = 2e-2, int seed = 7, int maxChecksPerInput = 64)
    {
        var rng = new Random(seed);
        double[] weights;
        float[][] analytic;
        using (var scope = new TensorScope())
        {
            foreach (var t in inputs) t.RequiresGrad = true;
            var y = f(inputs);
            weights = Enumerable.Range(0, (int)y.NumElements).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
            using var w = Tensor.From(weights.Select(v => (float)v).ToArray(), y.Shape.ToArray());
            var loss = F.Sum(F.Mul(y, w));
            loss.Backward();
            analytic = inputs.Select(t => t.Grad?.ToFloatArray() ?? new float[t.NumElements]).ToArray();
            foreach (var t in inputs) { t.Grad?.Dispose(); t.Grad = null; t.RequiresGrad = false; }
        }

        double Loss()
        {
            using var scope = new TensorScope();
            using var _ = GradMode.NoGrad();
            var y = f(inputs).ToFloatArray();
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += weights[i] * y[i];
            return s;
        }

        for (int k = 0; k < inputs.Length; k++)
        {
            var t = inputs[k];
            if (!t.DType.IsFloatingPoint()) continue;
            var span = t.AsSpan<float>();
            var indices = Enumerable.Range(0, span.Length).OrderBy(_ => rng.Next()).Take(maxChecksPerInput).ToArray();
            foreach (var i in indices)
            {
                float orig = span[i];
                span[i] = orig + (float)eps;
                double plus = Loss();
                span[i] = orig - (float)eps;
                double minus = Loss();
                span[i] = orig;
                double numeric = (plus - minus) / (2 * eps);
                double a = analytic[k][i];
                Assert.True(Math.Abs(numeric - a) <= atol + rtol * Math.Abs(numeric),
                    $"input {k} ({t.Name ?? "unnamed"}{t.Shape}) element {i}: tape {a:G6}, finite difference {numeric:G6}");
            }
        }
    }
}
