namespace Mamba4.Tasks.Recommendation;

/// <summary>What one epoch's validation gave.</summary>
public sealed record RecEpochReport(int Epoch, int Epochs, double Loss, IReadOnlyDictionary<string, double> Valid, double BestNdcg, int BestEpoch,
    int EpochsWithoutImprovement, double SecondsThisEpoch, double SecondsPerEpoch);
