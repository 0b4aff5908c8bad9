using System.Diagnostics;
using Mamba4.Autograd;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tensors;

namespace Mamba4.Bench;

/// <summary>
/// One model directory (e.g. written by `mamba4 init`) decoded at batch 1, as `mamba4 generate` does: load (with --dtype
/// f32|bf16|f16 or the checkpoint's own type), a 16-token prompt through the parallel forward, 2 warm-up steps, then
/// greedy steps timed (default 16). Prints the load time, decode tokens/s, and the process's memory from /proc/self/status:
/// VmHWM (peak resident), RssAnon (private memory: copies, state, buffers) and RssFile (mapped weight files).
/// <c>dotnet run --project bench/Mamba4.Bench -c Release -- scale DIR [f32|bf16|f16|own] [steps]</c>
/// </summary>
public static class ScaleBench
{
    public static void Run(string[] args)
    {
        if (args.Length < 2) throw new ArgumentException("scale: usage: scale DIR [f32|bf16|f16|own] [steps]");
        string dir = args[1], type = args.Length > 2 ? args[2] : "own";
        int steps = args.Length > 3 ? int.Parse(args[3]) : 16;
        DType? weights = type switch { "own" => null, "f32" => DType.F32, "bf16" => DType.BF16, "f16" => DType.F16, _ => throw new ArgumentException($"scale: dtype '{type}'") };
        var sw = Stopwatch.StartNew();
        using var lm = (MambaLM)LanguageModelFiles.Load(dir, new ModelLoadOptions { WeightDType = weights });
        double load = sw.Elapsed.TotalSeconds;
        using var _ = GradMode.NoGrad();
        using var state = lm.NewState(1);
        var prompt = Enumerable.Range(0, 16).Select(i => (long)(1 + 37 * i % (lm.Config.VocabSize - 1))).ToArray();
        sw.Restart();
        long token;
        using (new TensorScope())
            token = Argmax(lm.Forward(Tensor.From(prompt, 1, prompt.Length), state), last: true);
        double prefill = sw.Elapsed.TotalSeconds;
        for (int i = 0; i < 2; i++) token = Step(lm, state, token);   // warm-up
        sw.Restart();
        for (int i = 0; i < steps; i++) token = Step(lm, state, token);
        double decode = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"scale {Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/'))} weights={type} load_s={load:F1} prefill16_s={prefill:F2} " +
                          $"decode_tok_s={steps / decode:F2} {Status("VmHWM")} {Status("RssAnon")} {Status("RssFile")} " +
                          $"weight_types={string.Join('+', lm.Parameters().Select(p => p.DType).Distinct().Order())}");
    }

    private static long Step(MambaLM lm, Inference.MambaState state, long token)
    {
        using var scope = new TensorScope();
        return Argmax(lm.Step(Tensor.From([token], 1), state), last: false);
    }

    private static long Argmax(Tensor logits, bool last)
    {
        var all = logits.AsSpan<float>();
        int v = logits.Shape[-1];
        var row = last ? all[^v..] : all;
        int best = 0;
        for (int j = 1; j < row.Length; j++) if (row[j] > row[best]) best = j;
        if (!float.IsFinite(row[best])) throw new InvalidDataException("scale: non-finite logits");
        return best;
    }

    /// <summary>A /proc/self/status field in GiB, e.g. "VmHWM=5.21GiB".</summary>
    private static string Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        if (line is null) return $"{field}=?";
        long kb = long.Parse(line.Split(':')[1].Trim().Split(' ')[0]);
        return $"{field}={kb / (1024.0 * 1024):F2}GiB";
    }
}
