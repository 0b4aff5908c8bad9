using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Mamba4.Server;

/// <summary>A latency histogram (seconds) that also keeps its sum and count for in-process readers (the serving benchmark).</summary>
public sealed class Timing(Histogram<double> histogram)
{
    private long _count;
    private double _sum;

    public void Observe(double seconds, in TagList tags = default)
    {
        histogram.Record(seconds, tags);
        lock (histogram)
        {
            _count++;
            _sum += seconds;
        }
    }

    /// <summary>The sum and count of every observation (for means over an interval: difference two readings).</summary>
    public (double Sum, long Count) Totals { get { lock (histogram) return (_sum, _count); } }
}

/// <summary>
/// The server's counters, gauges and latency histograms as OpenTelemetry instruments (System.Diagnostics.Metrics),
/// which the OpenTelemetry SDK exports in the Prometheus text format at /metrics. Each server has a meter of its
/// own, "Mamba4.Server.N" (N counts the servers of the process from 1), since the SDK listens to meters by name
/// and two servers in one process must count apart; the exporter leaves the meter's name out of the series.
/// </summary>
public sealed class ServerMetrics : IDisposable
{
    public const string MeterPrefix = "Mamba4.Server";
    private static int _servers;

    /// <summary>Histogram buckets for latencies in seconds (1 ms to 10 min).</summary>
    public static readonly double[] SecondsBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

    private readonly Meter _meter;
    private readonly Counter<long> _requests;
    private readonly Timing _durations;
    private readonly Queue<(long Ticks, int Tokens)> _recent = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _generated, _promptTokens, _prefills, _steps, _streamsStarted, _streamsCancelled, _timeouts, _recEvents, _recRequests;

    public ServerMetrics()
    {
        _meter = new Meter($"{MeterPrefix}.{Interlocked.Increment(ref _servers)}");
        var meter = _meter;
        // Counters are read at scrape time from this object's fields (so each is exported from the start, as 0).
        void Count(string name, Func<long> read, string help) => meter.CreateObservableCounter(name, read, null, help);
        Timing Time(string name, string help) => new(meter.CreateHistogram<double>(name, "s", help));
        _requests = meter.CreateCounter<long>("mamba4_requests", null, "HTTP requests by route and status code.");
        _durations = Time("mamba4_request_duration_seconds", "Request latency by route.");
        meter.CreateObservableGauge("mamba4_active_streams", () => Streams?.Invoke().Active ?? 0, null, "Completion streams decoding now (slots of the batched state in use).");
        meter.CreateObservableGauge("mamba4_queued_streams", () => Streams?.Invoke().Queued ?? 0, null, "Completion streams waiting for a slot.");
        meter.CreateObservableGauge("mamba4_stream_capacity", () => Streams?.Invoke().Capacity ?? 0, null, "Slots of the batched state (--max-streams).");
        meter.CreateObservableGauge("mamba4_batch_size", () => Streams?.Invoke().LastBatch ?? 0, null, "Streams advanced by the last batched decoding step.");
        meter.CreateObservableGauge("mamba4_decoder_last_progress_seconds", () => Decoder?.Invoke().SecondsSinceProgress ?? 0, "s", "Seconds since the decoding loop last made progress (0 while it has nothing to do).");
        meter.CreateObservableGauge("mamba4_decoder_stalled", () => Decoder?.Invoke().Stalled == true ? 1 : 0, null, "1 while the decoding loop has made no progress for longer than --stall-seconds (then /health answers 503).");
        Count("mamba4_decode_steps", () => Interlocked.Read(ref _steps), "Batched decoding steps.");
        Count("mamba4_streams", () => Interlocked.Read(ref _streamsStarted), "Completion streams admitted.");
        Count("mamba4_streams_cancelled", () => Interlocked.Read(ref _streamsCancelled), "Completion streams ended before finishing (their client went away, or --timeout).");
        Count("mamba4_timeouts", () => Interlocked.Read(ref _timeouts), "Completions cancelled for taking longer than --timeout.");
        Count("mamba4_prefills", () => Interlocked.Read(ref _prefills), "Parallel prefill forwards (prompts of one length that arrive together share one).");
        Count("mamba4_prompt_tokens", () => Interlocked.Read(ref _promptTokens), "Prompt tokens prefilled.");
        Count("mamba4_generated_tokens", () => Interlocked.Read(ref _generated), "Tokens generated.");
        meter.CreateObservableGauge("mamba4_tokens_per_second", TokensPerSecond, null, "Generated tokens per second over the last 10 seconds.");
        TimeToFirstToken = Time("mamba4_time_to_first_token_seconds", "From a completion request's arrival to its first token.");
        InterToken = Time("mamba4_inter_token_seconds", "Time between consecutive tokens of a stream.");
        QueueTime = Time("mamba4_queue_seconds", "Time a completion waited for a slot of the batched state.");
        StepTime = Time("mamba4_step_seconds", "Duration of one batched decoding step.");
        Count("mamba4_rec_events", () => Interlocked.Read(ref _recEvents), "Interactions appended through the event API.");
        Count("mamba4_rec_requests", () => Interlocked.Read(ref _recRequests), "Recommendation lists computed.");
    }

