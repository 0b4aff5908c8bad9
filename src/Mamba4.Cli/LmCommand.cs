using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Tasks;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tensors;
using Mamba4.Text;
using Mamba4.Training;

namespace Mamba4.Cli;

/// <summary>`mamba4 lm train` / `mamba4 lm eval`: language models on your own text, Mamba or the Transformer baseline.</summary>
internal static class LmCommand
{
    public static Command Create()
    {
        var lm = new Command("lm", "Train and evaluate language models on text (Mamba or a GPT-style Transformer on the same engine).");
        lm.Subcommands.Add(Train());
        lm.Subcommands.Add(Eval());
        return lm;
    }

    private static Command Train()
    {
        var d = new LmTrainSettings();
        var data = new Option<string?>("--data") { Description = "UTF-8 text file, plain or gzip (default: a built-in generated corpus)" };
        var tokenizer = new Option<string>("--tokenizer") { Description = "char (a character vocabulary built from the text) or a Hugging Face tokenizer.json", DefaultValueFactory = _ => d.Tokenizer };
        var model = new Option<string>("--model") { Description = "mamba | transformer", DefaultValueFactory = _ => d.Model };
        var mixer = new Option<string>("--mixer") { Description = "Mamba's mixer: mamba1 (selective scan) | mamba2 (SSD, multi-head)", DefaultValueFactory = _ => d.Mixer };
        var headDim = new Option<int?>("--head-dim") { Description = "Mamba-2 head width (default: ≤ 64 dividing expand·width, at least 4 heads)" };
        var size = new Option<string>("--size") { Description = $"{string.Join(" | ", LanguageModeling.Sizes)} (width × layers: 64×2, 128×4, 256×6)", DefaultValueFactory = _ => d.Size };
        var seq = new Option<int>("--seq-len") { Description = "training window in tokens", DefaultValueFactory = _ => d.SeqLen };
        var batch = new Option<int>("--batch") { Description = "windows per step", DefaultValueFactory = _ => d.Batch };
        var steps = new Option<long>("--steps") { Description = "optimizer steps", DefaultValueFactory = _ => d.Steps };
        var minutes = new Option<double?>("--minutes") { Description = "stop (with a checkpoint) after this wall-clock budget" };
        var lr = new Option<float>("--lr") { Description = "peak learning rate (linear warm-up, then cosine)", DefaultValueFactory = _ => d.LearningRate };
        var warmup = new Option<long>("--warmup") { Description = "warm-up steps", DefaultValueFactory = _ => d.WarmupSteps };
        var weightDecay = new Option<float>("--weight-decay") { Description = "AdamW weight decay", DefaultValueFactory = _ => d.WeightDecay };
        var clip = new Option<double>("--clip") { Description = "gradient clipping by global norm (0 = off)", DefaultValueFactory = _ => d.ClipNorm };
        var seed = new Option<long>("--seed") { Description = "seed for weights, batches and dropout", DefaultValueFactory = _ => d.Seed };
        var output = new Option<string?>("--out") { Description = "output folder (default runs/lm-<model>)" };
        var resume = new Option<bool>("--resume") { Description = "continue from the checkpoint in the output folder" };
        var evalEvery = new Option<int>("--eval-every") { Description = "steps between validation passes", DefaultValueFactory = _ => d.EvalEvery };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "steps between checkpoints (0 = only when stopped)", DefaultValueFactory = _ => d.CheckpointEvery };
        var sampleEvery = new Option<int>("--sample-every") { Description = "steps between printed samples (0 = never)", DefaultValueFactory = _ => d.SampleEvery };
        var recompute = new Option<bool>("--recompute") { Description = "gradient checkpointing: Mamba-1 layers keep less for the backward and rerun their conv and projections there (about 40% less activation memory, a few % slower; the same gradients)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var device = DeviceOption.Create();
        var cmd = new Command("train", """
            Train a language model on a text file: 90% of it for training, the last 10% for validation.
            Prints validation loss and perplexity as it goes and a sample every --sample-every steps; writes
            <out>/checkpoint.safetensors (Ctrl-C writes one; --resume continues), metrics.jsonl, run.json, report.html
            and <out>/model (config.json + model.safetensors + tokenizer) for `mamba4 lm eval` and `mamba4 generate`.

            Examples:
              mamba4 lm train --data tinyshakespeare.txt
              mamba4 lm train --data tinyshakespeare.txt --model transformer --minutes 10
              mamba4 lm train --size tiny --steps 500
              mamba4 lm train --data tinyshakespeare.txt --mixer mamba2
            """);
        foreach (var o in new Option[] { data, tokenizer, model, mixer, headDim, size, seq, batch, steps, minutes, lr, warmup, weightDecay, clip, seed, output, resume, evalEvery, checkpointEvery, sampleEvery, recompute, json, device })
            cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var settings = new LmTrainSettings
            {
                Data = parse.GetValue(data), Tokenizer = parse.GetValue(tokenizer)!, Model = parse.GetValue(model)!, Size = parse.GetValue(size)!,
                Mixer = parse.GetValue(mixer)!, HeadDim = parse.GetValue(headDim),
                SeqLen = parse.GetValue(seq), Batch = parse.GetValue(batch), Steps = parse.GetValue(steps), Minutes = parse.GetValue(minutes),
                LearningRate = parse.GetValue(lr), WarmupSteps = parse.GetValue(warmup), WeightDecay = parse.GetValue(weightDecay), ClipNorm = parse.GetValue(clip),
                Seed = parse.GetValue(seed), OutputDirectory = parse.GetValue(output), Resume = parse.GetValue(resume),
                EvalEvery = parse.GetValue(evalEvery), CheckpointEvery = parse.GetValue(checkpointEvery), SampleEvery = parse.GetValue(sampleEvery),
                Device = DeviceOption.Use(parse, device), Recompute = parse.GetValue(recompute),
            };
            using var stop = new StopSignal();
            var result = LmTrainingRun.Run(settings, TrainingProgress.ForConsole, stop, Console.Error);
            if (result.Interrupted) return 130;
            Console.WriteLine(result.Summary);
            if (parse.GetValue(json)) Console.WriteLine(result.ToJson().ToJsonString());
            return 0;
        });
        return cmd;
    }

    private static Command Eval()
    {
        var model = new Option<string>("--model") { Description = "a model directory written by `mamba4 lm train`", Required = true };
        var data = new Option<string>("--data") { Description = "UTF-8 text file, plain or gzip", Required = true };
        var all = new Option<bool>("--all") { Description = "evaluate the whole file (default: its last 10%, the validation split)" };
        var seq = new Option<int>("--seq-len") { Description = "evaluation window", DefaultValueFactory = _ => 128 };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var cmd = new Command("eval", """
            Loss (nats per token), perplexity and bits per byte of a trained model on a text.

            Example:
              mamba4 lm eval --model runs/lm-mamba/model --data tinyshakespeare.txt
            """);
        foreach (var o in new Option[] { model, data, all, seq, json }) cmd.Options.Add(o);
        var loadArguments = LoadArguments.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            var load = loadArguments.Parse(parse);
            var dir = parse.GetValue(model)!;
            var tok = LanguageModelFiles.LoadTokenizer(dir) ?? throw new FileNotFoundException($"{dir} holds no tokenizer.json");
            var path = parse.GetValue(data)!;
            if (!File.Exists(path)) throw new FileNotFoundException($"--data: {path} not found", path);
            var text = Mamba4.IO.DataFile.ReadAllText(path);   // plain or gzip
            var ids = tok.Encode(text);
            var part = parse.GetValue(all) ? ids : ids[(int)(ids.Length * 0.9)..];
            var net = LanguageModelFiles.Load(dir, load);
            try
            {
                var stream = TokenStream.ForEvaluation(part);
                int seqLen = parse.GetValue(seq);
                double loss = stream.ValidationLoss(net, seqLen, maxWindows: int.MaxValue);
                long tokens = (stream.Validation.Length - 1) / seqLen * seqLen;
                double bytesPerToken = System.Text.Encoding.UTF8.GetByteCount(tok.Decode((ReadOnlySpan<int>)part)) / (double)part.Length;
                double bpb = loss / Math.Log(2) / bytesPerToken;
                Console.WriteLine($"loss {loss:F4} nats/token, perplexity {Math.Exp(loss):F3}, {bpb:F4} bits/byte over {tokens:N0} tokens");
                if (parse.GetValue(json))
                    Console.WriteLine(new JsonObject { ["val_loss"] = loss, ["val_ppl"] = Math.Exp(loss), ["bits_per_byte"] = bpb, ["tokens"] = tokens }.ToJsonString());
                return 0;
            }
            finally { net.AsModule.Dispose(); }
        });
        return cmd;
    }
}
