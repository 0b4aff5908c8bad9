namespace Mamba4.Tasks.Recommendation;

public sealed record RecTrainResult(int EpochsRun, int BestEpoch, bool EarlyStopped, bool Interrupted, double Seconds, double SecondsPerEpoch,
    double TrainSecondsPerEpoch, IReadOnlyDictionary<string, double> Valid, IReadOnlyDictionary<string, double> Test, long PeakBytes,
    double InferenceMsPerBatch);
