using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Data.TimeSeries;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tasks.Forecasting;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>The forecasting models: non-causal attention, DLinear's decomposition, RevIN, gradients, streaming.</summary>
public class ForecastModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-fmodel-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ForecastBatch RandomBatch(Random rng, int b, int l, int h, int n, int f = 0)
    {
        float[] R(int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        return new ForecastBatch(b, l, h, n, f, R(b * l * n), f > 0 ? R(b * l * f) : null, R(b * h * n));
    }

    [Fact]
    public void NonCausalAttentionMatchesTheFullSoftmaxReference()
    {
        var rng = new Random(3);
        foreach (var (b, l, heads, d) in new[] { (2, 7, 2, 4), (1, 11, 1, 8), (3, 20, 4, 5) })
        {
            int w = heads * d;
            using var scope = new TensorScope();
            var q = GradCheck.Random(rng, 1f, b, l, w);
            var k = GradCheck.Random(rng, 1f, b, l, w);
            var v = GradCheck.Random(rng, 1f, b, l, w);
            using var _ = GradMode.NoGrad();
            var y = F.Attention(q, k, v, new AttentionSpec(heads, Causal: false)).ToFloatArray();
            var expected = Reference(q.ToDoubleArray(), k.ToDoubleArray(), v.ToDoubleArray(), b, l, heads, d);
            for (int i = 0; i < y.Length; i++) Assert.Equal(expected[i], y[i], 1e-5);
        }
    }

    /// <summary>softmax over all L keys, no mask.</summary>
    private static double[] Reference(double[] q, double[] k, double[] v, int b, int l, int heads, int d)
    {
        int w = heads * d;
        var y = new double[b * l * w];
        for (int bb = 0; bb < b; bb++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < l; i++)
                {
                    var s = new double[l];
                    for (int j = 0; j < l; j++)
                    {
                        for (int c = 0; c < d; c++) s[j] += q[(bb * l + i) * w + h * d + c] * k[(bb * l + j) * w + h * d + c];
                        s[j] /= Math.Sqrt(d);
                    }
                    double m = s.Max(), z = s.Sum(x => Math.Exp(x - m));
                    for (int j = 0; j < l; j++)
                        for (int c = 0; c < d; c++) y[(bb * l + i) * w + h * d + c] += Math.Exp(s[j] - m) / z * v[(bb * l + j) * w + h * d + c];
                }
        return y;
    }

    [Fact]
    public void NonCausalAttentionGradientsMatchFiniteDifferences()
    {
        var rng = new Random(5);
        var q = GradCheck.Random(rng, 1f, 2, 6, 8);
        var k = GradCheck.Random(rng, 1f, 2, 6, 8);
        var v = GradCheck.Random(rng, 1f, 2, 6, 8);
        GradCheck.Check(x => F.Attention(x[0], x[1], x[2], new AttentionSpec(2, Causal: false)), [q, k, v]);
    }

    [Fact]
    public void DLinearDecompositionIsTheReplicatePaddedMovingAverage()
    {
        const int l = 12, k = 5;
        var m = LinearForecaster.MovingAverageMatrix(l, k);
        var rng = new Random(1);
        var x = Enumerable.Range(0, l).Select(_ => rng.NextDouble()).ToArray();
        // Reference: pad (k−1)/2 copies of the first and last values, average pool of kernel k, stride 1.
        var padded = Enumerable.Repeat(x[0], 2).Concat(x).Concat(Enumerable.Repeat(x[^1], 2)).ToArray();
        for (int t = 0; t < l; t++)
        {
            double expected = padded.Skip(t).Take(k).Average(), got = 0;
            for (int s = 0; s < l; s++) got += m[t * l + s] * x[s];
            Assert.Equal(expected, got, 6);
        }
    }

    [Fact]
    public void DLinearOutputIsSeasonalPlusTrendMaps()
    {
        var config = new ForecasterConfig { Model = "linear", InputLength = 8, Horizon = 3, Variables = 2, RevIn = false, MovingAverage = 3 };
        using var model = new LinearForecaster(config, seed: 2);
        var batch = RandomBatch(new Random(4), 2, 8, 3, 2);
        var y = model.Predict(batch);   // time-major [B, H, N]
        var m = LinearForecaster.MovingAverageMatrix(8, 3);
        float[] ws = model.LinearSeasonal.Weight.ToFloatArray(), bs = model.LinearSeasonal.Bias!.ToFloatArray();
        float[] wt = model.LinearTrend.Weight.ToFloatArray(), bt = model.LinearTrend.Bias!.ToFloatArray();
        for (int b = 0; b < 2; b++)
            for (int v = 0; v < 2; v++)
            {
                var x = Enumerable.Range(0, 8).Select(t => (double)batch.Inputs[(b * 8 + t) * 2 + v]).ToArray();
                var trend = Enumerable.Range(0, 8).Select(t => Enumerable.Range(0, 8).Sum(s => m[t * 8 + s] * x[s])).ToArray();
                for (int h = 0; h < 3; h++)
                {
                    double e = bs[h] + bt[h];
                    for (int t = 0; t < 8; t++) e += ws[h * 8 + t] * (x[t] - trend[t]) + wt[h * 8 + t] * trend[t];
                    Assert.Equal(e, y[(b * 3 + h) * 2 + v], 5);
                }
            }
    }

    [Fact]
    public void RevInMakesTheForecastFollowShiftAndScale()
    {
        // With RevIN, a window shifted by c and scaled by s gives a forecast shifted by c and scaled by s.
        foreach (var model in new Forecaster[]
        {
            new MambaForecaster(new ForecasterConfig { InputLength = 16, Horizon = 4, Variables = 3, DModel = 16, Layers = 1, DState = 4, DFf = 16 }, 1),
            new TransformerForecaster(new ForecasterConfig { Model = "transformer", InputLength = 16, Horizon = 4, Variables = 3, DModel = 16, Layers = 1, Heads = 2, DFf = 16 }, 1),
            new LinearForecaster(new ForecasterConfig { Model = "linear", InputLength = 16, Horizon = 4, Variables = 3, RevIn = true }, 1),
        })
            using (model)
            {
                var batch = RandomBatch(new Random(2), 2, 16, 4, 3);
                var moved = new ForecastBatch(2, 16, 4, 3, 0, batch.Inputs.Select(x => 3 * x + 5).ToArray(), null, null);
                var a = model.Predict(batch);
                var b = model.Predict(moved);
                for (int i = 0; i < a.Length; i++) Assert.Equal(3.0 * a[i] + 5, (double)b[i], 2e-3);
            }
    }

    [Theory]
    [InlineData("mamba", "variate", 0, false)]
    [InlineData("mamba", "variate", 4, true)]
    [InlineData("mamba", "temporal", 4, false)]
    [InlineData("transformer", "variate", 4, false)]
    [InlineData("transformer", "temporal", 0, false)]
    [InlineData("linear", "variate", 0, false)]
    public void LossGradientsMatchFiniteDifferences(string kind, string embedding, int timeFeatures, bool bidirectional)
    {
        var config = new ForecasterConfig
        {
            Model = kind, Embedding = embedding, InputLength = 10, Horizon = 3, Variables = 2, TimeFeatures = timeFeatures,
            DModel = 8, Layers = 2, DState = 4, DConv = 2, Expand = 2, DFf = 8, Heads = 2, Dropout = 0, RevIn = kind != "linear",
            Bidirectional = bidirectional,
        };
        using var model = Forecaster.Create(config, seed: 3);
        if (bidirectional) Assert.All(((MambaForecaster)model).Layers.Items, l => Assert.NotNull(l.MambaReverse));
        var batch = RandomBatch(new Random(7), 2, 10, 3, 2, timeFeatures);
        Dictionary<string, float[]> analytic;
        using (var scope = new TensorScope())
        {
            model.ZeroGrad();
            model.Loss(batch).Backward();
            analytic = model.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor.Grad?.ToFloatArray() ?? new float[p.Tensor.NumElements]);
            model.ZeroGrad();
        }
        double Loss()
        {
            using var scope = new TensorScope();
            using var _ = GradMode.NoGrad();
            return model.Loss(batch).Item();
        }
        var rng = new Random(1);
        int checkedCount = 0;
        foreach (var (name, p) in model.NamedParameters())
        {
            var span = p.AsSpan<float>();
            foreach (int i in Enumerable.Range(0, span.Length).OrderBy(_ => rng.Next()).Take(3))
            {
                float orig = span[i];
                const float eps = 1e-2f;
                span[i] = orig + eps; double plus = Loss();
                span[i] = orig - eps; double minus = Loss();
                span[i] = orig;
                double numeric = (plus - minus) / (2 * eps), a = analytic[name][i];
                Assert.True(Math.Abs(numeric - a) <= 2e-3 + 5e-2 * Math.Abs(numeric), $"{kind}/{embedding}{(bidirectional ? "/bidirectional" : "")} {name}[{i}]: tape {a:G5}, finite difference {numeric:G5}");
                checkedCount++;
            }
        }
        Assert.True(checkedCount > 10);
    }

    [Fact]
    public void StreamingEqualsFullRecomputeAfterEveryObservation()
    {
        var config = new ForecasterConfig
        {
            Model = "mamba", Embedding = "temporal", RevIn = false, InputLength = 16, Horizon = 5, Variables = 3, TimeFeatures = 4,
            DModel = 16, Layers = 2, DState = 8, DConv = 4, Expand = 2, DFf = 32, Dropout = 0.1f,
        };
        using var model = new MambaForecaster(config, seed: 4);
        Assert.True(model.CanStream);
        var rng = new Random(9);
        int rows = 150, n = 3, f = 4;
        var values = Enumerable.Range(0, rows * n).Select(i => (float)(Math.Sin(i * 0.07) + 0.3 * rng.NextDouble())).ToArray();
        var marks = Enumerable.Range(0, rows * f).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        using var stream = model.Stream();
        double worst = 0;
        for (int t = 1; t <= rows; t++)
        {
            stream.Observe(values.AsSpan((t - 1) * n, n), marks.AsSpan((t - 1) * f, f));
            if (t % 7 != 1 && t != rows) continue;   // recompute is O(t); check a spread of lengths
            var step = stream.Forecast();
            var full = model.ForecastHistory(values[..(t * n)], marks[..(t * f)]);
            Assert.Equal(full.Length, step.Length);
            for (int i = 0; i < full.Length; i++) worst = Math.Max(worst, Math.Abs(full[i] - step[i]) / (1 + Math.Abs(full[i])));
        }
        Assert.True(worst < 1e-4, $"stream vs recompute: max relative difference {worst:G3}");
        Assert.Equal(rows, stream.Observations);
    }

    [Fact]
    public void StreamingEvaluationScoresTheSameWindows()
    {
        var config = new ForecasterConfig { Embedding = "temporal", RevIn = false, InputLength = 12, Horizon = 4, Variables = 2, DModel = 8, Layers = 1, DState = 4, DFf = 8 };
        using var model = new MambaForecaster(config, seed: 1);
        var rng = new Random(3);
        var z = Enumerable.Range(0, 60 * 2).Select(_ => (float)rng.NextDouble()).ToArray();
        // A range starting at row 0 holding one window: the stream has read exactly that window's input rows.
        var one = new RowRange(0, 16);
        var windowed = ForecastEvaluation.Evaluate(model, new WindowSet(z, 2, null, 0, one, 12, 4));
        var streamed = ForecastEvaluation.EvaluateStreaming(model, z, null, one);
        Assert.Equal(windowed.Mse, streamed.Mse, 5);
        Assert.Equal(windowed.Mae, streamed.Mae, 5);
        // Later windows: the streamed forecasts have read more history, so they differ, over the same count of windows.
        var later = ForecastEvaluation.EvaluateStreaming(model, z, null, new RowRange(30, 60));
        Assert.True(double.IsFinite(later.Mse) && later.Mse != ForecastEvaluation.Evaluate(model, new WindowSet(z, 2, null, 0, new RowRange(30, 60), 12, 4)).Mse);
    }

    [Fact]
    public void ModelsThatCannotStreamSaySo()
    {
        using var variate = new MambaForecaster(new ForecasterConfig { InputLength = 8, Horizon = 2, Variables = 2, DModel = 8, Layers = 1, DState = 4, DFf = 8 });
        Assert.False(variate.CanStream);
        Assert.Contains("--embedding temporal", Assert.Throws<InvalidOperationException>(() => variate.Stream()).Message);
        using var revin = new MambaForecaster(new ForecasterConfig { Embedding = "temporal", RevIn = true, InputLength = 8, Horizon = 2, Variables = 2, DModel = 8, Layers = 1, DState = 4, DFf = 8 });
        Assert.False(revin.CanStream);
    }

    [Fact]
    public void SavedForecasterRoundTripsWeightsNormalisationAndTimestamps()
    {
        var table = SyntheticSeries.Generate(rows: 600);
        var data = ForecastData.Prepare(table, "ratio", 24, 6, timeFeatures: true);
        var config = ForecastDefaults.Config("mamba", 24, 6, data.Variables, data.MarkFeatures) with { DModel = 16, DFf = 16, Layers = 1 };
        using var model = Forecaster.Create(config, seed: 2);
        var dir = Path.Combine(_dir, "model");
        SavedForecaster.Save(dir, model, data);
        using var saved = SavedForecaster.Load(dir);
        Assert.Equal(config, saved.Config);
        Assert.Equal(data.Normalizer.Mean, saved.Normalizer.Mean);
        Assert.Equal(table.Columns, saved.Columns);
        var batch = data.Test.Batch(0, 5);
        Assert.Equal(model.Predict(batch), saved.Model.Predict(batch));
        // The forecast after the series' end: original units, hourly timestamps continuing the series.
        var p = saved.Forecast(table);
        Assert.Equal(6, p.Steps);
        Assert.Equal(table.Timestamps![^1].AddHours(1), p.Timestamps![0]);
        Assert.Equal(table.Timestamps[^1].AddHours(6), p.Timestamps[^1]);
        var last = new ForecastBatch(1, 24, 6, 3, data.MarkFeatures, data.Normalized[((600 - 24) * 3)..], data.Marks![((600 - 24) * data.MarkFeatures)..], null);
        var z = model.Predict(last);
        for (int i = 0; i < z.Length; i++) Assert.Equal(data.Normalizer.Denormalize(z[i], i % 3), p.Values[i], 4);
    }

    [Fact]
    public void SavedForecasterRefusesValuesItCannotReadNamingFileLineAndColumnAndNeverReturnsANonFiniteForecast()
    {
        var table = SyntheticSeries.Generate(rows: 300);
        var data = ForecastData.Prepare(table, "ratio", 24, 6, timeFeatures: false);
        var config = ForecastDefaults.Config("mamba", 24, 6, 3, 0) with { DModel = 8, DFf = 8, Layers = 1, Embedding = "temporal", RevIn = false };
        using (var model = Forecaster.Create(config))
        {
            // Weights that overflow float32 on an input 10⁵ standard deviations out, well inside the value bound.
            var (_, weight) = model.NamedParameters().Single(p => p.Name == "embedding.weight");
            weight.CopyFrom(Tensor.From(weight.ToFloatArray().Select(w => w * 1e8f).ToArray(), weight.Shape.ToArray()));
            SavedForecaster.Save(Path.Combine(_dir, "model"), model, data);
        }
        using var saved = SavedForecaster.Load(Path.Combine(_dir, "model"));
        double mean = saved.Normalizer.Mean[1], std = saved.Normalizer.Std[1];
        Assert.Null(saved.ValueProblem(mean + 0.999e6 * std, 1));
        Assert.Null(saved.ValueProblem(mean - 0.999e6 * std, 1));
        Assert.NotNull(saved.ValueProblem(mean + 1.001e6 * std, 1));
        Assert.NotNull(saved.ValueProblem(double.MaxValue, 1));

        string Csv(double temperature, int row)
        {
            // A blank line before the data: row r is line r + 3 of the file.
            var lines = new List<string> { "date,load,temperature,price", "" };
            for (int r = 0; r < 30; r++)
                lines.Add(FormattableString.Invariant($"{table.Timestamps![r]:yyyy-MM-dd HH:mm:ss},{table[r, 0]:R},{(r == row ? temperature : table[r, 1]):R},{table[r, 2]:R}"));
            var path = Path.Combine(_dir, $"t{row}.csv");
            File.WriteAllLines(path, lines);
            return path;
        }
        var huge = saved.ReadCsv(Csv(3.5e38, row: 2));
        foreach (var stream in new[] { false, true })
        {
            var e = Assert.Throws<InvalidDataException>(() => saved.Forecast(huge, stream));
            Assert.StartsWith($"{huge.Source}:5: column 'temperature': 3.5E+38 is ", e.Message);
        }
        var overflowing = saved.ReadCsv(Csv(mean + 1e5 * std, row: 29));   // the last row: in the window and the stream's last step
        foreach (var stream in new[] { false, true })
            Assert.Contains("the forecast is not finite", Assert.Throws<InvalidDataException>(() => saved.Forecast(overflowing, stream)).Message);
    }
}
