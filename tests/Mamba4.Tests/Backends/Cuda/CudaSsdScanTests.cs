using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.Tensors;
using static Mamba4.Tests.CudaTest;

namespace Mamba4.Tests;

/// <summary>The chunked CUDA SSD scan (Mamba-2) against the CPU backend's double-precision recurrence (SsdScanReference):
/// forward, last state and every gradient over a grid of shapes (head dims 8–128, d_state 16–256, groups, chunk sizes
/// 8–256, lengths that are no multiple of the chunk, clamped dt), the decoding step, a long sequence, and a deterministic backward.</summary>
[Trait("Category", "Cuda")]
public class CudaSsdScanTests
{
    private sealed record Problem(SsdScanArgs Args, SsdScanGrads Grads);

    /// <summary>Random inputs (A = −exp(A_log) in [−4, −0.5], as SsdScanTests) on <paramref name="device"/>; outputs poisoned with NaN.</summary>
    private static Problem Make(int seed, int batch, int l, int h, int g, int p, int n, int chunk, Device device,
        bool withD = true, bool withBias = true, bool softplus = true, bool clamp = false)
    {
        var rng = new Random(seed);
        Tensor T(Tensor t) => t.To(device);
        Tensor Poison(params int[] shape) => Tensor.Full(new Shape(shape), float.NaN, device);
        var args = new SsdScanArgs(
            T(Random(rng, batch, l, h, p)),
            T(softplus ? Uniform(rng, -3, 0.5, batch, l, h) : Uniform(rng, 0.02, 0.8, batch, l, h)),
            T(Uniform(rng, -4, -0.5, h)),
            T(Random(rng, batch, l, g, n)), T(Random(rng, batch, l, g, n)),
            withD ? T(Random(rng, h)) : null, withBias ? T(Uniform(rng, -0.5, 0.5, h)) : null,
            softplus, clamp ? 0.1f : 0f, clamp ? 0.6f : float.PositiveInfinity, chunk,
            Poison(batch, l, h, p), Poison(batch, h, p, n));
        var grads = new SsdScanGrads(T(Random(rng, batch, l, h, p)),
            Poison(batch, l, h, p), Poison(batch, l, h), Poison(h), Poison(batch, l, g, n), Poison(batch, l, g, n),
            withD ? Poison(h) : null, withBias ? Poison(h) : null);
        return new Problem(args, grads);
    }

    /// <summary>Runs <paramref name="work"/> with the backend's MatmulPrecision (which picks the SSD products) set, then puts
    /// back what it was: the F32 tests hold whatever MAMBA4_CUDA_MATMUL says.</summary>
    private static void WithPrecision(MatmulPrecision precision, Action work)
    {
        var gpu = Gpu;
        var before = gpu.MatmulPrecision;
        try { gpu.MatmulPrecision = precision; work(); }
        finally { gpu.MatmulPrecision = before; }
    }

    private static void Compare(int batch, int l, int h, int g, int p, int n, int chunk,
        bool withD = true, bool withBias = true, bool softplus = true, bool clamp = false, Tolerance? tolerance = null)
    {
        var tol = tolerance ?? F32Tolerance;
        WithPrecision(tol.Precision, () => CompareAtPrecision(batch, l, h, g, p, n, chunk, withD, withBias, softplus, clamp, tol));
    }

