using System.Text.Json;
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
        AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), config);
        var target = Path.Combine(dir, "tokenizer.json");
        if (tokenizer is CharTokenizer c) c.Save(target);
        else if (tokenizerFile is not null) File.Copy(Tokenizer.FilePath(tokenizerFile), target, overwrite: true);
    }

    /// <summary>
    /// Loads a Mamba (model_type "mamba", "falcon_mamba", "mamba2", or none with mamba_ssm's fields) or GPT (model_type
    /// "gpt") directory onto <see cref="ModelLoadOptions.Device"/>; any other model_type is refused, naming the field.
    /// The configuration is checked against the weights and the memory it needs before the model is built (<see cref="ModelFiles.Load{T}"/>).
    /// </summary>
    public static ICausalLanguageModel Load(string dir, ModelLoadOptions? options = null)
    {
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{configPath} not found: --model must name a model directory", configPath);
        var r = ConfigReader.Load(configPath);
        var device = (options ?? ModelLoadOptions.Default).Device;
        if (r.Choice([.. MambaConfig.ModelTypes, "gpt"], "model_type") == "gpt")
        {
            var gpt = GptConfig.FromConfig(r);
            return ModelFiles.Load(ModelFiles.WeightFiles(dir), GptLM.Shapes(gpt), () => new GptLM(gpt), options, device);
        }
        return MambaLM.Load(dir, MambaConfig.FromConfig(r), options, device);
    }

    /// <summary>The tokenizer stored beside a model (tokenizer.json: HF BPE or Mamba4's char vocabulary), or null.</summary>
    public static ITokenizer? LoadTokenizer(string dir) =>
        File.Exists(Path.Combine(dir, "tokenizer.json")) ? Tokenizer.Load(dir) : null;
}
