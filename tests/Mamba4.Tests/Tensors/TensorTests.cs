using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Tests;

public class TensorTests
{
    [Fact]
    public void ScopeReturnsMemoryToPool()
    {
        Tensor a, b;
        Storage storage;
        using (new TensorScope())
        {
            a = Tensor.Zeros(new Shape(100, 100));
            b = a.Reshape(10_000);
            storage = a.Storage;
            Assert.Same(storage, b.Storage);
            Assert.Equal(10_000, b.NumElements);
        }
        Assert.True(a.IsDisposed && b.IsDisposed && storage.IsReleased);
        // The next request of that size class reuses the pooled block.
        long hits = CpuAllocator.Shared.PoolHits;
        using var c = Tensor.Empty(new Shape(10_000));
        Assert.True(CpuAllocator.Shared.PoolHits > hits);
    }

    [Fact]
    public void KeepMovesATensorOutOfItsScope()
    {
        Tensor kept, dropped;
        using (var outer = new TensorScope())
        {
            using (var inner = new TensorScope())
            {
                kept = inner.Keep(Tensor.Zeros(new Shape(3)));
                dropped = Tensor.Zeros(new Shape(3));
            }
            Assert.True(dropped.IsDisposed);
            Assert.False(kept.IsDisposed);
        }
        Assert.True(kept.IsDisposed);
    }

    [Fact]
    public void StorageIsAligned()
    {
        using var t = Tensor.Empty(new Shape(3, 5));
        Assert.Equal(0, t.DataPointer % 64);
    }

    [Theory]
    [InlineData(DType.F64)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    public void ConversionRoundTripsRepresentableValues(DType dtype)
    {
        float[] values = [0f, 1f, -2f, 3.5f, 1024f, -0.25f];
        using var t = Tensor.From(values, values.Length);
        using var c = t.To(dtype);
        using var back = c.To(DType.F32);
        float[] expected = dtype is DType.I32 or DType.I64 ? values.Select(v => MathF.Truncate(v)).ToArray() : values;
        Assert.Equal(expected, back.ToFloatArray());
    }

    [Fact]
    public void BFloat16RoundsToNearestEven()
    {
        // 1 + 2^-8 lies halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even mantissa (1).
        Assert.Equal(1f, (float)(BFloat16)(1f + MathF.Pow(2, -8)));
        Assert.Equal(1f + MathF.Pow(2, -7), (float)(BFloat16)(1f + 3 * MathF.Pow(2, -9)));
        Assert.True(float.IsNaN((BFloat16)float.NaN));
    }

    [Fact]
    public void PrintingShowsValuesShapeAndDtype()
    {
        using var t = Tensor.From([1f, 2f, 3f, 4f], 2, 2);
        var s = t.ToString();
        Assert.Contains("[[1.0000, 2.0000]", s);
        Assert.Contains("shape=[2, 2]", s);
        Assert.Contains("dtype=F32", s);
    }

    [Fact]
    public void ReshapeRejectsWrongSize()
    {
        using var t = Tensor.Zeros(new Shape(2, 3));
        var e = Assert.Throws<ArgumentException>(() => t.Reshape(4, 2));
        Assert.Contains("[2, 3]", e.Message);
    }

    [Fact]
    public void NoGradRecordsNothing()
    {
        using var scope = new TensorScope();
        var x = Tensor.Ones(new Shape(4));
        x.RequiresGrad = true;
        // The tape is per thread and other tests on this thread may have left nodes (a forward without backward): compare counts.
        int before = Tape.Count;
        using (GradMode.NoGrad())
        {
            var y = x.Reshape(2, 2);
            Assert.False(y.RequiresGrad);
        }
        Assert.Equal(before, Tape.Count);
    }
}
