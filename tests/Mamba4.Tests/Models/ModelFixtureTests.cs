using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Tests;

/// <summary>The whole models against the float64 PyTorch/transformers fixtures, forward and backward.</summary>
public class ModelFixtureTests
{
    internal static void AssertClose(double[] expected, float[] actual, double rtol, double atol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(Math.Abs);
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs(expected[i] - actual[i]) - rtol * Math.Abs(expected[i]);
            if (err > worst) { worst = err; worstAt = i; }
        }
        if (Environment.GetEnvironmentVariable("MAMBA4_REPORT_ERRORS") is not null)
        {
            double maxRel = 0;
            for (int i = 0; i < expected.Length; i++) maxRel = Math.Max(maxRel, Math.Abs(expected[i] - actual[i]) / Math.Max(Math.Abs(expected[i]), 1e-3 * scale));
            File.AppendAllText(Environment.GetEnvironmentVariable("MAMBA4_REPORT_ERRORS")!, $"{what}\t{maxRel:G3}\n");
        }
        Assert.True(worst <= atol * Math.Max(1, scale),
            $"{what}: element {worstAt} expected {(worstAt >= 0 ? expected[worstAt] : 0):G8}, got {(worstAt >= 0 ? actual[worstAt] : 0):G8} (max |ref| {scale:G4})");
    }

    [Fact]
    public void HfMambaLogitsHiddenStatesLossAndEveryGradient() => CausalLmMatchesFixture(Fixtures.Path_("hf-mamba"));

    [Fact]
    public void HfMambaGreedyGenerationMatchesTokenForToken() => GreedyGenerationMatchesFixture(Fixtures.Path_("hf-mamba"));

    /// <summary>Falcon-Mamba (transformers FalconMambaForCausalLM, tests/fixtures/falcon-mamba): RMS norms on dt, B, C.</summary>
    [Fact]
    public void FalconMambaLogitsHiddenStatesLossAndEveryGradient()
    {
        var dir = Fixtures.Repo("falcon-mamba");
        Assert.Equal(1e-6f, MambaConfig.FromJsonFile(Path.Combine(dir, "config.json")).MixerRmsEps);
        CausalLmMatchesFixture(dir);
    }

    [Fact]
    public void FalconMambaGreedyGenerationMatchesTokenForToken() => GreedyGenerationMatchesFixture(Fixtures.Repo("falcon-mamba"));

    /// <summary>
    /// Mamba-2 (transformers Mamba2ForCausalLM, tests/fixtures/mamba2): n_groups 2, three chunks of 8 over 21 tokens (the
    /// last partial), a clamping time_step_limit, the gated RMSNorm, an untied head.
    /// </summary>
    [Fact]
    public void Mamba2LogitsHiddenStatesLossAndEveryGradient()
    {
        var dir = Fixtures.Repo("mamba2");
        var config = MambaConfig.FromJsonFile(Path.Combine(dir, "config.json"));
        Assert.Equal((MixerKind.Mamba2, 8, 2, 8), (config.Mixer, config.Heads, config.NGroups, config.ChunkSize));
        CausalLmMatchesFixture(dir);
    }

    [Fact]
    public void Mamba2GreedyGenerationMatchesTokenForToken() => GreedyGenerationMatchesFixture(Fixtures.Repo("mamba2"));

    /// <summary>
    /// A MambaLM directory against its reference.safetensors (the hf-mamba format): logits, every hidden state and
    /// every parameter's gradient within 1e-5 / 1e-4 relative, the loss within 1e-5.
    /// </summary>
    internal static void CausalLmMatchesFixture(string dir)
    {
        using var model = MambaLM.FromPretrained(dir);
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        using var scope = new TensorScope();
        var fixture = Path.GetFileName(Path.TrimEndingDirectorySeparator(dir)) + ": ";
        var ids = reference.Get("input_ids");
        var hidden = new List<Tensor>();
        var logits = model.Forward(ids, hiddenStates: hidden);
        AssertClose(reference.Get("logits").ToDoubleArray(), logits.ToFloatArray(), 1e-5, 1e-5, fixture + "logits");
        Assert.Equal(model.Config.NLayer + 1, hidden.Count);
        for (int i = 0; i < hidden.Count; i++)
            AssertClose(reference.Get($"hidden_states.{i}").ToDoubleArray(), hidden[i].ToFloatArray(), 1e-5, 1e-5, fixture + $"hidden_states.{i}");
        // The loss from the logits, then the head fused with the loss (no logits), then that with the mixers' inner ops
        // rerun in the backward (Recompute): the same loss and gradients.
        foreach (var (makeLoss, path) in new (Func<Tensor>, string)[] { (() => model.Loss(ids, logits), "unfused "), (() => model.Loss(ids), "fused "), (() => model.Loss(ids), "recomputed ") })
        {
            model.Recompute = path == "recomputed ";
            var loss = makeLoss();
            Assert.Equal(reference.Get("loss").ToDoubleArray()[0], loss.Item(), 1e-5);
            loss.Backward();
            foreach (var (name, p) in model.NamedParameters())
                AssertClose(reference.Get("grad." + name).ToDoubleArray(), p.Grad!.ToFloatArray(), 1e-4, 1e-5, fixture + path + "grad." + name);
            model.ZeroGrad();
        }
    }

    /// <summary>Greedy decoding through the recurrent step reproduces generate.prompt → generate.output exactly.</summary>
    internal static void GreedyGenerationMatchesFixture(string dir)
    {
        using var model = MambaLM.FromPretrained(dir);
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = reference.Get("generate.output").ToInt64Array();
        var output = Inference.Generator.Greedy(model, prompt, expected.Length - prompt.Length);
        Assert.Equal(expected, output);
    }

    [Theory]
    [InlineData("mamba4rec-1layer", 1)]
    [InlineData("mamba4rec-2layer", 2)]
    public void Mamba4RecSeqOutputScoresLossAndEveryGradient(string fixture, int layers)
    {
        var dir = Fixtures.Path_(fixture);
        using var weights = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        var items = weights.Info("item_embedding.weight").Shape;
        using var model = new Mamba4Rec(new Mamba4RecConfig
        {
            NItems = items[0], HiddenSize = items[1], NumLayers = layers, DState = 8, DConv = 4, Expand = 2,
            InnerSize = 64, Dropout = 0f, LayerNormEps = 1e-12f,
        });
        model.LoadSafetensors(Path.Combine(dir, "model.safetensors"));
        model.Eval();
        using var scope = new TensorScope();
        var seqOutput = model.Forward(reference.Get("item_seq"), reference.Get("item_seq_len"));
        AssertClose(reference.Get("seq_output").ToDoubleArray(), seqOutput.ToFloatArray(), 1e-5, 1e-5, "seq_output");
        var scores = model.Scores(seqOutput);
        AssertClose(reference.Get("scores").ToDoubleArray(), scores.ToFloatArray(), 1e-5, 1e-5, "scores");
        var loss = F.CrossEntropy(scores, reference.Get("pos_items"));
        Assert.Equal(reference.Get("loss").ToDoubleArray()[0], loss.Item(), 1e-5);
        loss.Backward();
        foreach (var (name, p) in model.NamedParameters())
            AssertClose(reference.Get("grad." + name).ToDoubleArray(), p.Grad!.ToFloatArray(), 1e-4, 1e-5, "grad." + name);
        model.ZeroGrad();
    }
}
