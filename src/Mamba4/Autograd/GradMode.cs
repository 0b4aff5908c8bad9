namespace Mamba4.Autograd;

/// <summary>Whether ops record tape nodes on this thread. <c>using (GradMode.NoGrad()) { ... }</c></summary>
public static class GradMode
{
    [ThreadStatic] private static int _disabledDepth;

    public static bool IsEnabled => _disabledDepth == 0;

    /// <summary>Ops inside run without recording (inference, evaluation, optimizer updates).</summary>
    public static Restore NoGrad()
    {
        _disabledDepth++;
        return new Restore(-1);
    }

    /// <summary>Ops inside record again, even within <see cref="NoGrad"/> (torch.enable_grad): a checkpointed segment's rerun
    /// during the backward.</summary>
    public static Restore EnableGrad()
    {
        var restore = new Restore(_disabledDepth);
        _disabledDepth = 0;
        return restore;
    }

    /// <summary>Ends a <see cref="NoGrad"/> (one level less, as counted) or an <see cref="EnableGrad"/> (the depth it saved).</summary>
    public readonly struct Restore(int savedDepth) : IDisposable
    {
        public void Dispose() => _disabledDepth = savedDepth < 0 ? _disabledDepth - 1 : savedDepth;
    }
}
