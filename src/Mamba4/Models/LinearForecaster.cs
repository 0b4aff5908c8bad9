using Mamba4.Data.TimeSeries;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Models;

/// <summary>
/// DLinear (Zeng et al., "Are Transformers Effective for Time Series Forecasting?", AAAI 2023), individual = false:
/// every variable's input window x (length L) is split into a trend — a moving average of kernel k with
/// the ends padded by repeating the first and last values — and the seasonal rest, and each part gets one
/// linear map to the horizon shared by all variables:
/// <code>
/// trend    = x Mᵀ,   M[t, clamp(t + j, 0, L − 1)] += 1/k  for j = −(k−1)/2 … (k−1)/2     (B·N, L)
/// seasonal = x − trend
/// y        = Linear_Seasonal(seasonal) + Linear_Trend(trend)                          (B·N, H) → (B, N, H)
/// </code>
/// Parameter names as the reference code. RevIN is off unless the configuration asks for it.
/// </summary>
public sealed class LinearForecaster : Forecaster
{
    private readonly Tensor _movingAverage;

    public LinearForecaster(ForecasterConfig config, int seed = 0) : base(config)
    {
        var rng = new Random(seed);
        LinearSeasonal = Child("Linear_Seasonal", new Nn.Linear(config.InputLength, config.Horizon, true, rng));
        LinearTrend = Child("Linear_Trend", new Nn.Linear(config.InputLength, config.Horizon, true, rng));
        _movingAverage = Tensor.From(MovingAverageMatrix(config.InputLength, config.MovingAverage), config.InputLength, config.InputLength).Persist();
    }

    public Nn.Linear LinearSeasonal { get; }
    public Nn.Linear LinearTrend { get; }
    public override bool VariableMajor => true;

    /// <summary>M [L, L]: trend = M x for one variable's window x.</summary>
    public static float[] MovingAverageMatrix(int l, int kernel)
    {
        var m = new float[l * l];
        int half = (kernel - 1) / 2;
        for (int t = 0; t < l; t++)
            for (int j = -half; j <= half; j++) m[t * l + Math.Clamp(t + j, 0, l - 1)] += 1f / kernel;
        return m;
    }

    public override Tensor Forward(ForecastBatch batch)
    {
        CheckBatch(batch);
        int b = batch.Size, l = batch.InputLength, n = batch.Variables;
        RevIn? stats = null;
        var x = batch.Inputs;
        if (Config.RevIn) (stats, x) = RevIn.Apply(x, b, l, n);
        var series = Tensor.From(Transpose(x, b, l, n), b * n, l);              // one row per (window, variable)
        var trend = F.MatMul(series, _movingAverage, transB: true);
        var seasonal = F.Add(series, F.Scale(trend, -1f));
        var y = F.Add(LinearSeasonal.Forward(seasonal), LinearTrend.Forward(trend)).Reshape(b, n, Config.Horizon);
        return stats is null ? y : stats.Denormalize(y, Config.Horizon, variableMajor: true);
    }

    public override void Dispose()
    {
        _movingAverage.Dispose();
        base.Dispose();
    }
}
