namespace Mamba4.Training;

/// <summary>Linear warm-up to the peak rate, then cosine decay to <c>minRatio</c>·peak at the last step.</summary>
public sealed record WarmupCosine(float Peak, long WarmupSteps, long TotalSteps, float MinRatio = 0.1f)
{
    public float At(long step)
    {
        if (step < WarmupSteps) return Peak * (step + 1) / WarmupSteps;
        double progress = Math.Clamp((step - WarmupSteps) / (double)Math.Max(1, TotalSteps - WarmupSteps), 0, 1);
        return (float)(Peak * (MinRatio + (1 - MinRatio) * 0.5 * (1 + Math.Cos(Math.PI * progress))));
    }
}
