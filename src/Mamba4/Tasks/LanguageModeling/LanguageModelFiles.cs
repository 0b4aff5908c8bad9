using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Text;

namespace Mamba4.Tasks.LanguageModeling;

/// <summary>A trained LM as a directory: config.json + model.safetensors (HF layout) + the tokenizer.</summary>
public static class LanguageModelFiles
{
    /// <param name="tokenizerFile">For a tokenizer loaded from a file (BPE), that file: it is copied beside the weights.</param>
    public static void Save(ICausalLanguageModel model, ITokenizer tokenizer, string dir, string? tokenizerFile = null)
    {
        Directory.CreateDirectory(dir);
        string config = model switch
        {
            MambaLM m => m.Config.ToJson(),
            GptLM g => g.Config.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }),
            _ => throw new NotSupportedException(model.GetType().Name),
        };
        model.AsModule.SaveSafetensors(Path.Combine(dir, "model.safetensors"));
        File.WriteAllText(Path.Combine(dir, "config.json"), config);
        var target = Path.Combine(dir, "tokenizer.json");
        if (tokenizer is CharTokenizer c) c.Save(target);
        else if (tokenizerFile is not null) File.Copy(Tokenizer.FilePath(tokenizerFile), target, overwrite: true);
    }

    /// <summary>Loads a Mamba (model_type "mamba") or GPT (model_type "gpt") directory onto <see cref="Backends.Backend.DefaultDevice"/>.</summary>
    public static ICausalLanguageModel Load(string dir)
    {
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{configPath} not found: --model must name a model directory", configPath);
        var o = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new InvalidDataException($"{configPath}: expected a JSON object");
        if (o["model_type"]?.GetValue<string>() == "gpt")
        {
            var gpt = new GptLM(GptConfig.FromJson(o, configPath));
            try { gpt.LoadSafetensors(ModelFiles.WeightFiles(dir)); gpt.To(Backends.Backend.DefaultDevice); }
            catch { gpt.Dispose(); throw; }
            return gpt;
        }
        var mamba = MambaLM.FromPretrained(dir);
        mamba.To(Backends.Backend.DefaultDevice);
        return mamba;
    }

    /// <summary>The tokenizer stored beside a model (tokenizer.json: HF BPE or Mamba4's char vocabulary), or null.</summary>
    public static ITokenizer? LoadTokenizer(string dir) =>
        File.Exists(Path.Combine(dir, "tokenizer.json")) ? Tokenizer.Load(dir) : null;
}
