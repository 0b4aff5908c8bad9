using System.Diagnostics;
using System.Text;
using Mamba4.Text;

namespace Mamba4.Bench;

/// <summary>
/// Encoding speed of the GPT-NeoX byte-level BPE tokenizer on Tiny Shakespeare (MB/s of UTF-8 input):
/// cold (word cache empty: every distinct word goes through the merges once), warm (every word cached),
/// no cache at all, and line by line (many small Encode calls). Also decoding and streaming decoding.
/// Finds ../shared from the working directory upwards, or MAMBA4_SHARED.
/// </summary>
public static class TokenizerBench
{
    private const int Runs = 9;

    public static void Run()
    {
        Console.WriteLine($"== tokenizer: GPT-NeoX byte-level BPE on tinyshakespeare.txt (1 thread; machine: {Environment.ProcessorCount} cores, load average {LoadAverage()})");
        var shared = FindShared();
        var tokenizerPath = Path.Combine(shared, "data", "tokenizers", "gpt-neox-20b", "tokenizer.json");
        var text = File.ReadAllText(Path.Combine(shared, "data", "text", "tinyshakespeare.txt"));
        double mb = Encoding.UTF8.GetByteCount(text) / 1e6;

        var sw = Stopwatch.StartNew();
        var tok = BpeTokenizer.FromFile(tokenizerPath);
        Console.WriteLine($"load: {sw.Elapsed.TotalMilliseconds:F0} ms ({tok})");

        // Let the JIT reach its final tier (tiering happens in the background, after 30 calls), then start from an empty cache.
        for (int i = 0; i < 40; i++) tok.Encode(text[..50_000]);
        Thread.Sleep(500);
        for (int i = 0; i < 3; i++) tok.Encode(text);
        tok.ClearCache();

        int[] ids = [];
        var cold = Time(() => { tok.ClearCache(); ids = tok.Encode(text); });
        Console.WriteLine($"text: {mb:F2} MB, {ids.Length:N0} tokens ({mb * 1e6 / ids.Length:F2} bytes/token), {tok.CacheCount:N0} distinct words cached");
        var warm = Time(() => tok.Encode(text));
        var lines = text.Split('\n');
        var perLine = Time(() => { foreach (var line in lines) tok.Encode(line); });
        var none = BpeTokenizer.FromFile(tokenizerPath);
        none.CacheCapacity = 0;
        none.Encode(text[..50_000]);
        var uncached = Time(() => none.Encode(text));
        var decode = Time(() => tok.Decode(ids));
        var streaming = Time(() =>
        {
            var stream = tok.CreateStreamingDecoder();
            foreach (var id in ids) stream.Push(id);
            stream.Flush();
        });

        Report("encode, cold cache", cold, mb);
        Report("encode, warm cache", warm, mb);
        Report("encode, line by line (warm)", perLine, mb);
        Report("encode, no cache", uncached, mb);
        Report("decode", decode, mb);
        Report("streaming decode (per id)", streaming, mb);
    }

    private static void Report(string label, (double Best, double Median, double Cpu) t, double mb)
        => Console.WriteLine($"{label,-28} {mb / t.Best,7:F1} MB/s best {mb / t.Median,7:F1} median {mb / t.Cpu,7:F1} per CPU-second  ({t.Best * 1000:F1} / {t.Median * 1000:F1} / {t.Cpu * 1000:F1} ms)");

    /// <summary>
    /// Wall time, best and median of <see cref="Runs"/> runs, and the median process CPU time per run: on a machine
    /// shared with other work the best run and the CPU time are the least disturbed measures.
    /// </summary>
    private static (double Best, double Median, double Cpu) Time(Action action)
    {
        var times = new double[Runs];
        var cpu = new double[Runs];
        var process = Process.GetCurrentProcess();
        for (int i = 0; i < Runs; i++)
        {
            process.Refresh();
            var c0 = process.TotalProcessorTime;
            long t0 = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            process.Refresh();
            cpu[i] = (process.TotalProcessorTime - c0).TotalSeconds;
        }
        Array.Sort(times);
        Array.Sort(cpu);
        return (times[0], times[Runs / 2], cpu[Runs / 2]);
    }

    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "?"; }
        catch (UnauthorizedAccessException) { return "?"; }
    }

    private static string FindShared()
    {
        if (BenchSettings.Current.Shared is { } env) return env;
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "shared");
                if (Directory.Exists(Path.Combine(candidate, "data", "tokenizers"))) return candidate;
            }
        throw new DirectoryNotFoundException("could not find shared/data above the working directory (set MAMBA4_SHARED)");
    }
}
