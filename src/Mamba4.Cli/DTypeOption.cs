using System.CommandLine;
using Mamba4.Tensors;

namespace Mamba4.Cli;

/// <summary>--dtype, on every command that runs a language model: the type its Linear/Embedding weights are kept in
/// (<see cref="IO.ModelLoadOptions.WeightDType"/>); absent, the checkpoint's own (BF16 stays BF16, a quantized one I8).</summary>
internal static class DTypeOption
{
    public static Option<string?> Create() =>
        new("--dtype") { Description = "weights in memory: f32, bf16 or f16 (default: the checkpoint's own type; int8 checkpoints stay int8 on the CPU). Activations and sums are F32" };

    public static DType? Get(ParseResult parse, Option<string?> option) => parse.GetValue(option)?.Trim().ToLowerInvariant() switch
    {
        null => null,
        "f32" or "float32" => DType.F32,
        "bf16" or "bfloat16" => DType.BF16,
        "f16" or "float16" => DType.F16,
        var other => throw new ArgumentException($"--dtype {other}: expected f32, bf16 or f16 (int8 comes from `mamba4 quantize --int8`)"),
    };
}
