using CsCheck;
using Mamba4.Backends;
using Mamba4.Backends.Cpu;

namespace Mamba4.Tests;

/// <summary>
/// CpuParallel.For: every index once for any count, grain and worker count, a chunk's exception surfaced as an
/// AggregateException, nested and concurrent forks. Each wait is bounded so a hang fails instead of stalling the suite.
/// </summary>
[Collection(EngineSettingsCollection.Name)]
public class CpuParallelTests
{
    private static void WithThreads(int threads, Action test)
    {
        var engine = Backend.Settings;
        try
        {
            Backend.Configure(engine with { Threads = threads });
            test();
        }
        finally { Backend.Configure(engine); }
    }

    private static void Bounded(Action test)
    {
        var run = Task.Run(test);
        Assert.True(run.Wait(TimeSpan.FromSeconds(60)), "CpuParallel.For did not finish within 60 s (a lost wake-up?)");
    }

    private static int[] Visits(long count, long grain)
    {
        var visits = new int[count];
        CpuParallel.For(count, grain, (s, e) => { for (long i = s; i < e; i++) Interlocked.Increment(ref visits[i]); });
        return visits;
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(8)]
    public void EveryIndexIsVisitedExactlyOnce(int threads) => WithThreads(threads, () => Bounded(() =>
    {
        Gen.Select(Gen.Long[0, 299], Gen.Long[1, 39]).Sample((count, grain) =>
            Assert.All(Visits(count, grain), v => Assert.Equal(1, v)), iter: 2000, threads: 1);   // one caller: the pool's threads are what is tested
    }));

    [Fact]
    public void AChunksExceptionIsThrownAsAnAggregateAndLaterForksWork() => WithThreads(2, () => Bounded(() =>
    {
        var e = Assert.Throws<AggregateException>(() =>
            CpuParallel.For(64, 1, (s, _) => { if (s == 40) throw new InvalidOperationException("chunk 40"); }));
        Assert.Equal("chunk 40", Assert.IsType<InvalidOperationException>(e.InnerException).Message);
        Assert.All(Visits(500, 1), v => Assert.Equal(1, v));
    }));

    [Fact]
    public void AForkInsideAChunkCompletes() => WithThreads(2, () => Bounded(() =>
    {
        var visits = new int[16 * 50];
        CpuParallel.For(16, 1, (s, e) =>
        {
            for (long i = s; i < e; i++)
            {
                long row = i;
                CpuParallel.For(50, 1, (a, b) => { for (long j = a; j < b; j++) Interlocked.Increment(ref visits[row * 50 + j]); });
            }
        });
        Assert.All(visits, v => Assert.Equal(1, v));
    }));

    [Fact]
    public void ForksFromSeveralThreadsAtOnceAllComplete() => WithThreads(2, () => Bounded(() =>
    {
        var callers = Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (int k = 0; k < 300; k++) Assert.All(Visits(257, 3), v => Assert.Equal(1, v));
        })).ToArray();
        Task.WaitAll(callers);
    }));
}
