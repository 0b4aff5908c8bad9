using System.CommandLine;
using System.Diagnostics;
using Mamba4.Inference;
using Mamba4.Models;

namespace Mamba4.Cli;

internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face Mamba model directory (config.json + model.safetensors)", Required = true };
        var promptIds = new Option<string>("--prompt-ids") { Description = "prompt token ids, comma-separated (e.g. 1,5,9)", Required = true };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "tokens to generate", DefaultValueFactory = _ => 20 };
        var greedy = new Option<bool>("--greedy") { Description = "take the most likely token each step (default: sample)" };
        var temperature = new Option<float>("--temperature") { Description = "sampling temperature", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "sample among the k most likely tokens (0 = all)" };
        var topP = new Option<float>("--top-p") { Description = "nucleus sampling mass", DefaultValueFactory = _ => 1f };
        var penalty = new Option<float>("--repetition-penalty") { Description = "penalty for tokens already generated (1 = off)", DefaultValueFactory = _ => 1f };
        var seed = new Option<int>("--seed") { Description = "random seed for sampling" };
        var eos = new Option<long?>("--eos-token-id") { Description = "stop after this token" };
        var cmd = new Command("generate", """
            Generate tokens from a Mamba language model with the O(1)-per-token recurrent step.
            The whole sequence (prompt + generated ids) is printed comma-separated on the last line.

            Examples:
              mamba4 generate --model ./mamba-130m-hf --prompt-ids 1,5,9 --max-new-tokens 12 --greedy
              mamba4 generate --model ./mamba-130m-hf --prompt-ids 50,60 --temperature 0.8 --top-p 0.9 --seed 1
            """);
        foreach (var o in new Option[] { model, promptIds, maxNew, greedy, temperature, topK, topP, penalty, seed, eos }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            long[] prompt;
            try
            {
                prompt = parse.GetValue(promptIds)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray();
            }
            catch (FormatException)
            {
                Console.Error.WriteLine($"error: --prompt-ids must be comma-separated integers, got '{parse.GetValue(promptIds)}'");
                return 2;
            }
            using var lm = MambaLM.FromPretrained(parse.GetValue(model)!);
            var options = new SamplingOptions
            {
                Greedy = parse.GetValue(greedy), Temperature = parse.GetValue(temperature), TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP), RepetitionPenalty = parse.GetValue(penalty), Seed = parse.GetValue(seed),
                EosTokenId = parse.GetValue(eos),
            };
            var output = new List<long>(prompt);
            var sw = Stopwatch.StartNew();
            int count = 0;
            foreach (var token in Generator.Stream(lm, prompt, parse.GetValue(maxNew), options))
            {
                output.Add(token);
                count++;
                Console.Error.Write(count == 1 ? $"{token}" : $",{token}");
            }
            sw.Stop();
            Console.Error.WriteLine();
            Console.Error.WriteLine($"{count} tokens in {sw.Elapsed.TotalSeconds:F2} s ({count / Math.Max(1e-9, sw.Elapsed.TotalSeconds):F1} tokens/s)");
            Console.WriteLine(string.Join(",", output));
            return 0;
        });
        return cmd;
    }
}
