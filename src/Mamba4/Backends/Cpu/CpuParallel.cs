using System.Diagnostics;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// Splits a range of independent work items across the cores. A fork hands its chunks to persistent worker threads that
/// spin for <see cref="SpinMicroseconds"/> after each job before they sleep, so the many small forks of a decoding step
/// (about 50 a token) cost about a microsecond each instead of the thread pool's 7–9 µs (measured: Parallel.For of 8
/// empty items on these 2 cores). One fork uses the workers at a time; a fork started while another runs on a different
/// thread (the server's request threads) goes through Parallel.For as before, and a fork from inside a chunk runs inline.
/// </summary>
public static class CpuParallel
{
    /// <summary>Worker count: <see cref="EngineSettings.Threads"/>, or one per core.</summary>
    public static int Threads => Backend.Settings.Threads > 0 ? Backend.Settings.Threads : Environment.ProcessorCount;

    /// <summary>Calls of <see cref="For"/> that split their work across threads (a fork/join each): what `bench precision profile` counts.</summary>
    internal static long Forks => _forks;
    private static long _forks;

    /// <summary>How long an idle worker spins for the next fork before it sleeps on a semaphore.</summary>
    internal const int SpinMicroseconds = 100;

    private static readonly object Gate = new();
    [ThreadStatic] private static bool _inChunk;

    /// <summary>Runs body(start, end) over [0, count) in chunks of at least <paramref name="grain"/> items.</summary>
    public static void For(long count, long grain, Action<long, long> body)
    {
        if (count <= 0) return;
        int threads = Threads;
        long chunks = Math.Min(threads * 4L, (count + grain - 1) / Math.Max(1, grain));
        if (chunks <= 1 || threads == 1 || _inChunk)
        {
            body(0, count);
            return;
        }
        long per = (count + chunks - 1) / chunks;
        chunks = (count + per - 1) / per;
        Interlocked.Increment(ref _forks);
        if (Monitor.TryEnter(Gate))
        {
            try { Workers.Run(threads - 1, new Job(body, count, per, chunks)); }
            finally { Monitor.Exit(Gate); }
            return;
        }
        Parallel.For(0, (int)chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
        {
            long start = c * per, end = Math.Min(count, start + per);
            if (start < end) body(start, end);
        });
    }

    /// <summary>One fork: chunks are claimed by an atomic counter (the caller takes its share too) and counted when done.</summary>
    private sealed class Job(Action<long, long> body, long count, long per, long chunks)
    {
        private long _next, _done;
        private Exception? _error;

        public bool Finished => Volatile.Read(ref _done) >= chunks;

        public void Work()
        {
            long c;
            while ((c = Interlocked.Increment(ref _next) - 1) < chunks)
            {
                long start = c * per, end = Math.Min(count, start + per);
                try { body(start, end); }
                catch (Exception e) { Interlocked.CompareExchange(ref _error, e, null); }
                Interlocked.Increment(ref _done);
            }
        }

        /// <summary>After <see cref="Finished"/>: a chunk's exception as Parallel.For reports it (an AggregateException).</summary>
        public void ThrowIfFailed()
        {
            if (_error is { } e) throw new AggregateException(e);
        }
    }

    /// <summary>The persistent workers (background threads, created on first need, never more than asked for).</summary>
    private static class Workers
    {
        private static Job? _job;
        private static long _generation;
        private static int _sleeping, _count;
        private static readonly SemaphoreSlim Wake = new(0);

        public static void Run(int helpers, Job job)
        {
            while (_count < helpers) Start();
            Volatile.Write(ref _job, job);
            Interlocked.Increment(ref _generation);             // full fence: a worker that saw the old generation and
            int sleeping = Volatile.Read(ref _sleeping);         // counted itself asleep is woken here (Dekker pairing)
            if (sleeping > 0) Wake.Release(sleeping);
            _inChunk = true;
            try { job.Work(); }
            finally { _inChunk = false; }
            var spin = new SpinWait();
            while (!job.Finished) spin.SpinOnce(sleep1Threshold: -1);
            Volatile.Write(ref _job, null);
            job.ThrowIfFailed();
        }

        private static void Start()
        {
            _count++;
            new Thread(Loop) { IsBackground = true, Name = $"mamba4-cpu-{_count}" }.Start();
        }

        private static void Loop()
        {
            _inChunk = true;
            long seen = Volatile.Read(ref _generation);
            long spinTicks = Stopwatch.Frequency * SpinMicroseconds / 1_000_000;
            while (true)
            {
                long idleSince = Stopwatch.GetTimestamp();
                long g;
                while ((g = Volatile.Read(ref _generation)) == seen)
                {
                    if (Stopwatch.GetTimestamp() - idleSince < spinTicks) { Thread.SpinWait(16); continue; }
                    Interlocked.Increment(ref _sleeping);          // full fence before re-reading the generation
                    if (Volatile.Read(ref _generation) == seen) Wake.Wait();
                    Interlocked.Decrement(ref _sleeping);
                    idleSince = Stopwatch.GetTimestamp();
                }
                seen = g;
                Volatile.Read(ref _job)?.Work();
            }
        }
    }
}
