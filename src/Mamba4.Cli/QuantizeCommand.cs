using System.CommandLine;
using Mamba4.Tasks.LanguageModeling;

namespace Mamba4.Cli;

internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "language model directory (HF Mamba checkpoint or one written by `mamba4 lm train`)", Required = true };
        var output = new Option<string>("--out") { Description = "directory to write (config.json, model.safetensors, the tokenizer files)", Required = true };
        var int8 = new Option<bool>("--int8") { Description = "weight-only int8: every Linear/Embedding weight as I8 with one F32 scale per output channel (max|w|/127)" };
        var dtype = DTypeOption.Create();
        dtype.Description = "instead of --int8: convert those weights to bf16, f16 or f32";
        var cmd = new Command("quantize", """
            Rewrite a language model with narrow weights: --int8 (symmetric per output channel; `<name>.weight` I8
            [out, in] plus `<name>.weight_scale` F32 [out], and a quantization_config in config.json, see
            docs/precision.md) or --dtype bf16|f16. generate, lm eval and serve load the result; norms, convolutions
            and the SSM parameters stay F32.

            Examples:
              mamba4 quantize --model ./mamba-130m-hf --out ./mamba-130m-int8 --int8
              mamba4 quantize --model runs/lm-mamba/model --out runs/lm-mamba/model-bf16 --dtype bf16
            """);
        foreach (var o in new Option[] { model, output, int8, dtype }) cmd.Options.Add(o);
        cmd.SetAction(parse =>
        {
            var settings = new QuantizeSettings { Model = parse.GetValue(model)!, Out = parse.GetValue(output)!, Int8 = parse.GetValue(int8), DType = DTypeOption.Get(parse, dtype) };
            Quantize.Run(settings, Console.Out);
            return 0;
        });
        return cmd;
    }
}
