using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Mamba4.Server;

/// <summary>A sliding sample of the last observations (seconds), for p50/p99 summaries, plus a sum and a count.</summary>
public sealed class LatencySummary(int capacity = 2048)
{
    private readonly double[] _ring = new double[capacity];
    private long _count;
    private double _sum;

    public void Observe(double seconds)
    {
        lock (_ring)
        {
            _ring[_count % _ring.Length] = seconds;
            _count++;
            _sum += seconds;
        }
    }

    public long Count { get { lock (_ring) return _count; } }

    /// <summary>The sum and count of every observation (for means over an interval: difference two readings).</summary>
    public (double Sum, long Count) Totals { get { lock (_ring) return (_sum, _count); } }

    /// <summary>The q-quantile of the retained observations (NaN when none).</summary>
    public double Quantile(double q)
    {
        double[] s;
        lock (_ring) s = _ring.AsSpan(0, (int)Math.Min(_count, _ring.Length)).ToArray();
        if (s.Length == 0) return double.NaN;
        Array.Sort(s);
        return s[Math.Clamp((int)Math.Ceiling(q * s.Length) - 1, 0, s.Length - 1)];
    }

    public void Write(StringBuilder sb, string name, string help, string labels = "")
    {
        string sep = labels.Length > 0 ? "," : "";
        double sum; long count;
        lock (_ring) (sum, count) = (_sum, _count);
        foreach (var q in new[] { 0.5, 0.9, 0.99 })
            sb.Append(CultureInfo.InvariantCulture, $"{name}{{{labels}{sep}quantile=\"{q}\"}} {Format(Quantile(q))}\n");
        sb.Append(CultureInfo.InvariantCulture, $"{name}_sum{(labels.Length > 0 ? "{" + labels + "}" : "")} {Format(sum)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"{name}_count{(labels.Length > 0 ? "{" + labels + "}" : "")} {count}\n");
    }

    internal static string Format(double v) => double.IsNaN(v) ? "NaN" : v.ToString("G6", CultureInfo.InvariantCulture);
}

/// <summary>The server's counters, gauges and latency summaries, written in the Prometheus text format at /metrics.</summary>
public sealed class ServerMetrics
{
    private readonly ConcurrentDictionary<(string Route, int Status), long> _requests = new();
    private readonly ConcurrentDictionary<string, LatencySummary> _durations = new();
    private readonly Queue<(long Ticks, int Tokens)> _recent = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _generated, _promptTokens, _prefills, _steps, _streamsStarted, _streamsCancelled, _timeouts, _recEvents, _recRequests;

    public LatencySummary TimeToFirstToken { get; } = new();
    public LatencySummary InterToken { get; } = new();
    public LatencySummary QueueTime { get; } = new();
    public LatencySummary StepTime { get; } = new();

    /// <summary>Read at scrape time: streams decoding now, streams waiting for a slot, the last step's batch size.</summary>
    public Func<(int Active, int Queued, int LastBatch, int Capacity)>? Streams { get; set; }

    /// <summary>Read at scrape time: seconds since the decoding loop last made progress (0 while idle), and whether that is past --stall-seconds.</summary>
    public Func<(double SecondsSinceProgress, bool Stalled)>? Decoder { get; set; }

    public long GeneratedTokens => Interlocked.Read(ref _generated);
    public long Steps => Interlocked.Read(ref _steps);

