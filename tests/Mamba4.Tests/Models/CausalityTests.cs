using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>A language model's output at position t must not depend on inputs after t (no leak from the future).</summary>
public class CausalityTests
{
    public static IEnumerable<TheoryDataRow<string>> Models() => [new("mamba"), new("mamba-lti"), new("gpt")];

    [Theory]
    [MemberData(nameof(Models))]
    public void LogitsIgnoreFutureTokens(string kind)
    {
        ICausalLanguageModel model = kind == "gpt"
            ? new GptLM(new GptConfig { DModel = 16, NLayer = 2, NHead = 2, VocabSize = 13, MaxPositions = 40 }, seed: 1)
            : new MambaLM(new MambaConfig { DModel = 16, NLayer = 2, DState = 4, VocabSize = 13, Selective = kind == "mamba" }, seed: 1);
        using var _ = GradMode.NoGrad();
        using var scope = new TensorScope();
        var rng = new Random(2);
        int len = 40;
        var a = Enumerable.Range(0, 2 * len).Select(_ => (long)rng.Next(13)).ToArray();
        var la = model.Logits(Tensor.From(a, 2, len)).ToFloatArray();
        foreach (int cut in new[] { 0, 1, 17, 38 })
        {
            var b = (long[])a.Clone();
            for (int r = 0; r < 2; r++)
                for (int t = cut + 1; t < len; t++) b[r * len + t] = (b[r * len + t] + 5) % 13;
            var lb = model.Logits(Tensor.From(b, 2, len)).ToFloatArray();
            for (int r = 0; r < 2; r++)
                for (int t = 0; t <= cut; t++)
                    for (int v = 0; v < 13; v++)
                        Assert.Equal(la[(r * len + t) * 13 + v], lb[(r * len + t) * 13 + v]);
            // and the future does change what comes after the cut
            Assert.NotEqual(la[((len - 1)) * 13], lb[((len - 1)) * 13]);
        }
        model.AsModule.Dispose();
    }
}
