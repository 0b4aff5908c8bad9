using System.Text.Json.Nodes;
using Mamba4.Tensors;

namespace Mamba4.IO;

/// <summary>
/// Weight-only int8 checkpoints, as <c>mamba4 quantize --int8</c> writes them (docs/precision.md):
/// <code>
/// &lt;name&gt;.weight         I8  [out, in]   q = round(W / s) (to nearest even), in [−127, 127]
/// &lt;name&gt;.weight_scale   F32 [out]       s[o] = max_i |W[o, i]| / 127 (0 for a row of zeros, whose q are 0)
/// config.json             "quantization_config": {"quant_method": "mamba4_int8", "bits": 8,
///                          "granularity": "per_output_channel", "symmetric": true, "scale_suffix": "_scale"}
/// </code>
/// Every nn.Linear and nn.Embedding weight (and an untied lm_head) is quantized; everything else stays as it was.
/// A weight dequantizes as W[o, i] ≈ q[o, i] · s[o], within s[o]/2 of the original.
/// </summary>
public static class WeightQuantization
{
    public const string Method = "mamba4_int8";
    public const string ScaleSuffix = "_scale";

    /// <summary>The quantization_config entry written into config.json.</summary>
    public static JsonObject ConfigEntry() => new()
    {
        ["quant_method"] = Method,
        ["bits"] = 8,
        ["granularity"] = "per_output_channel",
        ["symmetric"] = true,
        ["scale_suffix"] = ScaleSuffix,
    };

    /// <summary>
    /// Whether the config.json at <paramref name="configPath"/> declares this layout (a missing file or entry: false).
    /// Another quant_method is a one-line error naming the field.
    /// </summary>
    public static bool Declared(string configPath)
    {
        if (!File.Exists(configPath)) return false;
        var config = ConfigReader.Load(configPath);
        if (!config.Has("quantization_config")) return false;
        var q = config.Section("quantization_config");
        var method = q.String("quant_method");
        if (method != Method)
            throw new FormatException($"{configPath}: field 'quantization_config.quant_method': expected \"{Method}\" (the int8 layout of `mamba4 quantize`), got \"{method}\"");
        if (q.Has("bits") && q.Size(8, "bits") != 8)
            throw new FormatException($"{configPath}: field 'quantization_config.bits': expected 8");
        // The layout is fixed: a config that says otherwise describes tensors this reader would misread.
        q.Choice(["per_output_channel"], "granularity");
        q.Choice([ScaleSuffix], "scale_suffix");
        if (q.Bool("symmetric") == false)
            throw new FormatException($"{configPath}: field 'quantization_config.symmetric': expected true (q · s, no zero point)");
        return true;
    }

    /// <summary>
    /// Symmetric per-row int8 of an F32 weight [rows, cols]: (q I8 [rows, cols], s F32 [rows]). A NaN or ±Inf is an error
    /// naming <paramref name="name"/> and the index.
    /// </summary>
    public static (Tensor Q, Tensor Scale) Quantize(Tensor weight, string name)
    {
        if (weight.Rank != 2 || weight.DType != DType.F32 || !weight.Device.IsCpu)
            throw new ArgumentException($"quantize: {name} must be an F32 CPU matrix, got {weight.DType}{weight.Shape} on {weight.Device}");
        int rows = weight.Shape[0], cols = weight.Shape[1];
        var w = weight.AsSpan<float>();
        var q = Tensor.Empty(weight.Shape, DType.I8);
        var s = Tensor.Empty(new Shape(rows));
        var qs = q.AsSpan<sbyte>();
        var ss = s.AsSpan<float>();
        for (int r = 0; r < rows; r++)
        {
            var row = w.Slice(r * cols, cols);
            float max = 0f;
            for (int i = 0; i < cols; i++)
            {
                if (!float.IsFinite(row[i]))
                {
                    q.Dispose();
                    s.Dispose();
                    throw new InvalidDataException($"quantize: tensor '{name}' holds {row[i]} at index {(long)r * cols + i}; only finite weights can be quantized");
                }
                max = Math.Max(max, Math.Abs(row[i]));
            }
            float scale = max / 127f;
            ss[r] = scale;
            for (int i = 0; i < cols; i++)
                qs[r * cols + i] = scale == 0f ? (sbyte)0 : (sbyte)Math.Clamp(MathF.Round(row[i] / scale, MidpointRounding.ToEven), -127f, 127f);
        }
        return (q, s);
    }
}
