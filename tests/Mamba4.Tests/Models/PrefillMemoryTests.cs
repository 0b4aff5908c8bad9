using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// Without gradients MambaLM frees each block's intermediates when the block returns (MambaLM.Blocks): a prefill holds
/// one block's activations, not all of them — the same hidden states and recurrent state as the forward that keeps
/// everything (asking for the hidden states keeps them).
/// </summary>
public class PrefillMemoryTests
{
    [Fact]
    public void APrefillWithoutGradientsKeepsOneBlockAtATimeAndComputesTheSame()
    {
        var config = new MambaConfig { DModel = 16, NLayer = 6, DState = 4, VocabSize = 29 };
        using var model = new MambaLM(config, seed: 5);
        var ids = Tensor.From(Enumerable.Range(0, 2 * 11).Select(i => (long)(i * 5 % 29)).ToArray(), 2, 11);
        var results = new List<(float[] Hidden, float[] Ssm, float[] Conv, int Live)>();
        foreach (bool keepAll in new[] { true, false })
        {
            using var state = model.NewState(2);
            using var scope = new TensorScope();
            using (GradMode.NoGrad())
            {
                var kept = keepAll ? new List<Tensor>() : null;   // asking for the hidden states keeps every block's
                var h = model.Hidden(ids, state, kept);
                results.Add((h.ToFloatArray(), state.Layers[^1].SsmState.ToFloatArray(), state.Layers[^1].ConvState.ToFloatArray(), scope.Count));
            }
        }
        var (all, freed) = (results[0], results[1]);
        Assert.Equal(all.Hidden, freed.Hidden);
        Assert.Equal(all.Ssm, freed.Ssm);
        Assert.Equal(all.Conv, freed.Conv);
        // freed: the ids' embedding, the last block's output and the norm's two (output and 1/rms), whatever the depth
        Assert.True(freed.Live <= 5, $"{freed.Live} live tensors after a prefill without gradients (every block's: {all.Live})");
        Assert.True(all.Live > 6 * 10, $"{all.Live} live tensors with every block's intermediates kept");
    }
}
