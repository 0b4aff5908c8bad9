using System.Diagnostics;
using Mamba4.Backends;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Bench;

/// <summary>
/// Training memory with and without <see cref="MambaLM.Recompute"/> (the Mamba-1 mixers rerun their inner ops in the
/// backward), in the same run: the step's peak bytes above the resident weights and AdamW state, per token, and per
/// layer and token (from two depths), with the step time of each (medians of interleaved steps) and the ratios. 130M
/// widths (d_model 768, vocabulary 50,280); MAMBA4_DEVICE picks the device: on the CPU 2 and 4 layers at 1 × 1,024
/// tokens, on a GPU 12 and 24 layers at 1, 4 and 8 × 2,048.
/// </summary>
public static class TrainMemoryBench
{
    public static void Run()
    {
        if (!BenchSettings.Current.UsableDevice("train-memory", out var device)) return;
        var (depths, shapes, reps) = device.IsCpu ? (new[] { 2, 4 }, new[] { (1, 1024) }, 3) : (new[] { 12, 24 }, new[] { (1, 2048), (4, 2048), (8, 2048) }, 5);
        Console.WriteLine($"== train-memory ({device}): one training step (forward, backward, clip, AdamW), 130M widths, F32; keep = every intermediate, recompute = MambaLM.Recompute");
        Console.WriteLine("| layers | batch × L | keep: step bytes / token | recompute | ratio | keep: ms/step | recompute | ratio |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        var perToken = new Dictionary<(int Layers, int Batch, bool Recompute), double>();
        foreach (int layers in depths)
        {
            using var model = new MambaLM(new MambaConfig { DModel = 768, NLayer = layers, DState = 16, VocabSize = 50280 }, seed: 1);
            if (!device.IsCpu) model.To(device);
            using var optimizer = new AdamW(model, 1e-4f);
            foreach (var (batch, length) in shapes)
            {
                var rng = new Random(7);
                var ids = Enumerable.Range(0, batch * length).Select(_ => (long)rng.Next(50280)).ToArray();
                var bytes = new Dictionary<bool, long>();
                var times = new Dictionary<bool, List<double>> { [false] = [], [true] = [] };
                foreach (bool recompute in new[] { false, true })
                {
                    model.Recompute = recompute;
                    Step(model, optimizer, ids, batch, length);   // warm-up: kernels, AdamW state
                    long resident = Backend.BytesInUse(device);
                    Backend.ResetPeak(device);
                    Step(model, optimizer, ids, batch, length);
                    bytes[recompute] = Backend.PeakBytesInUse(device) - resident;
                    perToken[(layers, batch, recompute)] = bytes[recompute] / (double)(batch * length);
                }
                for (int i = 0; i < reps; i++)   // interleaved, so load from elsewhere falls on both
                    foreach (bool recompute in new[] { false, true })
                    {
                        model.Recompute = recompute;
                        times[recompute].Add(Step(model, optimizer, ids, batch, length));
                    }
                double Median(List<double> t) => t.Order().ElementAt(t.Count / 2) * 1000;
                double tokens = batch * length;
                Console.WriteLine($"| {layers} | {batch} × {length} | {bytes[false] / tokens:N0} | {bytes[true] / tokens:N0} | {bytes[true] / (double)bytes[false]:F2}× " +
                    $"| {Median(times[false]):F1} | {Median(times[true]):F1} | {Median(times[true]) / Median(times[false]):F3}× |");
            }
        }
        foreach (var (batch, length) in shapes)
        {
            double Layer(bool r) => (perToken[(depths[1], batch, r)] - perToken[(depths[0], batch, r)]) / (depths[1] - depths[0]);
            Console.WriteLine($"per layer and token ({batch} × {length}, from {depths[0]} and {depths[1]} layers): keep {Layer(false):N0} bytes, recompute {Layer(true):N0} ({Layer(true) / Layer(false):F2}×)");
        }
        Console.WriteLine();
    }

    /// <summary>One training step (forward, backward, clip, AdamW) in its own scope; seconds, after the model's device has
    /// finished (cuda-model's training rows too).</summary>
    internal static double Step(MambaLM model, AdamW optimizer, long[] ids, int batch, int length)
    {
        long t0 = Stopwatch.GetTimestamp();
        using (new TensorScope())
        {
            model.Loss(Tensor.From(ids, batch, length)).Backward();
            optimizer.Step(Gradients.ClipFactor(model, 1.0).Scale);
        }
        model.ZeroGrad();
        if (Backend.For(model.LmHead.Device) is Mamba4.Backends.Cuda.CudaBackend gpu) gpu.Synchronize();
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }
}
