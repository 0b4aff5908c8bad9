using System.Diagnostics;
using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Bench;

/// <summary>
/// Linear vs quadratic: forward+backward time and peak memory per sequence for Mamba and the GPT baseline
/// of the same width and depth at L = 256 … 16K (batch 1); least-squares slopes on log-log axes, the
/// crossover, and a self-contained HTML report with both log-log plots. MAMBA4_DEVICE=cuda runs it on
/// the GPU (skipped, saying why, when there is none); the report goes to $MAMBA4_REPORT_DIR, else $OUT,
/// else runs/bench. Decoding cost per position is `bench generate`.
/// </summary>
public static class ScalingBench
{
    private const int D = 128, Layers = 2, Vocab = 256;
    private static readonly int[] Lengths = [256, 512, 1024, 2048, 4096, 8192, 16384];
    private const int LongFrom = 2048;

    private sealed record Row(int L, double MambaMs, double MambaBytes, double GptMs, double GptBytes);

    public static void Run()
    {
        if (!BenchSettings.Current.UsableDevice("scaling", out var device)) return;
        Console.WriteLine($"== scaling ({device}): forward+backward per sequence, d_model {D}, {Layers} layers (the GPT: {Layers} layers, 2 heads), batch 1");
        Console.WriteLine($"{"L",7} {"mamba ms",10} {"mamba peak MB",14} {"gpt ms",10} {"gpt peak MB",12} {"gpt/mamba",10}");
        using var mamba = new MambaLM(new MambaConfig { DModel = D, NLayer = Layers, DState = 16, VocabSize = Vocab }, seed: 1);
        using var gpt = new GptLM(new GptConfig { DModel = D, NLayer = Layers, NHead = 2, VocabSize = Vocab, MaxPositions = Lengths[^1] }, seed: 1);
        if (!device.IsCpu) { mamba.To(device); gpt.To(device); }
        // let the JIT reach its final tier first (methods are recompiled after 30 calls, in the background)
        foreach (var warm in new[] { Step(mamba, 128, device), Step(gpt, 128, device) })
            for (int i = 0; i < 40; i++) warm();
        Thread.Sleep(500);
        var rows = new List<Row>();
        foreach (int l in Lengths)
        {
            var m = Step(mamba, l, device);
            var g = Step(gpt, l, device);
            var (mp, gp) = (Peak(m, device), Peak(g, device));
            // times interleaved (mamba, gpt, mamba, gpt, …) so load from other processes falls on both; medians
            var (mts, gts) = (new List<double>(), new List<double>());
            int reps = device.IsCpu ? (l >= 4096 ? 3 : 5) : 7;
            for (int i = 0; i < reps; i++) { mts.Add(Time(m)); gts.Add(Time(g)); }
            var (mt, gt) = (mts.Order().ElementAt(reps / 2), gts.Order().ElementAt(reps / 2));
            rows.Add(new Row(l, mt, mp, gt, gp));
            Console.WriteLine($"{l,7} {mt,10:F1} {mp / 1e6,14:F1} {gt,10:F1} {gp / 1e6,12:F1} {gt / mt,10:F2}");
        }
        var notes = new List<string[]>();
        foreach (var (what, m, g) in new[] { ("time", (Func<Row, double>)(r => r.MambaMs), (Func<Row, double>)(r => r.GptMs)), ("peak memory", r => r.MambaBytes, r => r.GptBytes) })
        {
            var (sm, am) = Fit(rows, m);
            var (sg, ag) = Fit(rows, g);
            // fixed per-call costs flatten the short lengths; the slope over the long half shows the asymptotic order
            var upper = rows.Where(r => r.L >= LongFrom).ToList();
            string[] lines = [$"{what}: log-log slope over all L: mamba {sm:F2}, gpt {sg:F2} (1 = linear, 2 = quadratic)",
                              $"{what}: log-log slope over L ≥ {LongFrom}: mamba {Fit(upper, m).Slope:F2}, gpt {Fit(upper, g).Slope:F2}",
                              $"{what}: {Crossover(rows, m, g, sm, am, sg, ag)}"];
            foreach (var line in lines) Console.WriteLine(line);
            notes.Add(lines);
        }
        var path = Report(device, rows, notes);
        Console.WriteLine($"report: {path}");
        Console.WriteLine();
    }

    /// <summary>One forward+backward of a length-<paramref name="l"/> sequence (loss on every next token), gradients dropped; waits for the GPU.</summary>
    private static Action Step(ICausalLanguageModel model, int l, Device device)
    {
        var ids = Enumerable.Range(0, l).Select(i => (long)(i * 31 % Vocab)).ToArray();
        var targets = ids.Skip(1).Append(-100L).ToArray();
        var backend = Backend.For(device);
        return () =>
        {
            using var scope = new TensorScope();
            F.CrossEntropy(model.Logits(Tensor.From(ids, 1, l)), Tensor.From(targets, 1, l)).Backward();
            model.AsModule.ZeroGrad();
            if (backend is CudaBackend gpu) gpu.Synchronize();
        };
    }

