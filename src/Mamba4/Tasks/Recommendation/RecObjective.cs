namespace Mamba4.Tasks.Recommendation;

/// <summary>The training objective: one causal forward per user (every position a target), or RecBole's prefix samples.</summary>
public enum RecObjective { AllPositions, RecBole }
