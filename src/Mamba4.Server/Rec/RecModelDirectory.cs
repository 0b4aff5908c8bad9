using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Models;

namespace Mamba4.Server.Rec;

/// <summary>
/// A Mamba4Rec model directory: config.json with the RecBole/Mamba4Rec names (n_items, hidden_size,
/// num_layers, d_state, d_conv, expand, inner_size, layer_norm_eps; dt_rank if present must be
/// ⌈hidden_size/16⌉) and model.safetensors with the reference parameter names. The version is a hash of
/// the config and the weights: user states computed with another checkpoint are recomputed, not reused.
/// </summary>
public static class RecModelDirectory
{
    public static Mamba4RecConfig ReadConfig(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"recommendation model directory not found: {dir}");
        var path = Path.Combine(dir, "config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found: --rec must name a Mamba4Rec model directory (config.json + model.safetensors)", path);
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON (line {e.LineNumber + 1}): {e.Message}", e); }

        int Int(string name, int? fallback)
        {
            var v = o[name];
            if (v is null) return fallback ?? throw new InvalidDataException($"{path}: '{name}' is missing");
            try { return v.GetValue<int>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException) { throw new InvalidDataException($"{path}: '{name}' must be an integer, got {v.ToJsonString()}"); }
        }
        double Num(string name, double fallback)
        {
            var v = o[name];
            if (v is null) return fallback;
            try { return v.GetValue<double>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException) { throw new InvalidDataException($"{path}: '{name}' must be a number, got {v.ToJsonString()}"); }
        }

        var config = new Mamba4RecConfig
        {
            NItems = Int("n_items", null), HiddenSize = Int("hidden_size", 64), NumLayers = Int("num_layers", 1),
            DState = Int("d_state", 32), DConv = Int("d_conv", 4), Expand = Int("expand", 2), InnerSize = Int("inner_size", 256),
            LayerNormEps = (float)Num("layer_norm_eps", 1e-12), Dropout = 0f,
            Selective = o["selective"]?.GetValue<bool>() ?? true,
        };
        foreach (var (name, value) in new[] { ("n_items", config.NItems), ("hidden_size", config.HiddenSize), ("num_layers", config.NumLayers),
                     ("d_state", config.DState), ("d_conv", config.DConv), ("expand", config.Expand), ("inner_size", config.InnerSize) })
            if (value < 1) throw new InvalidDataException($"{path}: '{name}' must be positive, got {value}");
        if (config.NItems < 2) throw new InvalidDataException($"{path}: 'n_items' counts the padding item 0 and must be at least 2, got {config.NItems}");
        if (o["dt_rank"] is not null && Int("dt_rank", null) != config.Mixer.DtRank)
            throw new InvalidDataException($"{path}: dt_rank {Int("dt_rank", null)} is not supported (Mamba4Rec uses ⌈hidden_size/16⌉ = {config.Mixer.DtRank})");
        return config;
    }

    /// <summary>Loads the model in evaluation mode (no dropout).</summary>
    public static Mamba4Rec Load(string dir)
    {
        var config = ReadConfig(dir);
        var model = new Mamba4Rec(config);
        try
        {
            model.LoadSafetensors(ModelFiles.WeightFiles(dir), strict: true);
            model.Eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>SHA-256 of config.json and the weight files (16 hex digits): the checkpoint's identity.</summary>
    public static string Version(string dir)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (var file in new[] { Path.Combine(dir, "config.json") }.Concat(ModelFiles.WeightFiles(dir)))
        {
            using var f = File.OpenRead(file);
            int n;
            while ((n = f.Read(buffer)) > 0) sha.AppendData(buffer, 0, n);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
    }
}
