using Mamba4.Backends;
using Mamba4.Backends.Cuda;
using Mamba4.IO;
using Mamba4.Ops;
using Mamba4.Tensors;
using static Mamba4.Tests.CudaTest;

namespace Mamba4.Tests;

/// <summary>The fused CUDA selective scan against the CPU kernel (forward, last state, every gradient), odd shapes,
/// forced chunkings; the op on the mamba_ssm fixtures; device memory not growing with L·N.</summary>
[Trait("Category", "Cuda")]
[Collection(EngineSettingsCollection.Name)]
public class CudaSelectiveScanTests
{
    private sealed record Problem(SelectiveScanArgs Args, SelectiveScanGrads Grads);

    private static Problem Make(int seed, int batch, int l, int d, int n, bool selective, bool withD, bool withZ, bool withBias, bool softplus, Device device)
    {
        var rng = new Random(seed);
        var a = new float[d * n];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < n; j++) a[i * n + j] = -(float)((j + 1) * (0.5 + rng.NextDouble()));
        int[] bc = selective ? [batch, l, n] : [d, n];
        Tensor T(Tensor t) => t.To(device);
        var args = new SelectiveScanArgs(
            T(Random(rng, batch, l, d)), T(softplus ? Uniform(rng, -3, 0.5, batch, l, d) : Uniform(rng, 0.01, 0.5, batch, l, d)),
            T(Tensor.From(a, d, n)), T(Random(rng, bc)), T(Random(rng, bc)),
            withD ? T(Random(rng, d)) : null, withZ ? T(Uniform(rng, -2, 2, batch, l, d)) : null,
            withBias ? T(softplus ? Uniform(rng, -0.5, 0.5, d) : Uniform(rng, 0, 0.2, d)) : null, softplus,
            Tensor.Full(new Shape(batch, l, d), float.NaN, device), Tensor.Full(new Shape(batch, d, n), float.NaN, device));
        Tensor Like(Tensor t) => Tensor.Full(t.Shape, float.NaN, device);
        var grads = new SelectiveScanGrads(T(Random(rng, batch, l, d)), Like(args.U), Like(args.Delta), Like(args.A), Like(args.B), Like(args.C),
            withD ? Like(args.D!) : null, withZ ? Like(args.Z!) : null, withBias ? Like(args.DeltaBias!) : null);
        return new Problem(args, grads);
    }

    private static void Compare(int batch, int l, int d, int n, bool selective, bool withD = true, bool withZ = true, bool withBias = true, bool softplus = true)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var c = Make(42, batch, l, d, n, selective, withD, withZ, withBias, softplus, Device.Cpu);
        var g = Make(42, batch, l, d, n, selective, withD, withZ, withBias, softplus, Cuda);
        Cpu.SelectiveScanForward(c.Args);
        gpu.SelectiveScanForward(g.Args);
        string shape = $"b{batch} L{l} D{d} N{n} {(selective ? "selective" : "time-invariant")}";
        Close(c.Args.Y, g.Args.Y, 1e-5, $"{shape}: y");
        Close(c.Args.LastState!, g.Args.LastState!, 1e-5, $"{shape}: last state");
        var back = c.Args with { LastState = null };
        Cpu.SelectiveScanBackward(back, c.Grads);
        gpu.SelectiveScanBackward(g.Args with { LastState = null }, g.Grads);
        Close(c.Grads.DU, g.Grads.DU, 1e-4, $"{shape}: du");
        Close(c.Grads.DDelta, g.Grads.DDelta, 1e-4, $"{shape}: ddelta");
        Close(c.Grads.DA, g.Grads.DA, 1e-4, $"{shape}: dA");
        Close(c.Grads.DB, g.Grads.DB, 1e-4, $"{shape}: dB");
        Close(c.Grads.DC, g.Grads.DC, 1e-4, $"{shape}: dC");
        if (withD) Close(c.Grads.DD!, g.Grads.DD!, 1e-4, $"{shape}: dD");
        if (withZ) Close(c.Grads.DZ!, g.Grads.DZ!, 1e-4, $"{shape}: dz");
        if (withBias) Close(c.Grads.DDeltaBias!, g.Grads.DDeltaBias!, 1e-4, $"{shape}: dbias");
    }

    [Theory]
    [InlineData(2, 1, 5, 16, true)]        // L = 1
    [InlineData(1, 300, 37, 16, true)]     // L not a multiple of any chunk, channel tail
    [InlineData(2, 200, 64, 1, true)]      // d_state 1
    [InlineData(1, 129, 40, 64, true)]     // d_state 64
    [InlineData(3, 333, 24, 7, false)]     // time-invariant, odd N
    [InlineData(2, 1000, 130, 16, true)]   // several chunks both ways
    [InlineData(1, 700, 16, 32, false)]
    [InlineData(4, 64, 200, 8, true)]
    [InlineData(1, 150, 24, 128, true)]    // d_state 128: 8 lanes per channel
    public void MatchesCpuKernel(int batch, int l, int d, int n, bool selective) => Compare(batch, l, d, n, selective);

    /// <summary>d_state 512, the forward's largest (32 lanes per channel, 4 channels per block), equals the CPU; the backward
    /// (4 states per lane) stops at 128 with a clear error instead of launching.</summary>
    /// <summary>h_{-1} given (state passing): it enters chunk 0 and, through the carries, every later chunk; dh0 comes out of chunk 0.</summary>
    [Theory]
    [InlineData(2, 1, 5, 16, true)]
    [InlineData(1, 300, 37, 16, true)]
    [InlineData(2, 1000, 130, 16, true)]   // several chunks both ways
    [InlineData(3, 333, 24, 7, false)]
    [InlineData(1, 150, 24, 128, true)]    // 8 lanes per channel
    public void InitialStateMatchesCpu(int batch, int l, int d, int n, bool selective)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var h0 = Uniform(new Random(7), -2, 2, batch, d, n);
        Problem WithH0(Device device)
        {
            var p = Make(43, batch, l, d, n, selective, true, true, true, true, device);
            return new Problem(p.Args with { InitialState = h0.To(device) }, p.Grads with { DInitialState = Tensor.Full(h0.Shape, float.NaN, device) });
        }
        var c = WithH0(Device.Cpu);
        var g = WithH0(Cuda);
        Cpu.SelectiveScanForward(c.Args);
        gpu.SelectiveScanForward(g.Args);
        string shape = $"b{batch} L{l} D{d} N{n} {(selective ? "selective" : "time-invariant")} from h0";
        Close(c.Args.Y, g.Args.Y, 1e-5, $"{shape}: y");
        Close(c.Args.LastState!, g.Args.LastState!, 1e-5, $"{shape}: last state");
        Cpu.SelectiveScanBackward(c.Args with { LastState = null }, c.Grads);
        gpu.SelectiveScanBackward(g.Args with { LastState = null }, g.Grads);
        Close(c.Grads.DInitialState!, g.Grads.DInitialState!, 1e-4, $"{shape}: dh0");
        Close(c.Grads.DU, g.Grads.DU, 1e-4, $"{shape}: du");
        Close(c.Grads.DDelta, g.Grads.DDelta, 1e-4, $"{shape}: ddelta");
        Close(c.Grads.DA, g.Grads.DA, 1e-4, $"{shape}: dA");
        Close(c.Grads.DB, g.Grads.DB, 1e-4, $"{shape}: dB");
    }

    [Fact]
    public void LargestStateForwardMatchesAndTheBackwardNamesItsLimit()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var c = Make(42, 2, 70, 9, 512, true, true, true, true, true, Device.Cpu);
        var g = Make(42, 2, 70, 9, 512, true, true, true, true, true, Cuda);
        Cpu.SelectiveScanForward(c.Args);
        gpu.SelectiveScanForward(g.Args);
        Close(c.Args.Y, g.Args.Y, 1e-5, "N512: y");
        Close(c.Args.LastState!, g.Args.LastState!, 1e-5, "N512: last state");
        var e = Assert.Throws<NotSupportedException>(() => gpu.SelectiveScanBackward(g.Args with { LastState = null }, g.Grads));
        Assert.Contains("d_state up to 128, got 512", e.Message);
    }

    [Theory]
    [InlineData(true, false, false, false, true)]
    [InlineData(true, true, false, true, false)]
    [InlineData(false, false, true, false, true)]
    public void OptionalInputs(bool selective, bool withZ, bool withD, bool withBias, bool softplus) =>
        Compare(2, 150, 20, 4, selective, withD, withZ, withBias, softplus);

    /// <summary>
    /// BF16 / F16 sequence tensors on the GPU against the CPU F32 kernel on the same rounded inputs: the GPU computes in
    /// F32 from the same values and rounds only its outputs, so y, du, dΔ, dB, dC, dz agree within the type's rounding
    /// (bf16 2⁻⁹, f16 2⁻¹² of an element; bounds 1e-2, 2e-3 of the largest) and dA, dD, dbias, the last state (F32) as in F32.
    /// </summary>
    [Theory]
    [InlineData(DType.BF16, 2, 1, 5, 16, true)]        // L = 1, odd D (plain loads instead of paired cp.async)
    [InlineData(DType.BF16, 1, 300, 37, 16, true)]     // L not a multiple of any chunk, channel tail
    [InlineData(DType.F16, 2, 200, 64, 1, true)]       // d_state 1
    [InlineData(DType.BF16, 1, 129, 40, 64, true)]     // d_state 64
    [InlineData(DType.F16, 3, 333, 24, 7, false)]      // time-invariant, odd N
    [InlineData(DType.BF16, 2, 1000, 130, 16, true)]   // several chunks both ways
    [InlineData(DType.F16, 1, 517, 34, 16, true)]      // batch 1, even D
    [InlineData(DType.BF16, 4, 64, 200, 8, false)]
    public void HalfTypesMatchCpuOnRoundedInputs(DType type, int batch, int l, int d, int n, bool selective)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var c = Make(7, batch, l, d, n, selective, true, true, true, true, Device.Cpu);
        Tensor R(Tensor t) => t.To(type).To(DType.F32);
        var ca = c.Args with { U = R(c.Args.U), Delta = R(c.Args.Delta), B = R(c.Args.B), C = R(c.Args.C), Z = R(c.Args.Z!) };
        var cg = c.Grads with { DY = R(c.Grads.DY) };
        Tensor G(Tensor t) => t.To(type, Cuda);
        Tensor Poison(Tensor t, DType dt) => Tensor.Full(t.Shape, float.NaN).To(dt, Cuda);
        var ga = new SelectiveScanArgs(G(ca.U), G(ca.Delta), ca.A.To(Cuda), G(ca.B), G(ca.C), ca.D!.To(Cuda), G(ca.Z!), ca.DeltaBias!.To(Cuda),
            true, Poison(ca.Y, type), Poison(ca.LastState!, DType.F32));
        var gg = new SelectiveScanGrads(G(cg.DY), Poison(cg.DU, type), Poison(cg.DDelta, type), Poison(cg.DA, DType.F32), Poison(cg.DB, type),
            Poison(cg.DC, type), Poison(cg.DD!, DType.F32), Poison(cg.DZ!, type), Poison(cg.DDeltaBias!, DType.F32));
        Cpu.SelectiveScanForward(ca);
        gpu.SelectiveScanForward(ga);
        string shape = $"{type} b{batch} L{l} D{d} N{n} {(selective ? "selective" : "time-invariant")}";
        double tol = type == DType.BF16 ? 1e-2 : 2e-3;
        Assert.Equal(type, ga.Y.DType);
        Close(ca.Y, ga.Y, tol, $"{shape}: y");
        Close(ca.LastState!, ga.LastState!, 1e-5, $"{shape}: last state");
        Cpu.SelectiveScanBackward(ca with { LastState = null }, cg);
        gpu.SelectiveScanBackward(ga with { LastState = null }, gg);
        Close(cg.DU, gg.DU, tol, $"{shape}: du");
        Close(cg.DDelta, gg.DDelta, tol, $"{shape}: ddelta");
        Close(cg.DB, gg.DB, tol, $"{shape}: dB");
        Close(cg.DC, gg.DC, tol, $"{shape}: dC");
        Close(cg.DZ!, gg.DZ!, tol, $"{shape}: dz");
        Close(cg.DA, gg.DA, 1e-4, $"{shape}: dA");
        Close(cg.DD!, gg.DD!, 1e-4, $"{shape}: dD");
        Close(cg.DDeltaBias!, gg.DDeltaBias!, 1e-4, $"{shape}: dbias");
        Assert.Equal(type, gg.DB.DType);
    }

    /// <summary>
    /// Sequence tensors that are views one element into their buffer (u, Δ, z, B, C and y, so no 16-byte alignment although
    /// d and N are multiples of 8): the kernels must take their narrow copies and stores, and agree with the CPU as the
    /// aligned cases do — F32 and BF16, forward and every gradient.
    /// </summary>
    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    public void MisalignedViewsMatchCpu(DType type)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var c = Make(11, 2, 300, 48, 16, true, true, true, true, true, Device.Cpu);
        Tensor R(Tensor t) => type == DType.F32 ? t : t.To(type).To(DType.F32);
        var ca = c.Args with { U = R(c.Args.U), Delta = R(c.Args.Delta), B = R(c.Args.B), C = R(c.Args.C), Z = R(c.Args.Z!) };
        var cg = c.Grads with { DY = R(c.Grads.DY) };
        // t's values on the GPU in the element type, one element after the start of a buffer one element longer
        Tensor Offset(Tensor t)
        {
            var values = t.ToFloatArray();
            var flat = new float[values.Length + 1];
            values.CopyTo(flat, 1);
            return Tensor.From(flat, flat.Length).To(type, Cuda).ViewOf(t.Shape, type.ElementSize());
        }
        Tensor Poison(Tensor t, DType dt) => Tensor.Full(t.Shape, float.NaN).To(dt, Cuda);
        var ga = new SelectiveScanArgs(Offset(ca.U), Offset(ca.Delta), ca.A.To(Cuda), Offset(ca.B), Offset(ca.C), ca.D!.To(Cuda), Offset(ca.Z!),
            ca.DeltaBias!.To(Cuda), true, Offset(Tensor.Full(ca.Y.Shape, float.NaN)), Poison(ca.LastState!, DType.F32));
        Assert.NotEqual(0, ga.U.DataPointer % 16);
        var gg = new SelectiveScanGrads(Offset(cg.DY), Poison(cg.DU, type), Poison(cg.DDelta, type), Poison(cg.DA, DType.F32), Poison(cg.DB, type),
            Poison(cg.DC, type), Poison(cg.DD!, DType.F32), Poison(cg.DZ!, type), Poison(cg.DDeltaBias!, DType.F32));
        Cpu.SelectiveScanForward(ca);
        gpu.SelectiveScanForward(ga);
        double tol = type == DType.F32 ? 1e-5 : 1e-2, gtol = type == DType.F32 ? 1e-4 : 1e-2;
        Close(ca.Y, ga.Y, tol, $"{type} misaligned: y");
        Close(ca.LastState!, ga.LastState!, 1e-5, $"{type} misaligned: last state");
        Cpu.SelectiveScanBackward(ca with { LastState = null }, cg);
        gpu.SelectiveScanBackward(ga with { LastState = null }, gg);
        Close(cg.DU, gg.DU, gtol, $"{type} misaligned: du");
        Close(cg.DDelta, gg.DDelta, gtol, $"{type} misaligned: ddelta");
        Close(cg.DB, gg.DB, gtol, $"{type} misaligned: dB");
        Close(cg.DC, gg.DC, gtol, $"{type} misaligned: dC");
        Close(cg.DZ!, gg.DZ!, gtol, $"{type} misaligned: dz");
        Close(cg.DA, gg.DA, 1e-4, $"{type} misaligned: dA");
        Close(cg.DD!, gg.DD!, 1e-4, $"{type} misaligned: dD");
        Close(cg.DDeltaBias!, gg.DDeltaBias!, 1e-4, $"{type} misaligned: dbias");
    }

    /// <summary>The op with BF16 tensors on the GPU takes the BF16 kernels and equals the op on the CPU (which computes on F32 copies).</summary>
    [Fact]
    public void OpTakesBf16OnGpu()
    {
        _ = Gpu;
        using var scope = new TensorScope();
        var c = Make(3, 2, 300, 48, 16, true, true, true, true, true, Device.Cpu);
        Tensor[] Inputs(Device dev) => [c.Args.U.To(DType.BF16, dev), c.Args.Delta.To(DType.BF16, dev), c.Args.A.To(dev), c.Args.B.To(DType.BF16, dev),
            c.Args.C.To(DType.BF16, dev), c.Args.D!.To(dev), c.Args.Z!.To(DType.BF16, dev), c.Args.DeltaBias!.To(dev)];
        var cpu = Inputs(Device.Cpu);
        var gpu = Inputs(Cuda);
        var (yc, lc) = F.SelectiveScan(cpu[0], cpu[1], cpu[2], cpu[3], cpu[4], cpu[5], cpu[6], cpu[7], returnLastState: true);
        var (yg, lg) = F.SelectiveScan(gpu[0], gpu[1], gpu[2], gpu[3], gpu[4], gpu[5], gpu[6], gpu[7], returnLastState: true);
        Assert.Equal(DType.BF16, yg.DType);
        Assert.Equal(DType.F32, lg!.DType);
        Close(yc, yg, 1e-2, "op y");
        Close(lc!, lg, 1e-5, "op last state");
    }

    /// <summary>y written in BF16 beside F32 inputs (the scan_forward_*_obf16 kernels: rounded at the store) is the F32
    /// forward's y rounded to nearest even, bit for bit — the automatic split and 4 states per thread (lanes per channel at
    /// run time), selective and time-invariant, 16-byte stores and the channel tail — and the last state is the same.</summary>
    [Fact]
    public void Bf16OutputIsTheRoundedF32Output()
    {
        var gpu = Gpu;
        try
        {
            foreach (int statesPerThread in new[] { 0, 4 })
            {
                Backend.Configure(Backend.Settings with { ScanForwardStatesPerThread = statesPerThread });
                foreach (var (b, l, d, n, sel) in new[] { (2, 1, 5, 16, true), (1, 300, 37, 16, true), (2, 1000, 130, 16, true),
                             (3, 333, 24, 7, false), (1, 129, 40, 64, true), (4, 64, 200, 8, true), (1, 700, 16, 32, false) })
                {
                    using var scope = new TensorScope();
                    var g = Make(11, b, l, d, n, sel, true, true, true, true, Cuda);
                    var narrow = g.Args with { Y = Tensor.Full(g.Args.Y.Shape, float.NaN).To(DType.BF16, Cuda), LastState = Tensor.Full(g.Args.LastState!.Shape, float.NaN, Cuda) };
                    gpu.SelectiveScanForward(g.Args);
                    gpu.SelectiveScanForward(narrow);
                    string shape = $"ns {statesPerThread}: b{b} L{l} D{d} N{n} {(sel ? "selective" : "time-invariant")}";
                    var (expected, actual) = (g.Args.Y.To(DType.BF16).ToFloatArray(), narrow.Y.ToFloatArray());
                    int differ = expected.Zip(actual).Count(p => BitConverter.SingleToInt32Bits(p.First) != BitConverter.SingleToInt32Bits(p.Second));
                    Assert.True(differ == 0, $"{shape}: {differ} of {expected.Length} BF16 outputs differ from the rounded F32 ones");
                    Assert.Equal(g.Args.LastState!.ToFloatArray(), narrow.LastState.ToFloatArray());
                }
            }
        }
        finally { Backend.Configure(Backend.Settings with { ScanForwardStatesPerThread = 0 }); }
    }

    /// <summary>dΔ and dz written in BF16 beside F32 inputs (the scan_backward_*_gbf16 kernels) are the F32 backward's rounded,
    /// bit for bit; du is the same, and the atomically summed gradients agree to 1e-5.</summary>
    [Fact]
    public void NarrowGradientsAreTheRoundedF32Ones()
    {
        var gpu = Gpu;
        foreach (var (b, l, d, n, sel) in new[] { (2, 1, 5, 16, true), (1, 300, 37, 16, true), (2, 1000, 130, 16, true),
                     (3, 333, 24, 7, false), (1, 150, 24, 128, true) })
        {
            using var scope = new TensorScope();
            var g = Make(14, b, l, d, n, sel, true, true, true, true, Cuda);
            var args = g.Args with { LastState = null };
            gpu.SelectiveScanBackward(args, g.Grads);
            Tensor Narrow(Tensor t) => Tensor.Full(t.Shape, float.NaN).To(DType.BF16, Cuda);
            Tensor Like(Tensor t) => Tensor.Full(t.Shape, float.NaN, Cuda);
            var n16 = new SelectiveScanGrads(g.Grads.DY, Like(g.Grads.DU), Narrow(g.Grads.DDelta), Like(g.Grads.DA), Like(g.Grads.DB), Like(g.Grads.DC),
                Like(g.Grads.DD!), Narrow(g.Grads.DZ!), Like(g.Grads.DDeltaBias!));
            gpu.SelectiveScanBackward(args, n16);
            string shape = $"b{b} L{l} D{d} N{n} {(sel ? "selective" : "time-invariant")}";
            Assert.True(g.Grads.DDelta.To(DType.BF16).ToFloatArray().SequenceEqual(n16.DDelta.ToFloatArray()), $"{shape}: dΔ is not the rounded F32 one");
            Assert.True(g.Grads.DZ!.To(DType.BF16).ToFloatArray().SequenceEqual(n16.DZ!.ToFloatArray()), $"{shape}: dz is not the rounded F32 one");
            Assert.True(g.Grads.DU.ToFloatArray().SequenceEqual(n16.DU.ToFloatArray()), $"{shape}: du differs");
            Close(g.Grads.DA, n16.DA, 1e-5, $"{shape}: dA");
            Close(g.Grads.DB, n16.DB, 1e-5, $"{shape}: dB");
            Close(g.Grads.DC, n16.DC, 1e-5, $"{shape}: dC");
            Close(g.Grads.DD!, n16.DD!, 1e-5, $"{shape}: dD");
            Close(g.Grads.DDeltaBias!, n16.DDeltaBias!, 1e-5, $"{shape}: dbias");
        }
    }

    /// <summary>With BF16 products, the scan's output written in BF16 and read by Linear as it is gives the same bits as
    /// the F32 output rounded by the product (and again for the weight's gradient): forward and every gradient (those summed
    /// with atomics to 1e-5).</summary>
    [Fact]
    public void Bf16OutputFeedsBf16ProductsWithTheSameBits()
    {
        var gpu = Gpu;
        var results = new List<float[][]>();
        try
        {
            gpu.MatmulPrecision = MatmulPrecision.Bf16;
            foreach (var outputType in new[] { DType.F32, DType.BF16 })
            {
                using var scope = new TensorScope();
                var g = Make(12, 2, 600, 96, 16, true, true, true, true, true, Cuda);
                var rng = new Random(13);
                var w = Random(rng, 48, 96).To(Cuda);
                var r = Random(rng, 2, 600, 48).To(Cuda);
                Tensor[] inputs = [g.Args.U, g.Args.Delta, g.Args.A, g.Args.B, g.Args.C, g.Args.D!, g.Args.Z!, g.Args.DeltaBias!, w];
                foreach (var t in inputs) t.RequiresGrad = true;
                var (y, _) = F.SelectiveScan(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5], inputs[6], inputs[7], outputType: outputType);
                Assert.Equal(outputType, y.DType);
                var output = F.Linear(y, w);
                F.Sum(F.Mul(output, r)).Backward();
                results.Add([output.ToFloatArray(), .. inputs.Select(t => t.Grad!.ToFloatArray())]);
            }
        }
        finally { gpu.MatmulPrecision = MatmulPrecision.F32; }
        // bit for bit where each element has one writer; dA, dB, dC, dD, dbias are summed with atomics (order varies by run)
        string[] names = ["output", "du", "ddelta", "dA", "dB", "dC", "dD", "dz", "dbias", "dW"];
        for (int k = 0; k < names.Length; k++)
            if (names[k] is "dA" or "dB" or "dC" or "dD" or "dbias")
                Close(Tensor.From(results[0][k], results[0][k].Length), Tensor.From(results[1][k], results[1][k].Length), 1e-5, names[k]);
            else
                Assert.True(results[0][k].SequenceEqual(results[1][k]), $"{names[k]} differs between the F32 output rounded by the product and the BF16 output");
    }

    /// <summary>
    /// The forward with the automatic split (up to 16 states per thread) and with 4 states per thread (more lanes per
    /// channel: the _tpcx kernels) against the CPU kernel: y and the last state on the shapes of <see cref="MatchesCpuKernel"/>
    /// (F32, 1e-5) and of <see cref="HalfTypesMatchCpuOnRoundedInputs"/> (BF16/F16 inputs rounded for the CPU too), with
    /// 32-step chunks once, and the mamba_ssm fixtures (forward and gradients) with the split in force.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void ForwardSplitMatchesCpu(int statesPerThread)
    {
        _ = Gpu;
        string variant = statesPerThread == 0 ? "auto" : $"ns{statesPerThread}";
        try
        {
            Backend.Configure(Backend.Settings with { ScanForwardStatesPerThread = statesPerThread });
            foreach (var (b, l, d, n, sel) in new[] { (2, 1, 5, 16, true), (1, 300, 37, 16, true), (2, 200, 64, 1, true), (1, 129, 40, 64, true),
                         (3, 333, 24, 7, false), (2, 1000, 130, 16, true), (1, 700, 16, 32, false), (4, 64, 200, 8, true) })
                CompareForward(variant, DType.F32, b, l, d, n, sel);
            foreach (var (type, b, l, d, n, sel) in new[] { (DType.BF16, 2, 1, 5, 16, true), (DType.BF16, 1, 300, 37, 16, true),
                         (DType.F16, 2, 200, 64, 1, true), (DType.BF16, 1, 129, 40, 64, true), (DType.F16, 3, 333, 24, 7, false),
                         (DType.BF16, 2, 1000, 130, 16, true), (DType.F16, 1, 517, 34, 16, true), (DType.BF16, 4, 64, 200, 8, false) })
                CompareForward(variant, type, b, l, d, n, sel);
            Backend.Configure(Backend.Settings with { ScanForwardChunk = 32 });
            CompareForward(variant, DType.F32, 2, 517, 33, 16, true);
            CompareForward(variant, DType.BF16, 2, 517, 48, 16, true);
            Backend.Configure(Backend.Settings with { ScanForwardChunk = 0 });
            FixtureForwardAndAllGradientsOnGpu("selective-scan-selective.safetensors", true);
            FixtureForwardAndAllGradientsOnGpu("selective-scan-lti.safetensors", false);
        }
        finally
        {
            Backend.Configure(Backend.Settings with { ScanForwardStatesPerThread = 0 });
            Backend.Configure(Backend.Settings with { ScanForwardChunk = 0 });
        }
    }

    /// <summary>
    /// The time-parallel forward (scan_forward_lanes and its 128-register form _wide: one pass over L, each lane 8 steps of a 64-step tile, the segments
    /// joined by shuffles) forced on, against the CPU kernel: one step, partial tiles, several tiles, blocks that overhang D
    /// and D not a multiple of 4 (the plain-load and per-element store paths); F32, BF16, F16 inputs; without D, z, Δ-bias,
    /// softplus; from an initial state; and its BF16 y beside F32 inputs is the F32 y rounded, bit for bit.
    /// </summary>
    [Theory]
    [InlineData(ScanForwardPlan.Lanes)]
    [InlineData(ScanForwardPlan.LanesWide)]
    public void LanesForwardMatchesCpu(ScanForwardPlan plan)
    {
        var gpu = Gpu;
        try
        {
            Backend.Configure(Backend.Settings with { ScanForward = plan });
            foreach (var (b, l, d) in new[] { (2, 1, 5), (1, 300, 37), (2, 1000, 130), (1, 64, 32), (3, 65, 96), (1, 2100, 64) })
                foreach (var type in new[] { DType.F32, DType.BF16, DType.F16 })
                    CompareForward("lanes", type, b, l, d, 16, true);
            Compare(2, 517, 33, 16, true, withD: false, withZ: false, withBias: false, softplus: false);
            Compare(1, 130, 64, 16, true, withZ: false);
            Compare(2, 70, 40, 16, true, withD: false, withBias: false);
            InitialStateMatchesCpu(2, 300, 37, 16, true);
            foreach (var (b, l, d) in new[] { (1, 300, 37), (2, 1000, 128) })
            {
                using var scope = new TensorScope();
                var g = Make(11, b, l, d, 16, true, true, true, true, true, Cuda);
                var narrow = g.Args with { Y = Tensor.Full(g.Args.Y.Shape, float.NaN).To(DType.BF16, Cuda), LastState = Tensor.Full(g.Args.LastState!.Shape, float.NaN, Cuda) };
                gpu.SelectiveScanForward(g.Args);
                gpu.SelectiveScanForward(narrow);
                var (expected, actual) = (g.Args.Y.To(DType.BF16).ToFloatArray(), narrow.Y.ToFloatArray());
                int differ = expected.Zip(actual).Count(q => BitConverter.SingleToInt32Bits(q.First) != BitConverter.SingleToInt32Bits(q.Second));
                Assert.True(differ == 0, $"lanes b{b} L{l} D{d}: {differ} of {expected.Length} BF16 outputs differ from the rounded F32 ones");
                Assert.Equal(g.Args.LastState!.ToFloatArray(), narrow.LastState.ToFloatArray());
            }
        }
        finally { Backend.Configure(Backend.Settings with { ScanForward = ScanForwardPlan.Auto }); }
    }

    /// <summary>The GPU forward (the split in force) against the CPU's on the same (rounded, for 2-byte types) inputs: y, last state.</summary>
    private static void CompareForward(string variant, DType type, int batch, int l, int d, int n, bool selective)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var c = Make(7, batch, l, d, n, selective, true, true, true, true, Device.Cpu);
        Tensor R(Tensor t) => type == DType.F32 ? t : t.To(type).To(DType.F32);
        var ca = c.Args with { U = R(c.Args.U), Delta = R(c.Args.Delta), B = R(c.Args.B), C = R(c.Args.C), Z = R(c.Args.Z!) };
        Tensor G(Tensor t) => t.To(type, Cuda);
        var ga = new SelectiveScanArgs(G(ca.U), G(ca.Delta), ca.A.To(Cuda), G(ca.B), G(ca.C), ca.D!.To(Cuda), G(ca.Z!), ca.DeltaBias!.To(Cuda),
            true, Tensor.Full(ca.Y.Shape, float.NaN).To(type, Cuda), Tensor.Full(ca.LastState!.Shape, float.NaN, Cuda));
        Cpu.SelectiveScanForward(ca);
        gpu.SelectiveScanForward(ga);
        string shape = $"forward {variant}: {type} b{batch} L{l} D{d} N{n} {(selective ? "selective" : "time-invariant")}";
        Close(ca.Y, ga.Y, type == DType.BF16 ? 1e-2 : type == DType.F16 ? 2e-3 : 1e-5, $"{shape}: y");
        Close(ca.LastState!, ga.LastState!, 1e-5, $"{shape}: last state");
    }

    [Fact]
    public void ForcedChunkingsAgree()
    {
        _ = Gpu;
        try
        {
            foreach (var (fwd, bwd) in new[] { (32, 32), (64, 96), (4096, 128) })
            {
                Backend.Configure(Backend.Settings with { ScanForwardChunk = fwd });
                Backend.Configure(Backend.Settings with { ScanBackwardChunk = bwd });
                Compare(2, 517, 33, 16, true);
                Compare(1, 300, 10, 3, false);
            }
            Backend.Configure(Backend.Settings with { ScanForwardStatesPerThread = 4 });
            Compare(2, 100, 20, 16, true);
            Backend.Configure(Backend.Settings with { ScanForwardChunk = 0, ScanBackwardChunk = 0, ScanForwardStatesPerThread = 0 });
            Backend.Configure(Backend.Settings with { ScanBackwardBlock = 128 });
            Compare(2, 517, 33, 16, true);
        }
        finally
        {
            Backend.Configure(Backend.Settings with { ScanForwardChunk = 0, ScanBackwardChunk = 0, ScanForwardStatesPerThread = 0, ScanBackwardBlock = 0 });
        }
    }

    [Theory]
    [InlineData("selective-scan-selective.safetensors", true)]
    [InlineData("selective-scan-lti.safetensors", false)]
    public void FixtureForwardAndAllGradientsOnGpu(string file, bool selective)
    {
        _ = Gpu;
        using var f = SafetensorsFile.Open(Fixtures.Path_(file));
        using var scope = new TensorScope();
        var uShape = f.Info("in.u").Shape;
        int b = uShape[0], d = uShape[1], l = uShape[2], n = f.Info("in.A").Shape[1];
        static float[] Last(double[] v, int b, int x, int l)
        {
            var r = new float[v.Length];
            for (int i = 0; i < b; i++)
                for (int c = 0; c < x; c++)
                    for (int t = 0; t < l; t++) r[(i * l + t) * x + c] = (float)v[(i * x + c) * l + t];
            return r;
        }
        static float[] First(float[] v, int b, int x, int l)
        {
            var r = new float[v.Length];
            for (int i = 0; i < b; i++)
                for (int c = 0; c < x; c++)
                    for (int t = 0; t < l; t++) r[(i * x + c) * l + t] = v[(i * l + t) * x + c];
            return r;
        }
        Tensor Seq(string name) => Tensor.From(Last(f.Get(name).ToDoubleArray(), b, d, l), b, l, d).To(Cuda);
        Tensor Bc(string name) => selective ? Tensor.From(Last(f.Get(name).ToDoubleArray(), b, n, l), b, l, n).To(Cuda) : f.Get(name, DType.F32).To(Cuda);
        var inputs = new[] { Seq("in.u"), Seq("in.delta"), f.Get("in.A", DType.F32).To(Cuda), Bc("in.B"), Bc("in.C"),
            f.Get("in.D", DType.F32).To(Cuda), Seq("in.z"), f.Get("in.delta_bias", DType.F32).To(Cuda) };
        foreach (var t in inputs) t.RequiresGrad = true;
        var (y, last) = F.SelectiveScan(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5], inputs[6], inputs[7],
            deltaSoftplus: true, returnLastState: true);
        Assert.Equal(Cuda, y.Device);
        ModelFixtureTests.AssertClose(f.Get("out.y").ToDoubleArray(), First(y.ToFloatArray(), b, d, l), 1e-5, 1e-5, "out.y");
        ModelFixtureTests.AssertClose(f.Get("out.last_state").ToDoubleArray(), last!.ToFloatArray(), 1e-5, 1e-5, "out.last_state");
        F.Sum(F.Mul(y, Seq("dy"))).Backward();
        string[] names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"];
        for (int i = 0; i < names.Length; i++)
        {
            var g = inputs[i].Grad!.ToFloatArray();
            bool sequence = names[i] is "u" or "delta" or "z" || (selective && names[i] is "B" or "C");
            int x = names[i] is "B" or "C" ? n : d;
            ModelFixtureTests.AssertClose(f.Get("grad." + names[i]).ToDoubleArray(), sequence ? First(g, b, x, l) : g, 1e-4, 1e-5, "grad." + names[i]);
        }
    }

    /// <summary>Peak device memory of a scan forward + backward grows linearly in L: no [B, L, D, N] tensor.</summary>
    [Fact]
    public void PeakMemoryIsLinearInLengthWithoutAStateTerm()
    {
        var gpu = Gpu;
        const int batch = 2, d = 256, n = 16;
        var peaks = new List<(int L, long Bytes)>();
        foreach (int l in new[] { 1024, 4096, 16384 })
        {
            using var scope = new TensorScope();
            var p = Make(1, batch, l, d, n, true, true, true, true, true, Cuda);
            gpu.Synchronize();
            gpu.Allocator.ResetPeak();
            long before = gpu.Allocator.BytesInUse;
            gpu.SelectiveScanForward(p.Args);
            gpu.SelectiveScanBackward(p.Args with { LastState = null }, p.Grads);
            gpu.Synchronize();
            peaks.Add((l, gpu.Allocator.PeakBytesInUse - before));
        }
        long activation = (long)batch * 16384 * d * sizeof(float);      // one [B, L, D] tensor at the largest L
        long stateTerm = (long)batch * 16384 * d * n * sizeof(float);   // what a stored h would take
        var (_, largest) = peaks[^1];
        Assert.True(largest < stateTerm / 8, $"scan scratch at L = 16384 is {largest:N0} B; a stored state would be {stateTerm:N0} B");
        Assert.True(largest <= activation, $"scan scratch at L = 16384 is {largest:N0} B, more than one activation ({activation:N0} B)");
        Console.WriteLine("scan scratch bytes by L: " + string.Join(", ", peaks.Select(p => $"{p.L}: {p.Bytes:N0}")));
    }
}
