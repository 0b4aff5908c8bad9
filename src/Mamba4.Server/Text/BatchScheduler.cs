using System.Diagnostics;
using System.Threading.Channels;
using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Server.Text;

/// <summary>What a stream hands back to its HTTP request: one token, or the end (with why).</summary>
public readonly record struct StreamEvent(long Token, string? FinishReason);

/// <summary>One completion being decoded: its prompt, sampling, limits, and the channel its tokens go to.</summary>
public sealed class TextStream
{
    public TextStream(long[] prompt, SamplingOptions options, int maxTokens, IReadOnlySet<long>? stopTokenIds, CancellationToken cancel)
    {
        Prompt = prompt;
        Options = options;
        MaxTokens = maxTokens;
        StopTokenIds = stopTokenIds;
        Cancel = cancel;
        Rng = new Random(options.Seed);
        // Only the repetition penalty reads the history; without it the stream keeps no growing list.
        History = options.RepetitionPenalty != 1f ? new List<long>(prompt) : [];
    }

    public long[] Prompt { get; }
    public SamplingOptions Options { get; }
    public int MaxTokens { get; }
    public IReadOnlySet<long>? StopTokenIds { get; }
    public CancellationToken Cancel { get; }
    public Channel<StreamEvent> Events { get; } = Channel.CreateUnbounded<StreamEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    internal Random Rng { get; }
    internal List<long> History { get; }
    internal int Generated { get; set; }
    internal long Pending { get; set; }
    internal long EnqueuedAt { get; } = Stopwatch.GetTimestamp();
    internal long LastTokenAt { get; set; }
    /// <summary>Why its next token could not be chosen (then it ends with a 500 error).</summary>
    internal Exception? Failure { get; set; }
}

/// <summary>
/// Continuous batching. One loop owns a batched <see cref="MambaState"/> with <c>capacity</c> slots; the
/// active streams occupy slots [0, n). A new stream is prefilled alone with the parallel path (its state
/// lands in a batch-1 state), its first token is sampled from the prefill's last logits, then its state is
/// copied into slot n. Every step advances all n streams by one token with one batched
/// <see cref="MambaLM.Step(Tensor, MambaState)"/> over the view [0, n); between two steps at most <see cref="PrefillBudget"/> prompt
/// tokens are prefilled, so a burst of arrivals does not stall the streams already decoding. Few-row products
/// read each weight once for the whole batch, and a stream's logits are bit-identical whatever shares its step.
/// A finished or cancelled stream leaves between steps:
/// the last slot's state moves into its hole, so the occupied slots stay contiguous. Memory is fixed at
/// start: capacity × (conv + ssm state), whatever the streams' lengths.
/// A stream whose logits cannot be sampled (NaN or ±∞ from the model) ends alone with a 500 error; the others go on.
/// The loop notes when it last made progress: one that has not for <see cref="StallSeconds"/> while it has work is
/// <see cref="Stalled"/> (/health answers 503). <see cref="Drain"/> stops taking streams and cancels what is left after a grace time.
/// On a GPU (a model on a CUDA device) the same code runs there: the batched state and the prefill state live on the
/// device, a step is one batched <see cref="MambaLM.Step(Tensor, MambaState)"/> of device kernels, slots are copied device to device, and
/// each step's logits [n, vocab] come to the host once, into a buffer of capacity × vocab floats allocated at start,
/// for sampling.
/// </summary>
public sealed class BatchScheduler : IDisposable
{
    private readonly MambaLM _model;
    private readonly MambaState _batched;
    private readonly MambaState _prefill;
    /// <summary>Host copy of a GPU model's logits (capacity × vocab); null on the CPU, where sampling reads the logits in place.</summary>
    private readonly Tensor? _hostLogits;
    private readonly List<TextStream> _active = [];
    private readonly Channel<TextStream> _queue = Channel.CreateUnbounded<TextStream>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ServerMetrics _metrics;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stop = new();
    private int _queued, _lastBatch, _activeCount;
    private volatile Exception? _failure;
    private volatile bool _idle, _draining;
    private long _progressAt = Stopwatch.GetTimestamp();

