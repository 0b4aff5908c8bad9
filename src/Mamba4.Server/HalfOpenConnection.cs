using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace Mamba4.Server;

/// <summary>
/// A Kestrel connection that a client's FIN does not close. A client may send its request and shut down its
/// sending side (socket.shutdown(SHUT_WR); RFC 9112: a half-close neither ends a request nor says the client
/// has lost interest in the response), but Kestrel dropped the response twice over: its request-body
/// reader refuses a body whose last bytes came with the FIN ("unexpected end of request content", 400 and a
/// reset), and its socket transport fires ConnectionClosed at the FIN, which aborts the request and its output.
/// Here the end of input is reported only once the reader has seen the bytes before it, and ConnectionClosed
/// never fires: a client that really went away is noticed when a send to it fails (Kestrel's response writer
/// then aborts the request): for a stream, within a token or two; a non-streaming completion runs to its end
/// or to --timeout.
/// </summary>
internal sealed class HalfOpenConnection : ConnectionContext
{
    private readonly ConnectionContext _inner;

    private HalfOpenConnection(ConnectionContext inner)
    {
        _inner = inner;
        Transport = new Pipe(new PatientReader(inner.Transport.Input), inner.Transport.Output);
    }

    /// <summary>Kestrel connection middleware: every connection of the endpoint goes on as a <see cref="HalfOpenConnection"/>.</summary>
    public static Func<ConnectionDelegate, ConnectionDelegate> Middleware => next => connection => next(new HalfOpenConnection(connection));

    public override IDuplexPipe Transport { get; set; }
    /// <summary>Never fires: Kestrel's response writer aborts the request when a send fails (the transport completes the output pipe).</summary>
    public override CancellationToken ConnectionClosed { get => CancellationToken.None; set => throw new NotSupportedException(); }
    public override string ConnectionId { get => _inner.ConnectionId; set => _inner.ConnectionId = value; }
    public override IFeatureCollection Features => _inner.Features;
    public override IDictionary<object, object?> Items { get => _inner.Items; set => _inner.Items = value; }
    public override EndPoint? LocalEndPoint { get => _inner.LocalEndPoint; set => _inner.LocalEndPoint = value; }
    public override EndPoint? RemoteEndPoint { get => _inner.RemoteEndPoint; set => _inner.RemoteEndPoint = value; }
    public override void Abort(ConnectionAbortedException abortReason) => _inner.Abort(abortReason);
    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;   // Kestrel disposes the inner connection

    private sealed record Pipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;

    /// <summary>
    /// The input pipe; an end of input that comes with unread bytes is held back for one read of them (per
    /// buffer length, and lengths only shrink once the input has ended, so a reader that wants more than
    /// there is sees the end on its next read).
    /// </summary>
    private sealed class PatientReader(PipeReader inner) : PipeReader
    {
        private long _heldAt = -1;

        public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);
        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);
        public override void CancelPendingRead() => inner.CancelPendingRead();
        public override void Complete(Exception? exception = null) => inner.Complete(exception);
        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            var read = inner.ReadAsync(cancellationToken);
            if (read.IsCompletedSuccessfully) return new(Hold(read.Result));
            return Await(read);
            async ValueTask<ReadResult> Await(ValueTask<ReadResult> pending) => Hold(await pending);
        }

        public override bool TryRead(out ReadResult result)
        {
            if (!inner.TryRead(out result)) return false;
            result = Hold(result);
            return true;
        }

        private ReadResult Hold(ReadResult result)
        {
            if (!result.IsCompleted || result.Buffer.IsEmpty || result.Buffer.Length == _heldAt) return result;
            _heldAt = result.Buffer.Length;
            return new ReadResult(result.Buffer, result.IsCanceled, isCompleted: false);
        }
    }
}
