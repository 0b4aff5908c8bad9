namespace Mamba4.Tasks.Forecasting;

/// <summary>Test metrics (normalised scale, every test window) and what the run took.</summary>
public sealed record ForecastResult(
    double Mse, double Mae, double ValidationMse, double ValidationMae, int Epochs, int BestEpoch,
    double SecondsPerEpoch, double Seconds, long Parameters, bool EarlyStopped, bool Interrupted);
