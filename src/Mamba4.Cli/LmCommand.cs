using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Mamba4.Inference;
using Mamba4.Models;
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

    /// <summary>"char" builds a character vocabulary from the text; anything else is a tokenizer.json (or a folder holding one).</summary>
    private static ITokenizer TokenizerFor(string spec, string text) => spec == "char" ? CharTokenizer.FromText(text) : Tokenizer.Load(spec);

    private static Command Train()
    {
        var data = new Option<string?>("--data") { Description = "UTF-8 text file (default: a built-in generated corpus)" };
        var tokenizer = new Option<string>("--tokenizer") { Description = "char (a character vocabulary built from the text) or a Hugging Face tokenizer.json", DefaultValueFactory = _ => "char" };
        var model = new Option<string>("--model") { Description = "mamba | transformer", DefaultValueFactory = _ => "mamba" };
        var size = new Option<string>("--size") { Description = $"{string.Join(" | ", LanguageModeling.Sizes)} (width × layers: 64×2, 128×4, 256×6)", DefaultValueFactory = _ => "small" };
        var seq = new Option<int>("--seq-len") { Description = "training window in tokens", DefaultValueFactory = _ => 128 };
        var batch = new Option<int>("--batch") { Description = "windows per step", DefaultValueFactory = _ => 16 };
        var steps = new Option<long>("--steps") { Description = "optimizer steps", DefaultValueFactory = _ => 4000 };
        var minutes = new Option<double?>("--minutes") { Description = "stop (with a checkpoint) after this wall-clock budget" };
        var lr = new Option<float>("--lr") { Description = "peak learning rate", DefaultValueFactory = _ => 3e-3f };
        var seed = new Option<long>("--seed") { Description = "seed for weights, batches and dropout", DefaultValueFactory = _ => 1 };
        var output = new Option<string?>("--out") { Description = "output folder (default runs/lm-<model>)" };
        var resume = new Option<bool>("--resume") { Description = "continue from the checkpoint in the output folder" };
        var evalEvery = new Option<int>("--eval-every") { Description = "steps between validation passes", DefaultValueFactory = _ => 250 };
        var sampleEvery = new Option<int>("--sample-every") { Description = "steps between printed samples (0 = never)", DefaultValueFactory = _ => 1000 };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var cmd = new Command("train", """
            Train a language model on a text file: 90% of it for training, the last 10% for validation.
            Prints validation loss and perplexity as it goes and a sample every --sample-every steps; writes
            <out>/checkpoint.safetensors (Ctrl-C writes one; --resume continues), metrics.jsonl, report.html
            and <out>/model (config.json + model.safetensors + tokenizer) for `mamba4 lm eval` and `mamba4 generate`.

            Examples:
              mamba4 lm train --data tinyshakespeare.txt
              mamba4 lm train --data tinyshakespeare.txt --model transformer --minutes 10
              mamba4 lm train --size tiny --steps 500
            """);
        foreach (var o in new Option[] { data, tokenizer, model, size, seq, batch, steps, minutes, lr, seed, output, resume, evalEvery, sampleEvery, json }) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        cmd.SetAction(parse =>
        {
            DeviceOption.Use(parse, device);
            string kind = parse.GetValue(model)!, sizeName = parse.GetValue(size)!;
            LanguageModeling.Size(sizeName);
            if (kind is not ("mamba" or "transformer")) throw new ArgumentException($"--model must be mamba or transformer, got '{kind}'");
            int seqLen = parse.GetValue(seq), batchSize = parse.GetValue(batch);
            if (seqLen <= 1 || batchSize <= 0) throw new ArgumentException($"--seq-len must be > 1 and --batch > 0 (got {seqLen}, {batchSize})");
            Trainer.CheckTokensPerStep(batchSize, seqLen, "--seq-len");
            if (parse.GetValue(minutes) is <= 0 or double.NaN) throw new ArgumentException($"--minutes must be positive, got {parse.GetValue(minutes)}");
            if (parse.GetValue(sampleEvery) < 0) throw new ArgumentException($"--sample-every must be 0 (never) or more, got {parse.GetValue(sampleEvery)}");
            var path = parse.GetValue(data);
            if (path is not null && !File.Exists(path)) throw new FileNotFoundException($"--data: {path} not found", path);
            var outDir = parse.GetValue(output) ?? Path.Combine("runs", $"lm-{kind}");
            bool resuming = parse.GetValue(resume);
            RunFolder.Prepare(outDir, resuming, Console.Error.WriteLine);
            string text = path is null ? LanguageModeling.SyntheticCorpus() : File.ReadAllText(path);
            var tok = TokenizerFor(parse.GetValue(tokenizer)!, text);
            var stream = new TokenStream(tok.Encode(text));
            long seedValue = parse.GetValue(seed);
            var net = LanguageModeling.Create(kind, sizeName, tok.VocabSize, seqLen, (int)seedValue);
            try
            {
                var options = new TrainerOptions
                {
                    Steps = parse.GetValue(steps), LearningRate = parse.GetValue(lr), WarmupSteps = 100, WeightDecay = 0.1f, Seed = seedValue,
                    OutputDirectory = outDir, CheckpointEvery = 500, EvalEvery = parse.GetValue(evalEvery),
                };
                var config = new JsonObject
                {
                    ["data"] = path is null ? "built-in" : Path.GetFullPath(path), ["tokenizer"] = parse.GetValue(tokenizer), ["vocab"] = tok.VocabSize,
                    ["model"] = kind, ["size"] = sizeName, ["seq_len"] = seqLen, ["batch"] = batchSize, ["steps"] = options.Steps, ["lr"] = options.LearningRate, ["seed"] = seedValue,
                };
                double lastVal = double.NaN;
                using var trainer = new Trainer(net.AsModule, options, config,
                    (step, _) =>
                    {
                        var (x, y) = stream.Batch(seedValue, step, batchSize, seqLen);
                        return (Ops.CrossEntropy.Forward(net.Logits(Tensor.From(x, batchSize, seqLen)), Tensor.From(y, batchSize, seqLen)), (long)batchSize * seqLen);
                    },
                    () =>
                    {
                        lastVal = stream.ValidationLoss(net, seqLen);
                        return new Dictionary<string, double> { ["val_loss"] = lastVal, ["val_ppl"] = Math.Exp(lastVal) };
                    });
                if (resuming)
                {
                    trainer.Resume();
                    Console.Error.WriteLine($"resuming at step {trainer.Step}");
                }
                int every = parse.GetValue(sampleEvery);
                if (every > 0)
                    trainer.Evaluated += (step, _) =>
                    {
                        if (step % every != 0) return;
                        var prompt = stream.Validation.Take(16).Select(i => (long)i).ToArray();
                        var sample = LanguageModeling.Sample(net, prompt, 160, new SamplingOptions { Temperature = 0.8f, Seed = (int)step }).ToArray();
                        Console.Error.WriteLine($"--- sample at step {step} ---\n{tok.Decode([.. prompt, .. sample])}\n---");
                    };
                Console.Error.WriteLine($"{kind} ({sizeName}): {net.AsModule.ParameterCount:N0} parameters, vocabulary {tok.VocabSize}, {stream.Train.Length:N0} training / {stream.Validation.Length:N0} validation tokens");
                bool stop = false;
                var budget = parse.GetValue(minutes);
                var clock = System.Diagnostics.Stopwatch.StartNew();
                using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop = true; });
                using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop = true; });
                var device = net.AsModule.Parameters().First().Device;
                Backends.Backend.ResetPeak(device);
                var result = TrainingProgress.Run(kind, trainer, options.Steps, () => stop || (budget is { } m && clock.Elapsed.TotalMinutes >= m),
                    r => $"loss {r.Loss:F3}  val {(double.IsNaN(lastVal) ? "-" : lastVal.ToString("F3", CultureInfo.InvariantCulture))}");
                if (stop) { Console.Error.WriteLine($"stopped at step {result.Step}; checkpoint written. Continue with --resume."); return 130; }
                double peakMb = Backends.Backend.PeakBytesInUse(device) / 1e6;   // weights, gradients, AdamW moments and activations
                double val = stream.ValidationLoss(net, seqLen, maxWindows: 512);
                LanguageModelFiles.Save(net, tok, Path.Combine(outDir, "model"), parse.GetValue(tokenizer) == "char" ? null : parse.GetValue(tokenizer));
                WriteReport(outDir, kind);
                double tokensPerSecond = result.Step * (double)batchSize * seqLen / Math.Max(result.Seconds, 1e-9);
                Console.WriteLine($"{kind} ({sizeName}, {net.AsModule.ParameterCount:N0} parameters): validation loss {val:F4} nats/token, perplexity {Math.Exp(val):F2}, after {result.Step} steps in {result.Seconds:F0} s ({tokensPerSecond / 1000:F1}k tokens/s, peak tensor memory {peakMb:F0} MB); model: {Path.Combine(outDir, "model")}");
                if (parse.GetValue(json))
                    Console.WriteLine(new JsonObject
                    {
                        ["model"] = kind, ["size"] = sizeName, ["parameters"] = net.AsModule.ParameterCount, ["steps"] = result.Step,
                        ["val_loss"] = val, ["val_ppl"] = Math.Exp(val), ["tokens_per_s"] = Math.Round(tokensPerSecond, 1), ["seconds"] = Math.Round(result.Seconds, 2),
                        ["peak_mb"] = Math.Round(peakMb, 1),
                    }.ToJsonString());
                return 0;
            }
            finally { net.AsModule.Dispose(); }
        });
        return cmd;
    }

    private static void WriteReport(string outDir, string name)
    {
        var lines = File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        var train = lines.Where(l => l.ContainsKey("loss")).Select(l => (l["step"]!.GetValue<double>(), l["loss"]!.GetValue<double>())).ToList();
        var val = lines.Where(l => l.ContainsKey("eval")).Select(l => (l["eval"]!["step"]!.GetValue<double>(), l["eval"]!["val_loss"]!.GetValue<double>())).ToList();
        new HtmlReport($"Mamba4 language model: {name}")
            .Chart("Loss", "step", "nats per token", [("train", train), ("validation", val)])
            .Save(Path.Combine(outDir, "report.html"));
    }

    private static Command Eval()
    {
        var model = new Option<string>("--model") { Description = "a model directory written by `mamba4 lm train`", Required = true };
        var data = new Option<string>("--data") { Description = "UTF-8 text file", Required = true };
        var all = new Option<bool>("--all") { Description = "evaluate the whole file (default: its last 10%, the validation split)" };
        var seq = new Option<int>("--seq-len") { Description = "evaluation window", DefaultValueFactory = _ => 128 };
        var json = new Option<bool>("--json") { Description = "print one JSON object with the results as the last line" };
        var cmd = new Command("eval", """
            Loss (nats per token), perplexity and bits per byte of a trained model on a text.

            Example:
              mamba4 lm eval --model runs/lm-mamba/model --data tinyshakespeare.txt
            """);
        foreach (var o in new Option[] { model, data, all, seq, json }) cmd.Options.Add(o);
        var device = DeviceOption.Create();
        cmd.Options.Add(device);
        var allowNonFinite = AllowNonFiniteOption.Create();
        cmd.Options.Add(allowNonFinite);
        cmd.SetAction(parse =>
        {
            DeviceOption.Use(parse, device);
            var dir = parse.GetValue(model)!;
            var tok = LanguageModelFiles.LoadTokenizer(dir) ?? throw new FileNotFoundException($"{dir} holds no tokenizer.json");
            var path = parse.GetValue(data)!;
            if (!File.Exists(path)) throw new FileNotFoundException($"--data: {path} not found", path);
            var text = File.ReadAllText(path);
            var ids = tok.Encode(text);
            var part = parse.GetValue(all) ? ids : ids[(int)(ids.Length * 0.9)..];
            var net = LanguageModelFiles.Load(dir, AllowNonFiniteOption.LoadOptions(parse, allowNonFinite));
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