    public BatchScheduler(MambaLM model, int capacity, int maxQueue, ServerMetrics metrics)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), $"--max-streams must be at least 1, got {capacity}");
        if (model.Config.MaxPositionEmbeddings > 0)
            throw new NotSupportedException("this model has learned position embeddings (max_position_embeddings > 0): batched streams at different positions are not supported by `mamba4 serve`");
        _model = model;
        Capacity = capacity;
        MaxQueue = maxQueue;
        _metrics = metrics;
        _batched = model.NewState(capacity);
        _prefill = model.NewState(1);
        if (!model.LmHead.Device.IsCpu) _hostLogits = Tensor.Empty(new Shape(capacity, model.Config.VocabSize)).Persist();
        metrics.Streams = () => (Volatile.Read(ref _activeCount), Volatile.Read(ref _queued), Volatile.Read(ref _lastBatch), Capacity);
        metrics.Decoder = () => (SecondsSinceProgress, Stalled);
        _thread = new Thread(Run) { IsBackground = true, Name = "mamba4-decode" };
        _thread.Start();
    }

    public int Capacity { get; }
    public int MaxQueue { get; }
    /// <summary>Prompt tokens prefilled between two decoding steps at most (one stream always gets in).</summary>
    public int PrefillBudget { get; init; } = 256;
    /// <summary>Rows (prompts × length) of one batched prefill: kept within the CPU's few-row product (64 rows).</summary>
    public int PrefillRows { get; init; } = 64;
    public int Active => Volatile.Read(ref _activeCount);
    public int Queued => Volatile.Read(ref _queued);
    /// <summary>Bytes of the batched state: fixed at start.</summary>
    public long StateBytes => _batched.Bytes + _prefill.Bytes;
    /// <summary>Seconds without progress (a step, or an admission) after which a loop that has work counts as stalled (--stall-seconds).</summary>
    public double StallSeconds { get; init; } = 30;
    /// <summary>Seconds since the loop last began a round of admitting and stepping; 0 while it has nothing to do.</summary>
    public double SecondsSinceProgress => _idle ? 0 : Stopwatch.GetElapsedTime(Volatile.Read(ref _progressAt)).TotalSeconds;
    public bool Stalled => SecondsSinceProgress > StallSeconds;
    /// <summary>Why the loop cannot serve (it failed, it is stalled, or it is draining), or null when it can.</summary>
    public string? Problem =>
        _failure is { } f ? "the decoding loop has stopped: " + f.Message
        : Stalled ? FormattableString.Invariant($"the decoding loop has made no progress for {SecondsSinceProgress:F1} s (--stall-seconds {StallSeconds:G}) with {Active} streams decoding and {Queued} waiting")
        : _draining ? "the server is shutting down"
        : null;
    /// <summary>Cancelled when decoding ends for good (at once by Dispose, after the grace time by <see cref="Drain"/>): requests link it, so that they end with a "shutting down" error even if a step never returns.</summary>
    public CancellationToken Stopping => _stop.Token;
    /// <summary>Test seam: runs on the decoding thread before each batched step (a test blocks it to stall the loop).</summary>
    internal Action? BeforeStep { get; set; }

    /// <summary>Queues a stream; refuses (429) when every slot is taken and the queue is full.</summary>
    public void Submit(TextStream stream)
    {
        if (_failure is { } f) throw new InvalidOperationException("the decoding loop has stopped: " + f.Message, f);
        if (_stop.IsCancellationRequested || _draining) throw new ApiException(503, "the server is shutting down");
        int queued = Interlocked.Increment(ref _queued);
        if (Active + queued > Capacity + MaxQueue)
        {
            Interlocked.Decrement(ref _queued);
            throw ApiException.TooMany($"the server is at its limit of {Capacity} concurrent streams (--max-streams) with {MaxQueue} waiting (--max-queue); retry later");
        }
        if (!_queue.Writer.TryWrite(stream))
        {
            Interlocked.Decrement(ref _queued);
            throw new ApiException(503, "the server is shutting down");
        }
    }

    private void Run()
    {
        using var noGrad = GradMode.NoGrad();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                Volatile.Write(ref _progressAt, Stopwatch.GetTimestamp());
                if (_active.Count == 0)
                {
                    _idle = true;
                    try { if (!_queue.Reader.WaitToReadAsync(_stop.Token).AsTask().GetAwaiter().GetResult()) break; }   // false: drained
                    catch (OperationCanceledException) { break; }
                    Volatile.Write(ref _progressAt, Stopwatch.GetTimestamp());
                    _idle = false;
                }
                // Admit waiting streams, but prefill at most PrefillBudget prompt tokens between two steps
                // (always at least one stream) so that the active streams keep decoding while a queue drains.
                int prefilled = 0;
                var admitted = new List<TextStream>();
                while (_active.Count + admitted.Count < Capacity && prefilled < PrefillBudget && _queue.Reader.TryRead(out var s))
                {
                    Interlocked.Decrement(ref _queued);
                    _metrics.QueueTime.Observe(Stopwatch.GetElapsedTime(s.EnqueuedAt).TotalSeconds);
                    if (s.Cancel.IsCancellationRequested)
                    {
                        _metrics.StreamCancelled();
                        s.Events.Writer.TryComplete();
                        continue;
                    }
                    prefilled += s.Prompt.Length;
                    admitted.Add(s);
                }
                // Prompts of one length are prefilled together, at most PrefillRows tokens a forward (so that
                // every product stays on the few-row kernel: a prompt's state is the same as prefilled alone).
                foreach (var group in admitted.GroupBy(s => s.Prompt.Length))
                    foreach (var chunk in group.Chunk(Math.Max(1, PrefillRows / group.Key)))
                        Admit(chunk);
                Leave();
                if (_active.Count > 0) Step();
                Leave();
            }
        }
        catch (Exception e)
        {
            _failure = e;
            foreach (var s in _active) s.Events.Writer.TryComplete(e);
            _active.Clear();
        }
        finally
        {
            _idle = true;   // not working any more: not stalled either
            while (_queue.Reader.TryRead(out var s)) s.Events.Writer.TryComplete(new OperationCanceledException("the server is shutting down"));
            foreach (var s in _active) s.Events.Writer.TryComplete(new OperationCanceledException("the server is shutting down"));
            _active.Clear();
            Volatile.Write(ref _activeCount, 0);
        }
    }

    /// <summary>Prefills prompts of one length together (the parallel path), samples each one's first token, and gives the unfinished ones a slot.</summary>
    private void Admit(TextStream[] group)
    {
        int g = group.Length, vocab = _model.Config.VocabSize;
        foreach (var s in group) _metrics.StreamStarted(s.Prompt.Length);
        _metrics.Prefill();
        var state = g == 1 ? _prefill : _model.NewState(g);
        try
        {
            state.Reset();
            using var scope = new TensorScope();
            var logits = OnHost(Prefill(group, state)).AsSpan<float>();
            for (int j = 0; j < g; j++)
            {
                var s = group[j];
                long token = Choose(s, logits.Slice(j * vocab, vocab));
                if (token >= 0)
                {
                    _metrics.TimeToFirstToken.Observe(Stopwatch.GetElapsedTime(s.EnqueuedAt).TotalSeconds);
                    _metrics.Tokens(1);
                }
                s.LastTokenAt = Stopwatch.GetTimestamp();
                if (Emit(s, token)) continue;
                _batched.CopySlot(_active.Count, state, j);
                _active.Add(s);
            }
        }
        finally
        {
            if (g > 1) state.Dispose();
        }
        Volatile.Write(ref _activeCount, _active.Count);
    }

    /// <summary>The parallel forward over prompts of one length (g, l), leaving their states in <paramref name="state"/>; logits of each prompt's last position only (g, vocab).</summary>
    private Tensor Prefill(TextStream[] group, MambaState state)
    {
        var bb = _model.Backbone;
        int g = group.Length, l = group[0].Prompt.Length;
        var ids = new long[g * l];
        for (int j = 0; j < g; j++) group[j].Prompt.CopyTo(ids, j * l);
        var h = _model.Blocks(bb.Embeddings.Forward(Tensor.From(ids, g, l)), state);   // one block's activations at a time
        return F.Linear(bb.NormF.Forward(F.LastPosition(h)), _model.LmHead);
    }

    private void Step()
    {
        BeforeStep?.Invoke();
        int n = _active.Count;
        var ids = new long[n];
        for (int i = 0; i < n; i++) ids[i] = _active[i].Pending;
        long start = Stopwatch.GetTimestamp();
        using (var scope = new TensorScope())
        using (var view = _batched.Slice(0, n))
        {
            var logits = OnHost(_model.Step(Tensor.From(ids, n), view));
            int vocab = _model.Config.VocabSize;
            long now = Stopwatch.GetTimestamp();
            _metrics.Step(n, Stopwatch.GetElapsedTime(start, now).TotalSeconds);
            Volatile.Write(ref _lastBatch, n);
            // Sampling costs O(vocab) per stream: the streams' choices are split across the cores (each stream owns its generator).
            var tokens = new long[n];
            bool sampling = _active.Any(s => !s.Options.IsGreedy || s.Options.RepetitionPenalty != 1f);
            Mamba4.Backends.Cpu.CpuParallel.For(n, sampling ? 1 : n, (a, b) =>
            {
                var all = logits.AsSpan<float>();
                for (long i = a; i < b; i++) tokens[i] = Choose(_active[(int)i], all.Slice((int)i * vocab, vocab));
            });
            for (int i = 0; i < n; i++)
            {
                var s = _active[i];
                long token = tokens[i];
                _metrics.InterToken.Observe(Stopwatch.GetElapsedTime(s.LastTokenAt, now).TotalSeconds);
                s.LastTokenAt = now;
                if (Emit(s, token)) s.Pending = -1;   // finished: leaves below
            }
        }
    }

    /// <summary>Logits [rows, vocab] where sampling can read them: a CPU tensor as it is, a GPU one copied (once) into the host buffer.</summary>
    private Tensor OnHost(Tensor logits)
    {
        if (_hostLogits is null) return logits;
        var host = _hostLogits.Slice(0, logits.Shape[0]);
        Mamba4.Backends.Backend.Memory(logits.Device).CopyToHost(logits, host.DataPointer, logits.ByteLength);
        return host;
    }

    /// <summary>Hands a token to the stream; true when the stream is finished (and completed). Token −1 (<see cref="Choose"/> failed): the stream ends with its error.</summary>
    private static bool Emit(TextStream s, long token)
    {
        if (token < 0)
        {
            s.Events.Writer.TryComplete(new ApiException(500, $"generation stopped after {s.Generated} tokens: {s.Failure!.Message}"));
            return true;
        }
        s.Generated++;
        if (s.Options.RepetitionPenalty != 1f) s.History.Add(token);
        string? finish = s.StopTokenIds?.Contains(token) == true ? "stop" : s.Generated >= s.MaxTokens ? "length" : null;
        s.Events.Writer.TryWrite(new StreamEvent(token, finish));
        if (finish is null) { s.Pending = token; return false; }
        s.Events.Writer.TryComplete();
        return true;
    }

    /// <summary>Streams that finished or were cancelled leave; the last occupied slot moves into each hole.</summary>
    private void Leave()
    {
        for (int i = _active.Count - 1; i >= 0; i--)
        {
            var s = _active[i];
            bool cancelled = s.Cancel.IsCancellationRequested && s.Pending >= 0;
            if (s.Pending >= 0 && !cancelled) continue;
            if (cancelled)
            {
                _metrics.StreamCancelled();
                s.Events.Writer.TryComplete();
            }
            int last = _active.Count - 1;
            if (i != last)
            {
                _batched.CopySlot(i, _batched, last);
                _active[i] = _active[last];
            }
            _active.RemoveAt(last);
        }
        Volatile.Write(ref _activeCount, _active.Count);
    }

    /// <summary>The stream's next token, or −1 when its logits cannot be sampled (NaN or ±∞): that failure is the stream's alone (kept for <see cref="Emit"/>).</summary>
    private static long Choose(TextStream s, ReadOnlySpan<float> logits)
    {
        try { return Generator.Choose(logits, s.History, s.Options, s.Rng); }
        catch (Exception e) when (e is NonFiniteLogitsException or ArgumentException)
        {
            s.Failure = e;
            return -1;
        }
    }

    /// <summary>
    /// Stops taking streams (Submit answers 503); those already taken — decoding or waiting — go on for up to
    /// <paramref name="grace"/>, then <see cref="Stopping"/> is cancelled and the rest end with a "shutting down" error.
    /// Returns at once; the loop exits when the last stream has finished.
    /// </summary>
    public void Drain(TimeSpan grace)
    {
        _draining = true;
        _queue.Writer.TryComplete();
        if (grace > TimeSpan.Zero) _stop.CancelAfter(grace);
        else _stop.Cancel();
    }

    /// <summary>Ends every stream at once and waits for the loop, at most until it would count as stalled: a loop stuck
    /// in a step is left behind (a background thread: the process still exits), and then nothing it uses is disposed.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _queue.Writer.TryComplete();
        if (!_thread.Join(TimeSpan.FromSeconds(Math.Max(0, StallSeconds - SecondsSinceProgress)))) return;
        _batched.Dispose();
        _prefill.Dispose();
        _hostLogits?.Dispose();
        _stop.Dispose();
    }

    /// <summary>False once the loop thread has exited (after <see cref="Dispose"/>, unless it was stuck).</summary>
    public bool Running => _thread.IsAlive;
}
