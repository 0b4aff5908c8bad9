using System.CommandLine;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tensors;

namespace Mamba4.Cli;

internal static class InitCommand
{
    public static Command Create()
    {
        var shape = new Option<string?>("--shape") { Description = $"a public checkpoint's shape: {string.Join(", ", ModelShapes.Names)}" };
        var config = new Option<string?>("--config") { Description = "instead of --shape: a config.json of one's own (Mamba, Mamba-2 or Falcon-Mamba)" };
        var output = new Option<string>("--out") { Description = "directory to write (config.json, model-0000i-of-0000n.safetensors, model.safetensors.index.json)", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "f32, bf16 (every tensor in that type, as HF checkpoints) or int8 (mamba4 quantize's layout)", DefaultValueFactory = _ => "bf16" };
        var seed = new Option<int>("--seed") { Description = "random seed of the weights" };
        var force = new Option<bool>("--force") { Description = "write into a non-empty directory (an interrupted init with the same settings resumes)" };
        var shardBytes = new Option<long>("--shard-bytes") { Description = "most bytes of tensor data per shard", DefaultValueFactory = _ => new InitSettings { Out = "." }.ShardBytes };
        var cmd = new Command("init", """
            Write a random-weight Hugging Face model directory of a real model's shape: config.json exactly as the
            public checkpoint's, sharded safetensors and their index, drawn as a freshly built model is initialised
            (activations stay finite through every layer). Streams: memory stays small whatever the model's size.
            For measuring memory and speed without downloading the weights; the text it generates is noise.

            Examples:
              mamba4 init --shape mamba-2.8b --dtype bf16 --out /tmp/mamba-2.8b
              mamba4 init --shape falcon-mamba-7b --dtype int8 --out /tmp/falcon-int8 --seed 1
              mamba4 generate --model /tmp/mamba-2.8b --prompt-ids 1,2,3 --max-new-tokens 16 --greedy
            """);
        foreach (var o in new Option[] { shape, config, output, dtype, seed, force, shardBytes }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var type = parse.GetValue(dtype)!.Trim().ToLowerInvariant() switch
            {
                "f32" or "float32" => DType.F32,
                "bf16" or "bfloat16" => DType.BF16,
                "int8" or "i8" => DType.I8,
                var other => throw new ArgumentException($"--dtype {other}: expected f32, bf16 or int8"),
            };
            var settings = new InitSettings
            {
                Shape = parse.GetValue(shape), ConfigFile = parse.GetValue(config), Out = parse.GetValue(output)!, DType = type,
                Seed = parse.GetValue(seed), Force = parse.GetValue(force), ShardBytes = parse.GetValue(shardBytes),
            };
            RandomModel.Write(settings, Console.Error);
            return 0;
        });
        return cmd;
    }
}
