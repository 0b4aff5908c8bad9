using System.Diagnostics;
using System.Text.Json.Nodes;
using Mamba4.Backends;
using Mamba4.Models;
using Mamba4.Tasks.Synthetic;
using Mamba4.Training;

namespace Mamba4.Bench;

/// <summary>Training throughput of the default `mamba4 train` job, and where a step's time goes, kernel by kernel.</summary>
public static class TrainBench
{
    public static void Run()
    {
        Console.WriteLine("== train: the default job (selective copying, d_model 64, 2 layers, batch 32)");
        var o = new SyntheticOptions();
        var task = SyntheticTraining.CreateTask(o.Task, o.Length);
        using var model = new MambaLM(SyntheticTraining.ModelConfig(o, task), seed: 1);
        long Steps(int n, bool profile)
        {
            using var trainer = new Trainer(model, new TrainerOptions { Steps = n, Seed = 1 }, new JsonObject(),
                (step, _) => SyntheticTraining.Loss(model, task, 1, step, o.Batch));
            trainer.Run();
            return n * (long)o.Batch * task.Length;
        }
        Steps(20, false);
        var sw = Stopwatch.StartNew();
        long tokens = Steps(100, false);
        double plain = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"100 steps: {plain:F2} s, {tokens / plain / 1000:F1}k tokens/s, {plain / 100 * 1000:F1} ms/step");

        Backend.EnableProfiling();
        ProfilingBackend.Reset();
        sw.Restart();
        Steps(50, true);
        double profiled = sw.Elapsed.TotalSeconds;
        var rows = ProfilingBackend.Report();
        double kernels = rows.Sum(r => r.Seconds);
        Console.WriteLine($"profile of 50 steps ({profiled:F2} s wall, {kernels:F2} s in kernels; the rest is op/tape bookkeeping, data and the optimizer loop):");
        Console.WriteLine($"{"kernel",-26} {"calls",8} {"ms/step",9} {"share",7}");
        foreach (var (kernel, calls, seconds) in rows.Take(16))
            Console.WriteLine($"{kernel,-26} {calls,8} {seconds / 50 * 1000,9:F2} {seconds / profiled,7:P1}");
        Console.WriteLine();
    }
}
