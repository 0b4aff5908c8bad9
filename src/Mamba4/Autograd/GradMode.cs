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
        return new Restore();
    }

    public readonly struct Restore : IDisposable
    {
        public void Dispose() => _disabledDepth--;
    }
}