    private static double Time(Action step)
    {
        long t0 = Stopwatch.GetTimestamp();
        step();
        return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }

    /// <summary>Most tensor memory in use during one step beyond what was in use before it (run once first, so pools are warm).</summary>
    private static long Peak(Action step, Device device)
    {
        step();
        Backend.ResetPeak(device);
        long before = Backend.BytesInUse(device);
        step();
        return Backend.PeakBytesInUse(device) - before;
    }

    /// <summary>Least-squares line through (log L, log y): slope and intercept (y ≈ e^intercept · L^slope).</summary>
    private static (double Slope, double Intercept) Fit(IReadOnlyList<Row> rows, Func<Row, double> y)
    {
        var xs = rows.Select(r => Math.Log(r.L)).ToArray();
        var ys = rows.Select(r => Math.Log(y(r))).ToArray();
        double mx = xs.Average(), my = ys.Average();
        double slope = xs.Zip(ys, (x, v) => (x - mx) * (v - my)).Sum() / xs.Sum(x => (x - mx) * (x - mx));
        return (slope, my - slope * mx);
    }

    /// <summary>Where the GPT becomes the costlier: between which measured lengths, and where the two fitted power laws meet.</summary>
    private static string Crossover(List<Row> rows, Func<Row, double> m, Func<Row, double> g, double sm, double am, double sg, double ag)
    {
        string fitted = sg > sm ? $"fitted lines cross at L ≈ {Math.Exp((am - ag) / (sg - sm)):N0}" : "fitted lines do not cross";
        if (g(rows[0]) >= m(rows[0])) return $"the GPT costs more at every length measured ({fitted})";
        int i = rows.FindIndex(r => g(r) >= m(r));
        if (i < 0) return $"the GPT costs less at every length measured ({fitted})";
        // interpolate log(gpt/mamba) linearly in log L between the two rows around the sign change
        double r0 = Math.Log(g(rows[i - 1]) / m(rows[i - 1])), r1 = Math.Log(g(rows[i]) / m(rows[i]));
        double at = Math.Exp(Math.Log(rows[i - 1].L) + (Math.Log(rows[i].L) - Math.Log(rows[i - 1].L)) * r0 / (r0 - r1));
        return $"the GPT costs more from L ≈ {at:N0} (between {rows[i - 1].L} and {rows[i].L}; {fitted})";
    }

    private static string Report(Device device, List<Row> rows, List<string[]> notes)
    {
        var dir = BenchSettings.Current.ReportDirectory;
        Directory.CreateDirectory(dir);
        var path = Path.GetFullPath(Path.Combine(dir, $"scaling-{device.ToString().Replace(':', '-')}.html"));
        IReadOnlyList<(double, double)> Series(Func<Row, double> f) => rows.Select(x => ((double)x.L, f(x))).ToList();
        new HtmlReport($"Scaling: Mamba vs the Transformer ({device})")
            .Paragraph($"Forward + backward (cross-entropy loss) of one sequence of length L, batch 1, d_model {D}, {Layers} layers each " +
                       $"(the GPT baseline: {Layers} pre-LayerNorm blocks, 2 heads, memory-efficient causal attention). Time: median of the repeats; " +
                       "peak memory: the most tensor memory in use during a step beyond what was in use before it (weights). Times of the two models are taken " +
                       $"alternately at each length and the median is shown. Slopes are least-squares fits on log-log axes, over all lengths and over L ≥ {LongFrom}.")
            .Chart("Time per sequence (log-log)", "sequence length L", "ms", [("mamba", Series(x => x.MambaMs)), ("transformer", Series(x => x.GptMs))], logY: true, logX: true, notes: notes[0])
            .Chart("Peak memory per sequence (log-log)", "sequence length L", "MB", [("mamba", Series(x => x.MambaBytes / 1e6)), ("transformer", Series(x => x.GptBytes / 1e6))], logY: true, logX: true, notes: notes[1])
            .Table(["L", "mamba ms", "mamba peak MB", "gpt ms", "gpt peak MB", "gpt / mamba time"],
                rows.Select(x => new[] { x.L.ToString(), x.MambaMs.ToString("F1"), (x.MambaBytes / 1e6).ToString("F1"), x.GptMs.ToString("F1"), (x.GptBytes / 1e6).ToString("F1"), (x.GptMs / x.MambaMs).ToString("F2") }))
            .Paragraph(string.Join(" ", notes.SelectMany(n => n).Select(l => l + ".")))
            .Save(path);
        return path;
    }
}
