using System.Text;
using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tasks.LanguageModeling;

/// <summary>Model presets and sampling shared by `mamba4 lm` and the benchmarks.</summary>
public static class LanguageModeling
{
    public static readonly string[] Sizes = ["tiny", "small", "base"];

    /// <summary>(d_model, layers) of a size preset; the Transformer gets the same width and ~the same parameter count.</summary>
    public static (int DModel, int Layers) Size(string size) => size switch
    {
        "tiny" => (64, 2),
        "small" => (128, 4),
        "base" => (256, 6),
        _ => throw new ArgumentException($"unknown size '{size}' (expected one of: {string.Join(", ", Sizes)})"),
    };

    /// <param name="mixer">Mamba's mixer, "mamba1" or "mamba2" (<see cref="MambaConfig.WithMixer"/>, with <paramref name="headDim"/>).</param>
    public static ICausalLanguageModel Create(string kind, string size, int vocab, int maxLength, int seed, string mixer = "mamba1", int? headDim = null)
    {
        var (d, layers) = Size(size);
        return kind switch
        {
            "mamba" => new MambaLM(new MambaConfig { DModel = d, NLayer = layers, DState = 16, VocabSize = vocab }
                .WithMixer(MambaConfig.ParseMixer(mixer), headDim, maxLength), seed),
            // A GPT block (12·d²) has about twice a Mamba block's parameters (≈ 6·d² at expand 2): half the layers.
            "transformer" => new GptLM(new GptConfig { DModel = d, NLayer = Math.Max(1, layers / 2), NHead = Math.Max(1, d / 64), VocabSize = vocab, MaxPositions = maxLength }, seed),
            _ => throw new ArgumentException($"unknown model '{kind}' (expected mamba or transformer)"),
        };
    }

    /// <summary>Generates <paramref name="count"/> tokens after <paramref name="prompt"/> (recurrent state for Mamba, KV cache for the Transformer).</summary>
    public static IEnumerable<long> Sample(ICausalLanguageModel model, long[] prompt, int count, SamplingOptions options)
    {
        if (model is MambaLM mamba)
        {
            foreach (var t in Generator.Stream(mamba, prompt, count, options)) yield return t;
            yield break;
        }
        var gpt = (GptLM)model;
        var rng = new Random(options.Seed);
        var history = new List<long>(prompt);
        int capacity = (int)Math.Min(gpt.Config.MaxPositions, (long)prompt.Length + count);
        using var cache = gpt.NewCache(1, capacity);
        float[] logits;
        using (GradMode.NoGrad())
        using (var scope = new TensorScope())
            logits = F.Linear(F.LastPosition(gpt.Hidden(Tensor.From(prompt, 1, prompt.Length), cache)), gpt.Wte.Weight).ToFloatArray();   // the head on the last position only
        for (int i = 0; i < count; i++)
        {
            long next = Generator.Choose(logits, history, options, rng);
            history.Add(next);
            yield return next;
            if (next == options.EosTokenId || cache.Layers[0].Length >= capacity) yield break;
            using (GradMode.NoGrad())
            using (var scope = new TensorScope())
                logits = gpt.Step(Tensor.From([next], 1), cache).ToFloatArray();
        }
    }

    /// <summary>A built-in corpus for runs without data: sentences from a small seeded grammar (learnable structure, ~200 KB).</summary>
    public static string SyntheticCorpus(int seed = 1, int sentences = 6000)
    {
        string[] subjects = ["the cat", "a dog", "the old king", "my friend", "the river", "a small bird", "the queen", "our ship"];
        string[] verbs = ["sees", "follows", "remembers", "carries", "watches", "finds", "loves", "fears"];
        string[] objects = ["the moon", "a golden key", "the silent town", "an open door", "the long road", "a letter", "the sea", "the garden"];
        string[] endings = [".", " at night.", " in the morning.", " again.", " without a word."];
        var rng = new Random(seed);
        var sb = new StringBuilder();
        for (int i = 0; i < sentences; i++)
        {
            var s = $"{subjects[rng.Next(subjects.Length)]} {verbs[rng.Next(verbs.Length)]} {objects[rng.Next(objects.Length)]}{endings[rng.Next(endings.Length)]}";
            sb.Append(char.ToUpperInvariant(s[0])).Append(s, 1, s.Length - 1).Append(i % 4 == 3 ? "\n" : " ");
        }
        return sb.ToString();
    }
}
