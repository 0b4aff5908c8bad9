using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tasks.Recommendation;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// Mamba4Rec vs SASRec as the history grows: training time (forward + backward of the all-positions objective,
/// the `rec train` default) per 1,024 users and full-ranking inference time (seq_output at the last position, scores
/// over every item, as evaluation does) per 4,096 users, at max_len 50, 200, 800, 3200, on synthetic histories that
/// fill the window. Reference sizes: Mamba4Rec hidden 64, 1 layer, d_state 32; SASRec RecBole's 2 layers, 2 heads,
/// inner 256; 1,000 items. Each batch holds about the same number of tokens (fewer users at long lengths) and times
/// are normalised per user, so every length costs the bench about the same; the two models run interleaved
/// (A, B, A, B, ...) and each number is a median.
/// </summary>
public static class RecLenBench
{
    private const int Items = 1000, TrainTokens = 3200, InferTokens = 12_800, Reps = 3;

    public static void Run(string[] args)
    {
        int[] lengths = [50, 200, 800, 3200];
        if (args.Length > 1 && int.TryParse(args[1], out int max)) lengths = lengths.Where(l => l <= max).ToArray();
        Console.WriteLine($"== reclen: Mamba4Rec vs SASRec by history length ({Items:N0} items; {Environment.ProcessorCount} CPU threads)");
        Console.WriteLine($"train: forward+backward, all-positions loss, ~{TrainTokens:N0} tokens per batch, time per 1,024 users; " +
                          $"infer: full ranking at the last position, ~{InferTokens:N0} tokens per batch, time per 4,096 users (measured on min(4096, {20 * InferTokens:N0}/L) users)");
        using var mamba = new Mamba4Rec(new Mamba4RecConfig { NItems = Items + 1 }, seed: 1);
        using var sas = new SASRec(new SASRecConfig { NItems = Items + 1, MaxSeqLength = lengths.Max() }, seed: 1);
        ISequentialRecommender[] models = [mamba, sas];
        Console.WriteLine($"{"L",6} | {"train s/1k users",17} {"sas/mamba",9} | {"peak MB/batch",14} | {"infer s/4096 users",19} {"sas/mamba",9} | users (train batch, infer)");
        Console.WriteLine($"{"",6} | {"mamba",8} {"sasrec",8} {"",9} | {"mamba",6} {"sasrec",7} | {"mamba",9} {"sasrec",9} {"",9} |");
        var rows = new List<(int L, double TrainM, double TrainS, double InferM, double InferS)>();
        foreach (int l in lengths)
        {
            var rng = new Random(l);
            int trainUsers = Math.Max(1, TrainTokens / l), inferBatch = Math.Max(1, InferTokens / l);
            int inferUsers = Math.Min(4096, Math.Max(inferBatch, 20 * InferTokens / l));
            long[] Histories(int users) => Enumerable.Range(0, users * l).Select(_ => (long)rng.Next(1, Items + 1)).ToArray();
            var trainSeq = Histories(trainUsers);
            var targets = trainSeq.Skip(1).Append(1L).ToArray(); // the next item at every position (any item will do for timing)
            var inferSeq = Histories(inferUsers);

            double Train(ISequentialRecommender m)
            {
                var module = (Nn.Module)m;
                module.Train();
                CpuAllocator.Shared.ResetPeak();
                var sw = Stopwatch.StartNew();
                using (var scope = new TensorScope())
                    RecExperiment.AllPositionsLoss(m, Tensor.From(trainSeq, trainUsers, l), Tensor.From(targets, trainUsers, l)).Loss.Backward();
                double s = sw.Elapsed.TotalSeconds;
                module.ZeroGrad();
                return s;
            }
            double Infer(ISequentialRecommender m)
            {
                ((Nn.Module)m).Eval();
                var sw = Stopwatch.StartNew();
                using var _ = GradMode.NoGrad();
                for (int start = 0; start < inferUsers; start += inferBatch)
                {
                    int b = Math.Min(inferBatch, inferUsers - start);
                    using var scope = new TensorScope();
                    m.Scores(m.Forward(Tensor.From(inferSeq.AsSpan(start * l, b * l).ToArray(), b, l), Tensor.From(Enumerable.Repeat((long)l, b).ToArray(), b))).ToFloatArray();
                }
                return sw.Elapsed.TotalSeconds;
            }

            foreach (var m in models) { Train(m); Infer(m); } // warm-up: JIT and the allocator's pools for this size
            var train = new List<double>[] { [], [] };
            var infer = new List<double>[] { [], [] };
            var peak = new long[2];
            for (int r = 0; r < Reps; r++)
                for (int i = 0; i < 2; i++)
                {
                    long before = CpuAllocator.Shared.BytesInUse;
                    train[i].Add(Train(models[i]));
                    peak[i] = Math.Max(peak[i], CpuAllocator.Shared.PeakBytesInUse - before);
                }
            for (int r = 0; r < Reps; r++)
                for (int i = 0; i < 2; i++) infer[i].Add(Infer(models[i]));
            double tm = Median(train[0]) / trainUsers * 1024, ts = Median(train[1]) / trainUsers * 1024;
            double im = Median(infer[0]) / inferUsers * 4096, isas = Median(infer[1]) / inferUsers * 4096;
            rows.Add((l, tm, ts, im, isas));
            Console.WriteLine($"{l,6} | {tm,8:F2} {ts,8:F2} {ts / tm,9:F2} | {peak[0] / 1e6,6:F0} {peak[1] / 1e6,7:F0} | {im,9:F2} {isas,9:F2} {isas / im,9:F2} | {trainUsers}, {inferUsers}");
        }
        if (rows.Count < 2) return;
        Report("train", rows.Select(r => (r.L, r.TrainM, r.TrainS)).ToList());
        Report("infer", rows.Select(r => (r.L, r.InferM, r.InferS)).ToList());

        // The recurrent alternative to re-running a history: one new interaction for 4,096 users (state kept).
        using (GradMode.NoGrad())
        {
            mamba.Eval();
            using var state = mamba.NewState(4096);
            var items = Tensor.From(Enumerable.Range(0, 4096).Select(i => (long)(i % Items + 1)).ToArray(), 4096);
            var times = new List<double>();
            for (int r = 0; r < Reps + 1; r++)
            {
                var sw = Stopwatch.StartNew();
                using (var scope = new TensorScope()) mamba.Scores(mamba.Step(items, state)).ToFloatArray();
                if (r > 0) times.Add(sw.Elapsed.TotalSeconds);
            }
            Console.WriteLine($"Mamba4Rec recurrent update (one new interaction + full ranking) for 4,096 users: {Median(times):F3} s at any history length " +
                              $"(state {state.Bytes / 4096:N0} bytes per user)");
        }
        Console.WriteLine();
    }

