namespace Mamba4.Backends.Cpu;

/// <summary>Splits a range of independent work items across the cores.</summary>
public static class CpuParallel
{
    /// <summary>Worker count: <see cref="EngineSettings.Threads"/>, or one per core.</summary>
    public static int Threads => Backend.Settings.Threads > 0 ? Backend.Settings.Threads : Environment.ProcessorCount;

    /// <summary>Calls of <see cref="For"/> that split their work across threads (a fork/join each): what `bench precision profile` counts.</summary>
    internal static long Forks => _forks;
    private static long _forks;

    /// <summary>Runs body(start, end) over [0, count) in chunks of at least <paramref name="grain"/> items.</summary>
    public static void For(long count, long grain, Action<long, long> body)
    {
        if (count <= 0) return;
        long chunks = Math.Min(Threads * 4L, (count + grain - 1) / Math.Max(1, grain));
        if (chunks <= 1 || Threads == 1)
        {
            body(0, count);
            return;
        }
        long per = (count + chunks - 1) / chunks;
        Interlocked.Increment(ref _forks);
        Parallel.For(0, (int)chunks, new ParallelOptions { MaxDegreeOfParallelism = Threads }, c =>
        {
            long start = c * per, end = Math.Min(count, start + per);
            if (start < end) body(start, end);
        });
    }
}
