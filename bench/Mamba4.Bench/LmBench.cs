using System.Diagnostics;
using System.Text.Json.Nodes;
using Mamba4.Models;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tensors;
using Mamba4.Training;
using Mamba4.Ops;

namespace Mamba4.Bench;

/// <summary>
/// Character-level language modelling on Tiny Shakespeare (90/10 split) under a wall-clock budget:
/// Mamba vs the GPT baseline. Arguments: lm [mamba|gpt] [d_model] [layers] [seq] [batch] [lr] [minutes].
/// </summary>
public static class LmBench
{
    public static void Run(string[] args)
    {
        string kind = args.Length > 1 ? args[1] : "mamba";
        int d = args.Length > 2 ? int.Parse(args[2]) : 128, layers = args.Length > 3 ? int.Parse(args[3]) : 4;
        int seq = args.Length > 4 ? int.Parse(args[4]) : 128, batch = args.Length > 5 ? int.Parse(args[5]) : 16;
        float lr = args.Length > 6 ? float.Parse(args[6], System.Globalization.CultureInfo.InvariantCulture) : 3e-3f;
        double minutes = args.Length > 7 ? double.Parse(args[7], System.Globalization.CultureInfo.InvariantCulture) : 5;
        var text = File.ReadAllText(Path.Combine(FindShared(), "data", "text", "tinyshakespeare.txt"));
        var chars = text.Distinct().Order().ToArray();
        var index = chars.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i);
        var stream = new TokenStream(text.Select(c => index[c]).ToArray());
        ICausalLanguageModel model = kind == "gpt"
            ? new GptLM(new GptConfig { DModel = d, NLayer = layers, NHead = Math.Max(1, d / 64), VocabSize = chars.Length, MaxPositions = seq }, seed: 1)
            : new MambaLM(new MambaConfig { DModel = d, NLayer = layers, DState = 16, VocabSize = chars.Length }, seed: 1);
        var module = model.AsModule;
        long steps = 1_000_000;
        Console.WriteLine($"== lm: {kind} d{d} x{layers}, {module.ParameterCount:N0} parameters, seq {seq}, batch {batch}, lr {lr}, {minutes} min budget");
        var sw = Stopwatch.StartNew();
        using var trainer = new Trainer(module, new TrainerOptions { Steps = steps, LearningRate = lr, WarmupSteps = 100, WeightDecay = 0.1f, Seed = 1 },
            new JsonObject(), (step, _) =>
            {
                var (x, y) = stream.Batch(1, step, batch, seq);
                return (F.CrossEntropy(model.Logits(Tensor.From(x, batch, seq)), Tensor.From(y, batch, seq)), (long)batch * seq);
            });
        long lastReport = 0;
        trainer.StepDone += r =>
        {
            if (sw.Elapsed.TotalSeconds - lastReport >= 60)
            {
                lastReport = (long)sw.Elapsed.TotalSeconds;
                Console.WriteLine($"  {sw.Elapsed.TotalMinutes:F1} min step {r.Step} train {r.Loss:F3} val {stream.ValidationLoss(model, seq):F3} ({r.TokensPerSecond / 1000:F1}k tok/s)");
            }
        };
        trainer.Run(() => sw.Elapsed.TotalMinutes >= minutes);
        Console.WriteLine($"final: step {trainer.Step}, validation loss {stream.ValidationLoss(model, seq, maxWindows: 512):F4} nats/char after {sw.Elapsed.TotalMinutes:F1} min");
    }

    private static string FindShared()
    {
        if (BenchSettings.Current.Shared is { } env) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (Directory.Exists(Path.Combine(dir.FullName, "shared", "data"))) return Path.Combine(dir.FullName, "shared");
        throw new DirectoryNotFoundException("shared/data not found above " + AppContext.BaseDirectory);
    }
}
