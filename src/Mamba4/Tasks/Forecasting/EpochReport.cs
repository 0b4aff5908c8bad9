namespace Mamba4.Tasks.Forecasting;

/// <summary>Validation of one epoch.</summary>
public sealed record EpochReport(int Epoch, double Mse, double Mae, bool Improved, double TrainSeconds);
