namespace Mamba4.Autograd;

/// <summary>Whether ops record tape nodes on this thread. <c>using (GradMode.NoGrad()) { ... }</c></summary>
public static class GradMode
{
    [ThreadStatic] private static int _disabledDepth;

    public static bool IsEnabled => _disabledDepth == 0;

    /// <summary>Ops inside run without recording (inference, evaluation, optimizer updates).</summary>
    public static Restore NoGrad()
    {
        var restore = new Restore(_disabledDepth);
        _disabledDepth++;
        return restore;
    }

    /// <summary>Ops inside record again, even within <see cref="NoGrad"/> (torch.enable_grad): a checkpointed segment's rerun
    /// during the backward.</summary>
    public static Restore EnableGrad()
    {
        var restore = new Restore(_disabledDepth);
        _disabledDepth = 0;
        return restore;
    }

    public readonly struct Restore(int depth) : IDisposable
    {
        public void Dispose() => _disabledDepth = depth;
    }
}
