using System.CommandLine;
using System.Diagnostics;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Text;

namespace Mamba4.Cli;

internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face Mamba model directory (config.json + model.safetensors)", Required = true };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "prompt token ids, comma-separated (e.g. 1,5,9)" };
        var promptText = new Option<string?>("--prompt") { Description = "prompt text (needs a tokenizer in the model directory)" };
        var stops = new Option<string[]>("--stop") { Description = "stop when the generated text contains this string (repeatable)", AllowMultipleArgumentsPerToken = false };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "tokens to generate", DefaultValueFactory = _ => 20 };
        var greedy = new Option<bool>("--greedy") { Description = "take the most likely token each step (default: sample)" };
        var temperature = new Option<float>("--temperature") { Description = "sampling temperature in [0, 10]; below 1e-5 (0 included) it takes the most likely token, as --greedy", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "sample among the k most likely tokens (0 = all)" };
        var topP = new Option<float>("--top-p") { Description = "nucleus sampling mass, in (0, 1]", DefaultValueFactory = _ => 1f };
        var penalty = new Option<float>("--repetition-penalty") { Description = "penalty for tokens already generated, in [0.1, 10] (1 = off)", DefaultValueFactory = _ => 1f };
        var seed = new Option<int>("--seed") { Description = "random seed for sampling" };
        var eos = new Option<long?>("--eos-token-id") { Description = "stop after this token" };
        var tokenizerPath = new Option<string?>("--tokenizer") { Description = "tokenizer.json (or a folder holding one) for --prompt, when the model directory has none" };
        var cmd = new Command("generate", """
            Generate tokens from a language model directory (an HF Mamba checkpoint, or one written by
            `mamba4 lm train`): Mamba decodes with the O(1)-per-token recurrent step. With --prompt-ids the
            whole sequence (prompt + generated ids) is printed comma-separated on the last line; with --prompt
            the text streams out as it is decoded.

            Examples:
              mamba4 generate --model ./mamba-130m-hf --prompt-ids 1,5,9 --max-new-tokens 12 --greedy
              mamba4 generate --model ./mamba-130m-hf --prompt-ids 50,60 --temperature 0.8 --top-p 0.9 --seed 1
              mamba4 generate --model runs/lm-mamba/model --prompt "ROMEO:" --max-new-tokens 200 --stop "\n\n"
            """);
        foreach (var o in new Option[] { model, promptIds, promptText, stops, maxNew, greedy, temperature, topK, topP, penalty, seed, eos, tokenizerPath }) cmd.Options.Add(o);
        var loadArguments = LoadArguments.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            var load = loadArguments.Parse(parse);
            var dir = parse.GetValue(model)!;
            string? text = parse.GetValue(promptText), idsText = parse.GetValue(promptIds);
            if ((text is null) == (idsText is null)) throw new ArgumentException("give exactly one of --prompt (text) and --prompt-ids");
            var tokenizer = text is null ? null : (parse.GetValue(tokenizerPath) is { } tp ? Tokenizer.Load(tp) : LanguageModelFiles.LoadTokenizer(dir))
                ?? throw new FileNotFoundException($"{dir} has no tokenizer: pass --tokenizer, use --prompt-ids, or a directory written by `mamba4 lm train`");
            long[] prompt;
            if (tokenizer is not null) prompt = tokenizer.Encode(text!).Select(i => (long)i).ToArray();
            else
            {
                try { prompt = idsText!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray(); }
                catch (Exception e) when (e is FormatException or OverflowException) { throw new ArgumentException($"--prompt-ids must be comma-separated integers, got '{idsText}'"); }
            }
            var options = new SamplingOptions
            {
                Greedy = parse.GetValue(greedy), Temperature = parse.GetValue(temperature), TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP), RepetitionPenalty = parse.GetValue(penalty), Seed = parse.GetValue(seed),
                EosTokenId = parse.GetValue(eos),
            };
            if (options.Problem() is { } problem) throw new ArgumentException($"--{problem.Field.Replace('_', '-')} {problem.Rule}");
            int maxTokens = parse.GetValue(maxNew);
            if (maxTokens < 1) throw new ArgumentException($"--max-new-tokens must be positive, got {maxTokens}");
            var lm = LanguageModelFiles.Load(dir, load);
            try
            {
                foreach (var id in prompt.Append(options.EosTokenId ?? 0))
                    if (id < 0 || id >= lm.VocabSize) throw new ArgumentException($"token id {id} (--prompt-ids / --eos-token-id) is outside the model's vocabulary [0, {lm.VocabSize})");
                var stopStrings = parse.GetValue(stops) ?? [];
                var output = new List<long>(prompt);
                var decoder = tokenizer?.CreateStreamingDecoder();
                var generatedText = new System.Text.StringBuilder();
                var sw = Stopwatch.StartNew();
                int count = 0;
                if (tokenizer is not null) Console.Write(text);
                try
                {
                    foreach (var token in LanguageModeling.Sample(lm, prompt, maxTokens, options))
                    {
                        output.Add(token);
                        count++;
                        if (tokenizer is null) { Console.Error.Write(count == 1 ? $"{token}" : $",{token}"); continue; }
                        var piece = decoder!.Push((int)token);
                        generatedText.Append(piece);
                        Console.Write(piece);
                        if (stopStrings.Any(s => generatedText.ToString().Contains(s, StringComparison.Ordinal))) break;
                    }
                }
                catch (NonFiniteLogitsException e)
                {
                    if (count > 0) Console.Error.WriteLine();   // the error goes on a line of its own, after the tokens so far
                    throw new InvalidDataException($"{dir}: generation stopped after {count} tokens: {e.Message}", e);   // one line, exit 1
                }
                sw.Stop();
                if (decoder is not null) Console.Write(decoder.Flush());
                Console.Error.WriteLine();
                Console.Error.WriteLine($"{count} tokens in {sw.Elapsed.TotalSeconds:F2} s ({count / Math.Max(1e-9, sw.Elapsed.TotalSeconds):F1} tokens/s)");
                if (tokenizer is null) Console.WriteLine(string.Join(",", output));
                else Console.WriteLine();
                return 0;
            }
            finally { lm.AsModule.Dispose(); }
        });
        return cmd;
    }
}