    public void Request(string route, int status, double seconds)
    {
        _requests.AddOrUpdate((route, status), 1, (_, n) => n + 1);
        _durations.GetOrAdd(route, _ => new LatencySummary()).Observe(seconds);
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

    public string Render()
    {
        var sb = new StringBuilder();
        void Head(string name, string type, string help) => sb.Append($"# HELP {name} {help}\n# TYPE {name} {type}\n");
        void Line(string name, double value) => sb.Append(name).Append(' ').Append(LatencySummary.Format(value)).Append('\n');

        Head("mamba4_requests_total", "counter", "HTTP requests by route and status code.");
        foreach (var ((route, status), n) in _requests.OrderBy(k => k.Key.Route, StringComparer.Ordinal).ThenBy(k => k.Key.Status))
            sb.Append(CultureInfo.InvariantCulture, $"mamba4_requests_total{{route=\"{Escape(route)}\",status=\"{status}\"}} {n}\n");
        Head("mamba4_request_duration_seconds", "summary", "Request latency by route (last 2048 requests per route).");
        foreach (var (route, s) in _durations.OrderBy(k => k.Key, StringComparer.Ordinal))
            s.Write(sb, "mamba4_request_duration_seconds", "", $"route=\"{Escape(route)}\"");

        var (active, queued, lastBatch, capacity) = Streams?.Invoke() ?? (0, 0, 0, 0);
        Head("mamba4_active_streams", "gauge", "Completion streams decoding now (slots of the batched state in use).");
        Line("mamba4_active_streams", active);
        Head("mamba4_queued_streams", "gauge", "Completion streams waiting for a slot.");
        Line("mamba4_queued_streams", queued);
        Head("mamba4_stream_capacity", "gauge", "Slots of the batched state (--max-streams).");
        Line("mamba4_stream_capacity", capacity);
        Head("mamba4_batch_size", "gauge", "Streams advanced by the last batched decoding step.");
        Line("mamba4_batch_size", lastBatch);
        var (sinceProgress, stalled) = Decoder?.Invoke() ?? (0, false);
        Head("mamba4_decoder_last_progress_seconds", "gauge", "Seconds since the decoding loop last made progress (0 while it has nothing to do).");
        Line("mamba4_decoder_last_progress_seconds", sinceProgress);
        Head("mamba4_decoder_stalled", "gauge", "1 while the decoding loop has made no progress for longer than --stall-seconds (then /health answers 503).");
        Line("mamba4_decoder_stalled", stalled ? 1 : 0);
        long steps = Steps;
        Head("mamba4_decode_steps_total", "counter", "Batched decoding steps.");
        Line("mamba4_decode_steps_total", steps);
        Head("mamba4_streams_total", "counter", "Completion streams admitted.");
        Line("mamba4_streams_total", Interlocked.Read(ref _streamsStarted));
        Head("mamba4_streams_cancelled_total", "counter", "Completion streams ended before finishing (their client went away, or --timeout).");
        Line("mamba4_streams_cancelled_total", Interlocked.Read(ref _streamsCancelled));
        Head("mamba4_timeouts_total", "counter", "Completions cancelled for taking longer than --timeout.");
        Line("mamba4_timeouts_total", Interlocked.Read(ref _timeouts));
        Head("mamba4_prefills_total", "counter", "Parallel prefill forwards (prompts of one length that arrive together share one).");
        Line("mamba4_prefills_total", Interlocked.Read(ref _prefills));
        Head("mamba4_prompt_tokens_total", "counter", "Prompt tokens prefilled.");
        Line("mamba4_prompt_tokens_total", Interlocked.Read(ref _promptTokens));
        Head("mamba4_generated_tokens_total", "counter", "Tokens generated.");
        Line("mamba4_generated_tokens_total", GeneratedTokens);
        Head("mamba4_tokens_per_second", "gauge", "Generated tokens per second over the last 10 seconds.");
        Line("mamba4_tokens_per_second", TokensPerSecond());
        Head("mamba4_time_to_first_token_seconds", "summary", "From a completion request's arrival to its first token.");
        TimeToFirstToken.Write(sb, "mamba4_time_to_first_token_seconds", "");
        Head("mamba4_inter_token_seconds", "summary", "Time between consecutive tokens of a stream.");
        InterToken.Write(sb, "mamba4_inter_token_seconds", "");
        Head("mamba4_queue_seconds", "summary", "Time a completion waited for a slot of the batched state.");
        QueueTime.Write(sb, "mamba4_queue_seconds", "");
        Head("mamba4_step_seconds", "summary", "Duration of one batched decoding step.");
        StepTime.Write(sb, "mamba4_step_seconds", "");
        Head("mamba4_rec_events_total", "counter", "Interactions appended through the event API.");
        Line("mamba4_rec_events_total", Interlocked.Read(ref _recEvents));
        Head("mamba4_rec_requests_total", "counter", "Recommendation lists computed.");
        Line("mamba4_rec_requests_total", Interlocked.Read(ref _recRequests));
        return sb.ToString();
    }

    private static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");
}