    private static void CompareAtPrecision(int batch, int l, int h, int g, int p, int n, int chunk,
        bool withD, bool withBias, bool softplus, bool clamp, Tolerance tol)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var c = Make(7, batch, l, h, g, p, n, chunk, Device.Cpu, withD, withBias, softplus, clamp);
        var d = Make(7, batch, l, h, g, p, n, chunk, Cuda, withD, withBias, softplus, clamp);
        Cpu.SsdScanForward(c.Args);
        gpu.SsdScanForward(d.Args);
        string shape = $"b{batch} L{l} h{h} g{g} p{p} n{n} chunk{chunk}";
        Close(c.Args.Y, d.Args.Y, tol.Y, $"{shape}: y");
        Close(c.Args.LastState!, d.Args.LastState!, tol.Y, $"{shape}: last state");
        Cpu.SsdScanBackward(c.Args with { LastState = null }, c.Grads);
        gpu.SsdScanBackward(d.Args with { LastState = null }, d.Grads);
        Close(c.Grads.DX, d.Grads.DX, tol.Grad, $"{shape}: dx");
        Close(c.Grads.DDt, d.Grads.DDt, tol.Ddt, $"{shape}: ddt");
        // dA and dDtBias are sums over every (b, t) of terms that cancel, and their F32 inputs per step (the chunk kernels'
        // row and column sums of the quadratic form) carry ~1e-7 relative error each: 1e-3 against the F64 reference. The
        // algorithm itself is exact: run in double (an off-line emulation of these kernels) it agreed to 1e-14.
        Close(c.Grads.DA, d.Grads.DA, tol.Sums, $"{shape}: dA");
        Close(c.Grads.DB, d.Grads.DB, tol.Grad, $"{shape}: dB");
        Close(c.Grads.DC, d.Grads.DC, tol.Grad, $"{shape}: dC");
        if (withD) Close(c.Grads.DD!, d.Grads.DD!, tol.Grad, $"{shape}: dD");
        if (withBias) Close(c.Grads.DDtBias!, d.Grads.DDtBias!, tol.Sums, $"{shape}: dDtBias");
    }

    [Theory]
    [InlineData(2, 37, 4, 2, 8, 16, 8)]       // five chunks of 8, the last short; two heads per group
    [InlineData(1, 100, 3, 1, 16, 32, 32)]    // three heads on one group
    [InlineData(1, 70, 2, 2, 64, 64, 64)]     // one head per group, a 6-step last chunk
    [InlineData(1, 50, 2, 1, 128, 16, 16)]    // head dim 128
    [InlineData(1, 40, 2, 2, 32, 256, 16)]    // d_state 256
    [InlineData(2, 300, 2, 1, 24, 48, 256)]   // chunk 256, P and N no multiple of 32
    [InlineData(1, 1, 2, 1, 8, 16, 8)]        // L = 1
    [InlineData(1, 90, 2, 1, 40, 24, 100)]    // a chunk size no multiple of 32
    public void MatchesCpuReference(int batch, int l, int h, int g, int p, int n, int chunk) => Compare(batch, l, h, g, p, n, chunk);

    /// <summary>MatmulPrecision TF32 (or BF16): the chunk products in single TF32 (the …_tf32 kernels), as mamba_ssm's Triton
    /// <c>tl.dot</c> does on F32 inputs — ~1e-3 relative where F32 gives 1e-7, checked against the same F64 reference. The
    /// kernels that make ddt, dA and dDtBias (bx, dcb: sums that cancel) stay F32-accurate, and so do those three here but
    /// for what the TF32 chunk states feed into them.</summary>
    [Theory]
    [InlineData(2, 37, 4, 2, 8, 16, 8)]
    [InlineData(1, 70, 2, 2, 64, 64, 64)]
    [InlineData(1, 50, 2, 1, 128, 16, 16)]
    [InlineData(1, 40, 2, 2, 32, 256, 16)]
    [InlineData(1, 90, 2, 1, 40, 24, 100)]
    [InlineData(1, 512, 2, 1, 64, 128, 256)]
    public void Tf32ProductsMatchCpuReferenceToTf32Accuracy(int batch, int l, int h, int g, int p, int n, int chunk) =>
        Compare(batch, l, h, g, p, n, chunk, tolerance: Tf32Tolerance);

    /// <summary>A NaN in x or C reaches y at the same places with TF32 products as with F32-accurate ones (rounding to TF32 by
    /// integer arithmetic alone would turn 0x7fffffff into −0 and lose it).</summary>
    [Theory]
    [InlineData("x")]
    [InlineData("C")]
    public void NanInputsReachTheSameOutputsWithTf32Products(string input)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var d = Make(3, 1, 70, 2, 1, 16, 32, 32, Cuda);
        Tensor Poisoned(Tensor t)
        {
            var v = t.ToFloatArray();
            v[100] = float.NaN;
            return Tensor.From(v, [.. t.Shape.Dims]).To(Cuda);
        }
        var args = input == "x" ? d.Args with { X = Poisoned(d.Args.X) } : d.Args with { C = Poisoned(d.Args.C) };
        bool[] NanMask(MatmulPrecision precision)
        {
            WithPrecision(precision, () => gpu.SsdScanForward(args));
            return args.Y.ToFloatArray().Select(float.IsNaN).ToArray();
        }
        var f32 = NanMask(MatmulPrecision.F32);
        var tf32 = NanMask(MatmulPrecision.Tf32);
        Assert.Contains(true, f32);
        Assert.Equal(f32, tf32);
    }

    /// <summary>The products' precision and its tolerances (relative to the largest reference value) of y and the last state,
    /// dx/dB/dC/dD, ddt, dA/dDtBias.</summary>
    private sealed record Tolerance(MatmulPrecision Precision, double Y, double Grad, double Ddt, double Sums);
    private static readonly Tolerance F32Tolerance = new(MatmulPrecision.F32, 1e-5, 1e-4, 1e-4, 1e-3),
        Tf32Tolerance = new(MatmulPrecision.Tf32, 2e-3, 2e-3, 1e-3, 5e-3);

    [Fact]
    public void WithoutDAndBiasAndSoftplus() => Compare(1, 129, 4, 4, 8, 16, 128, withD: false, withBias: false, softplus: false);

    [Fact]
    public void ClampedDtHasNoGradientWhereClamped() => Compare(2, 60, 2, 1, 16, 16, 16, clamp: true);

    /// <summary>4096 steps in 16 chunks of 256: the state passed across chunks keeps the forward at F32 accuracy.</summary>
    [Fact]
    public void LongSequenceForwardMatches()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var c = Make(11, 1, 4096, 2, 1, 16, 32, 256, Device.Cpu);
        var d = Make(11, 1, 4096, 2, 1, 16, 32, 256, Cuda);
        Cpu.SsdScanForward(c.Args);
        WithPrecision(MatmulPrecision.F32, () => gpu.SsdScanForward(d.Args));
        Close(c.Args.Y, d.Args.Y, 1e-5, "L4096: y");
        Close(c.Args.LastState!, d.Args.LastState!, 1e-5, "L4096: last state");
    }

    /// <summary>Every sum of the backward has one writer and a fixed order (no atomics): two runs agree bit for bit.</summary>
    [Fact]
    public void BackwardIsDeterministic()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var first = Make(5, 2, 100, 4, 2, 32, 64, 32, Cuda);
        var second = Make(5, 2, 100, 4, 2, 32, 64, 32, Cuda);
        gpu.SsdScanBackward(first.Args with { LastState = null }, first.Grads);
        gpu.SsdScanBackward(second.Args with { LastState = null }, second.Grads);
        foreach (var (a, b, name) in new[] { (first.Grads.DX, second.Grads.DX, "dx"), (first.Grads.DDt, second.Grads.DDt, "ddt"),
                     (first.Grads.DA, second.Grads.DA, "dA"), (first.Grads.DB, second.Grads.DB, "dB"), (first.Grads.DC, second.Grads.DC, "dC") })
            Assert.True(a.ToFloatArray().SequenceEqual(b.ToFloatArray()), $"{name} differs between two runs");
    }

    [Theory]
    [InlineData(2, 4, 2, 8, 16)]
    [InlineData(1, 3, 1, 64, 128)]
    [InlineData(3, 2, 2, 128, 256)]
    [InlineData(1, 2, 1, 24, 40)]
    public void StepMatchesCpuReference(int batch, int h, int g, int p, int n)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(3);
        Tensor x = Random(rng, batch, h, p), dt = Uniform(rng, -3, 0.5, batch, h), a = Uniform(rng, -4, -0.5, h);
        Tensor b = Random(rng, batch, g, n), c = Random(rng, batch, g, n), d = Random(rng, h), bias = Uniform(rng, -0.5, 0.5, h);
        Tensor state = Random(rng, batch, h, p, n);
        var (yCpu, yGpu) = Outputs(batch, h, p);
        var stateGpu = OnGpu(state);
        Cpu.SsdScanStep(x, dt, a, b, c, d, bias, true, 0f, float.PositiveInfinity, state, yCpu);
        gpu.SsdScanStep(OnGpu(x), OnGpu(dt), OnGpu(a), OnGpu(b), OnGpu(c), OnGpu(d), OnGpu(bias), true, 0f, float.PositiveInfinity, stateGpu, yGpu);
        Close(yCpu, yGpu, 1e-5, $"step b{batch} h{h} g{g} p{p} n{n}: y");
        Close(state, stateGpu, 1e-5, $"step b{batch} h{h} g{g} p{p} n{n}: state");
    }

    /// <summary>The chunk kernels index by 32-bit offsets: a problem whose chunk states would reach 2³¹ elements (chunk 1 over
    /// 65,535 steps, 2 heads of 128 × 256: 4.3 G) is refused in one line before anything is allocated, not run with offsets
    /// that wrap.</summary>
    [Fact]
    public void ProblemsBeyondThirtyTwoBitOffsetsAreRefusedClearly()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var d = Make(1, 1, 65535, 2, 1, 128, 256, 1, Cuda, withD: false, withBias: false);
        var e = Assert.Throws<NotSupportedException>(() => gpu.SsdScanForward(d.Args));
        Assert.Contains("32-bit offsets", e.Message);
    }

    [Fact]
    public void HeadDimBeyondTheKernelsIsRefusedClearly()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var d = Make(1, 1, 8, 1, 1, 129, 16, 8, Cuda);
        var e = Assert.Throws<NotSupportedException>(() => gpu.SsdScanForward(d.Args));
        Assert.Contains("head dims", e.Message);
    }
}