    /// <summary>This server's meter's name (what an OpenTelemetry MeterProvider adds).</summary>
    public string MeterName => _meter.Name;

    public Timing TimeToFirstToken { get; }
    public Timing InterToken { get; }
    public Timing QueueTime { get; }
    public Timing StepTime { get; }

    /// <summary>Read at scrape time: streams decoding now, streams waiting for a slot, the last step's batch size.</summary>
    public Func<(int Active, int Queued, int LastBatch, int Capacity)>? Streams { get; set; }

    /// <summary>Read at scrape time: seconds since the decoding loop last made progress (0 while idle), and whether that is past --stall-seconds.</summary>
    public Func<(double SecondsSinceProgress, bool Stalled)>? Decoder { get; set; }

    public long GeneratedTokens => Interlocked.Read(ref _generated);
    public long Steps => Interlocked.Read(ref _steps);
    public int ActiveStreams => Streams?.Invoke().Active ?? 0;

    public void Request(string route, int status, double seconds)
    {
        _requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("status", status));
        _durations.Observe(seconds, new TagList { { "route", route } });
    }

    public void StreamStarted(int promptTokens)
    {
        Interlocked.Increment(ref _streamsStarted);
        Interlocked.Add(ref _promptTokens, promptTokens);
    }

    /// <summary>One parallel prefill forward (of one or more prompts of one length).</summary>
    public void Prefill() => Interlocked.Increment(ref _prefills);

    public void StreamCancelled() => Interlocked.Increment(ref _streamsCancelled);
    public void Timeout() => Interlocked.Increment(ref _timeouts);
    public void RecEvents(int n) => Interlocked.Add(ref _recEvents, n);
    public void RecRequest() => Interlocked.Increment(ref _recRequests);

    /// <summary>One decoding step of <paramref name="batch"/> streams (each produced one token).</summary>
    public void Step(int batch, double seconds)
    {
        Interlocked.Increment(ref _steps);
        Tokens(batch);
        StepTime.Observe(seconds);
    }

    /// <summary>Tokens produced outside a batched step (the first token of each stream comes from its prefill).</summary>
    public void Tokens(int n)
    {
        Interlocked.Add(ref _generated, n);
        lock (_recent)
        {
            long now = _clock.ElapsedTicks;
            _recent.Enqueue((now, n));
            Prune(now);
        }
    }

    private void Prune(long now)
    {
        long window = Stopwatch.Frequency * 10;
        while (_recent.Count > 0 && now - _recent.Peek().Ticks > window) _recent.Dequeue();
    }

    /// <summary>Generated tokens per second over the last 10 s (or since start, if shorter).</summary>
    public double TokensPerSecond()
    {
        lock (_recent)
        {
            long now = _clock.ElapsedTicks;
            Prune(now);
            double seconds = Math.Min(10.0, _clock.Elapsed.TotalSeconds);
            return seconds <= 0 ? 0 : _recent.Sum(r => r.Tokens) / seconds;
        }
    }

    public void Dispose() => _meter.Dispose();
}