    /// <summary>Growth exponents (log-log slope of time per user against L, overall and per step) and the crossover.</summary>
    private static void Report(string what, List<(int L, double Mamba, double Sas)> rows)
    {
        static double Slope(double a, double b, int la, int lb) => Math.Log(b / a) / Math.Log(lb / (double)la);
        string Steps(Func<(int L, double Mamba, double Sas), double> f) =>
            string.Join(", ", rows.Zip(rows.Skip(1), (a, b) => $"{Slope(f(a), f(b), a.L, b.L):F2}"));
        Console.WriteLine($"{what}: growth exponent (log-log slope of time per user vs L; 1 = linear, 2 = quadratic) " +
                          $"mamba4rec {Slope(rows[0].Mamba, rows[^1].Mamba, rows[0].L, rows[^1].L):F2} [{Steps(r => r.Mamba)}], " +
                          $"sasrec {Slope(rows[0].Sas, rows[^1].Sas, rows[0].L, rows[^1].L):F2} [{Steps(r => r.Sas)}]");
        // Crossover: where log(sas/mamba) changes sign, interpolated linearly in log L between the measured lengths.
        string cross = rows[0].Sas >= rows[0].Mamba
            ? rows.All(r => r.Sas >= r.Mamba) ? $"Mamba4Rec is faster at every length measured (SASRec/Mamba4Rec {rows[0].Sas / rows[0].Mamba:F2} at L = {rows[0].L})" : "mixed"
            : "SASRec stays faster at every length measured";
        for (int i = 0; i + 1 < rows.Count; i++)
        {
            double a = Math.Log(rows[i].Sas / rows[i].Mamba), b = Math.Log(rows[i + 1].Sas / rows[i + 1].Mamba);
            if (a < 0 && b >= 0)
            {
                double lx = Math.Exp(Math.Log(rows[i].L) + -a / (b - a) * (Math.Log(rows[i + 1].L) - Math.Log(rows[i].L)));
                cross = $"crossover at L ≈ {lx:F0} (SASRec faster below, Mamba4Rec faster above)";
                break;
            }
        }
        Console.WriteLine($"{what}: {cross}");
    }

    private static double Median(List<double> x)
    {
        var s = x.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
