using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>F.LastPosition: h (b, l, d) → h[:, l − 1], its gradient only in those rows; a tensor without positions is refused.</summary>
public class LastPositionTests
{
    [Fact]
    public void TakesEachSequencesLastRowAndSendsTheGradientThere()
    {
        using var scope = new TensorScope();
        var h = Tensor.From(Enumerable.Range(0, 2 * 3 * 2).Select(i => (float)i).ToArray(), 2, 3, 2);   // h[b, t, c] = 6b + 2t + c
        h.RequiresGrad = true;
        var last = F.LastPosition(h);
        Assert.Equal(new Shape(2, 2), last.Shape);
        Assert.Equal([4f, 5f, 10f, 11f], last.ToFloatArray());
        F.Sum(F.Mul(last, Tensor.From([1f, 2f, 3f, 4f], 2, 2))).Backward();
        Assert.Equal([0f, 0f, 0f, 0f, 1f, 2f, 0f, 0f, 0f, 0f, 3f, 4f], h.Grad!.ToFloatArray());
    }

    [Fact]
    public void ATensorWithoutPositionsIsRefused()
    {
        using var scope = new TensorScope();
        Assert.Equal("LastPosition: h [2, 0, 3] has no positions", Assert.Throws<ArgumentException>(() => F.LastPosition(Tensor.Zeros(new Shape(2, 0, 3)))).Message);
        Assert.Throws<ArgumentException>(() => F.LastPosition(Tensor.Zeros(new Shape(2, 3))));
    }
}
