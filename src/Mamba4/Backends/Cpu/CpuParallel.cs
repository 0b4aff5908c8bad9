namespace Mamba4.Backends.Cpu;

/// <summary>Splits a range of independent work items across the cores.</summary>
public static class CpuParallel
{
    /// <summary>Worker count (MAMBA4_THREADS overrides the core count).</summary>
    public static int Threads { get; set; } =
        int.TryParse(Environment.GetEnvironmentVariable("MAMBA4_THREADS"), out var t) && t > 0 ? t : Environment.ProcessorCount;

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
        Parallel.For(0, (int)chunks, new ParallelOptions { MaxDegreeOfParallelism = Threads }, c =>
        {
            long start = c * per, end = Math.Min(count, start + per);
            if (start < end) body(start, end);
        });
    }
}
