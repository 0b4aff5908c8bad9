using System.CommandLine;
using Mamba4.Tasks.LanguageModeling;

namespace Mamba4.Cli;

internal static class RandomModelCommand
{
    public static Command Create()
    {
        var shape = new Option<string>("--shape") { Description = $"one of {string.Join(", ", RandomModel.Shapes.Keys)}", Required = true };
        var output = new Option<string>("--out") { Description = "directory to write (config.json, sharded safetensors, index)", Required = true };
        var dtype = DTypeOption.Create();
        dtype.Description = "type of every stored tensor: bf16 (default, as the published checkpoints), f16 or f32";
        var shardGb = new Option<double>("--shard-gb") { Description = "largest shard, in GiB", DefaultValueFactory = _ => 2 };
        var seed = new Option<int>("--seed") { Description = "seed of the random values", DefaultValueFactory = _ => 1 };
        var cmd = new Command("random-model", """
            Write a Hugging Face Mamba directory of a real shape with random weights, to measure memory and speed of
            large models without downloading them (docs/precision.md).

            Example:
              mamba4 random-model --shape mamba-2.8b --out /tmp/mamba-2.8b-random
              mamba4 generate --model /tmp/mamba-2.8b-random --prompt-ids 1,2,3 --max-new-tokens 16 --greedy
            """);
        foreach (var o in new Option[] { shape, output, dtype, shardGb, seed }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            double gb = parse.GetValue(shardGb);
            if (!(gb > 0 && gb <= 64)) throw new ArgumentException($"--shard-gb must be in (0, 64], got {gb}");
            var (parameters, bytes) = RandomModel.Write(parse.GetValue(shape)!, parse.GetValue(output)!, DTypeOption.Get(parse, dtype) ?? Tensors.DType.BF16,
                (long)(gb * (1L << 30)), parse.GetValue(seed), Console.Out);
            Console.WriteLine($"{parse.GetValue(output)}: {parameters:N0} parameters, {bytes:N0} bytes of weights");
            return 0;
        });
        return cmd;
    }
}
