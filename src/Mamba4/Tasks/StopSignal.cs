using System.Runtime.InteropServices;

namespace Mamba4.Tasks;

/// <summary>
/// Ctrl-C (SIGINT) and SIGTERM turned into a request to stop at the next step boundary, where the run writes a
/// checkpoint and returns; the process is not killed. One per run, disposed when the run ends.
/// </summary>
public sealed class StopSignal : IDisposable
{
    private readonly PosixSignalRegistration _sigint, _sigterm;
    private volatile bool _requested;

    public StopSignal()
    {
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle);
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle);
    }

    public bool Requested => _requested;

    private void Handle(PosixSignalContext context)
    {
        context.Cancel = true;
        _requested = true;
    }

    public void Dispose()
    {
        _sigint.Dispose();
        _sigterm.Dispose();
    }
}
