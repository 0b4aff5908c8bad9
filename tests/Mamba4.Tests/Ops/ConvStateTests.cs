using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// The conv state a prefill leaves (F.CausalConv1dSaveState: the last W inputs of each stream, transposed, zeros before
/// the start) and its inputs as rows again (F.CausalConv1dStateRows), against index arithmetic written out here; and
/// that a state made so continues a sequence exactly as the step does.
/// </summary>
public class ConvStateTests
{
    [Theory]
    [InlineData(2, 9, 5, 3)]   // more inputs than slots
    [InlineData(3, 2, 4, 3)]   // fewer: the first slot stays zero
    [InlineData(1, 3, 6, 3)]   // exactly as many
    public void SaveStateTakesTheLastInputsAndStateRowsTransposesThem(int batch, int l, int d, int w)
    {
        using var scope = new TensorScope();
        var values = Enumerable.Range(0, batch * l * d).Select(i => 1f + i).ToArray();   // x[b, t, c] = 1 + (b·l + t)·d + c
        var x = Tensor.From(values, batch, l, d);
        var state = Tensor.Full(new Shape(batch, d, w), -7f);
        F.CausalConv1dSaveState(x, state);
        var s = state.ToFloatArray();
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < d; c++)
                for (int j = 0; j < w; j++)
                {
                    int t = l - w + j;
                    Assert.Equal(t < 0 ? 0f : 1f + (b * l + t) * d + c, s[(b * d + c) * w + j]);
                }
        var rows = F.CausalConv1dStateRows(state);
        Assert.Equal(new Shape(batch, w, d), rows.Shape);
        var r = rows.ToFloatArray();
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < w; j++)
                for (int c = 0; c < d; c++) Assert.Equal(s[(b * d + c) * w + j], r[(b * w + j) * d + c]);
    }

    /// <summary>The state saved after a prefix, stepped on with the next inputs, gives the outputs of the conv over the whole sequence.</summary>
    [Fact]
    public void ASavedStateContinuesLikeTheWholeSequence()
    {
        using var scope = new TensorScope();
        var rng = new Random(4);
        int batch = 2, l = 7, d = 3, k = 4, prefix = 5;
        var x = Tensor.From(Enumerable.Range(0, batch * l * d).Select(_ => (float)rng.NextDouble()).ToArray(), batch, l, d);
        var w = Tensor.From(Enumerable.Range(0, d * k).Select(_ => (float)rng.NextDouble()).ToArray(), d, 1, k);
        var whole = F.CausalConv1d(x, w, null).ToFloatArray();
        var xs = x.ToFloatArray();
        var head = Tensor.From(Enumerable.Range(0, batch).SelectMany(b => xs.Skip(b * l * d).Take(prefix * d)).ToArray(), batch, prefix, d);
        var state = Tensor.Zeros(new Shape(batch, d, k - 1));
        F.CausalConv1dSaveState(head, state);
        for (int t = prefix; t < l; t++)
        {
            var xt = Tensor.From(Enumerable.Range(0, batch).SelectMany(b => xs.Skip((b * l + t) * d).Take(d)).ToArray(), batch, d);
            var y = F.CausalConv1dStep(xt, state, w, null).ToFloatArray();
            for (int b = 0; b < batch; b++)
                for (int c = 0; c < d; c++) Assert.Equal(whole[(b * l + t) * d + c], y[b * d + c], 5);
        }
    }

    [Fact]
    public void AStateOfTheWrongShapeIsRefused()
    {
        using var scope = new TensorScope();
        var e = Assert.Throws<ArgumentException>(() => F.CausalConv1dSaveState(Tensor.Zeros(new Shape(2, 5, 4)), Tensor.Zeros(new Shape(2, 3, 3))));
        Assert.Contains("CausalConv1d.SaveState", e.Message);
        Assert.Contains("convState", e.Message);
    }
}
