using Mamba4.Backends;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Training;

namespace Mamba4.Bench;

/// <summary>
/// Where a training step's memory traffic goes, op by op (bench name "train-traffic"): the bytes of every kernel's tensor
/// arguments (<see cref="ProfilingBackend.Traffic"/>), for one step (forward, backward, clip, AdamW) of the 130M shape at
/// two lengths on this machine's device, split by a line through the two into bytes a token (activations) and bytes a
/// step (weights, optimizer), then projected to 8 × 2,048 tokens. On a GPU every op outside the products is bound by
/// these bytes, so this is the list to shorten first (issue 19, target 1). Tensors inside argument structs (the scan's)
/// are not counted: the scan is bound by its exponentials, not its bytes.
/// </summary>
public static class TrainTrafficBench
{
    public static void Run()
    {
        if (!BenchSettings.Current.UsableDevice("train-traffic", out var device)) return;
        var config = new MambaConfig { DModel = 768, NLayer = 24, DState = 16, VocabSize = 50280 };
        using var model = new MambaLM(config, seed: 1);
        if (!device.IsCpu) model.To(device);
        using var optimizer = new AdamW(model, 1e-4f);
        int[] lengths = [256, 512];
        var measured = new Dictionary<int, IReadOnlyList<(string Kernel, long Calls, long Bytes)>>();
        foreach (int l in lengths)
        {
            var rng = new Random(7);
            var ids = Enumerable.Range(0, l).Select(_ => (long)rng.Next(config.VocabSize)).ToArray();
            TrainMemoryBench.Step(model, optimizer, ids, 1, l);   // warm-up
            Backend.EnableProfiling();
            ProfilingBackend.Reset();
            TrainMemoryBench.Step(model, optimizer, ids, 1, l);
            Backend.DisableProfiling();
            measured[l] = ProfilingBackend.Traffic();
        }
        const long projected = 8 * 2048;
        var (l0, l1) = (lengths[0], lengths[1]);
        var rows = measured[l1].Select(r =>
        {
            long b0 = measured[l0].FirstOrDefault(x => x.Kernel == r.Kernel).Bytes;
            double perToken = (r.Bytes - b0) / (double)(l1 - l0), perStep = r.Bytes - perToken * l1;
            return (r.Kernel, r.Calls, PerToken: perToken, PerStep: perStep, Projected: perToken * projected + perStep);
        }).OrderByDescending(r => r.Projected).ToList();
        double total = rows.Sum(r => r.Projected);
        Console.WriteLine($"== train-traffic ({device}): one training step of the 130M shape (24 layers, F32), bytes of every kernel's tensor arguments,");
        Console.WriteLine($"measured at 1 × {l0} and 1 × {l1} tokens, projected to {projected:N0} tokens (8 × 2048)");
        Console.WriteLine("| kernel | calls a step | bytes a token | bytes a step (fixed) | GB at 8 × 2048 | share |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var r in rows.Where(r => r.Projected > 0.001 * total))
            Console.WriteLine($"| {r.Kernel} | {r.Calls} | {r.PerToken:N0} | {r.PerStep:N0} | {r.Projected / 1e9:F2} | {r.Projected / total:P1} |");
        Console.WriteLine($"| all | {rows.Sum(r => r.Calls)} | {rows.Sum(r => r.PerToken):N0} | {rows.Sum(r => r.PerStep):N0} | {total / 1e9:F2} | |");
        Console.WriteLine();
    }
}
