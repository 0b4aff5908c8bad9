using Mamba4.Backends;
using Mamba4.Backends.Cpu;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// Mamba-2's SSD scan: the double-precision reference against the quadratic (attention-like) form written here
/// and against finite differences (the math); the chunked CPU kernel against the reference (forward and every
/// gradient: chunk sizes 1, not dividing L, above L; groups; sizes off the vector width; underflowing decays); the
/// step against the parallel forward; and the op through the tape.
/// </summary>
public class SsdScanTests
{
    /// <summary>Inputs of one SSD problem as float32 values (also usable as float64): x [b, l, h, p], dt [b, l, h], B, C [b, l, g, n].</summary>
    internal sealed record Problem(int Batch, int L, int H, int P, int G, int N, bool Softplus, float DtMin, float DtMax,
        float[] X, float[] Dt, float[] A, float[] B, float[] C, float[]? D, float[]? DtBias, float[] DY)
    {
        /// <summary>With <paramref name="clamp"/> the limits [0.1, 0.6] cut dt on both sides; no dt lies within 1e-3 of a limit
        /// (finite differences must not cross one).</summary>
        public static Problem Random(int seed, int batch, int l, int h, int p, int g, int n,
            bool withD = true, bool withBias = true, bool softplus = true, bool clamp = false)
        {
            var rng = new Random(seed);
            float[] Uniform(int count, double lo, double hi) =>
                Enumerable.Range(0, count).Select(_ => (float)(lo + (hi - lo) * rng.NextDouble())).ToArray();
            float dtMin = clamp ? 0.1f : 0f, dtMax = clamp ? 0.6f : float.PositiveInfinity;
            var bias = withBias ? Uniform(h, -0.5, 0.5) : null;
            var dt = softplus ? Uniform(batch * l * h, -3, 0.5) : Uniform(batch * l * h, 0.02, 0.8);
            for (int i = 0; i < dt.Length; i++)
                while (NearLimit(EffectiveDt(dt[i] + (bias?[i % h] ?? 0), softplus, 0, double.PositiveInfinity), dtMin, dtMax))
                    dt[i] += 0.01f;
            return new Problem(batch, l, h, p, g, n, softplus, dtMin, dtMax,
                X: Uniform(batch * l * h * p, -1, 1), Dt: dt,
                A: Uniform(h, -4, -0.5),                                   // A = −exp(A_log) < 0
                B: Uniform(batch * l * g * n, -1, 1), C: Uniform(batch * l * g * n, -1, 1),
                D: withD ? Uniform(h, -1, 1) : null, DtBias: bias,
                DY: Uniform(batch * l * h * p, -1, 1));
        }

        private static bool NearLimit(double v, double lo, double hi) => Math.Abs(v - lo) < 1e-3 || Math.Abs(v - hi) < 1e-3;

        /// <summary>The inputs as tensors of <paramref name="dtype"/> (F32 or F64) and empty outputs.</summary>
        public SsdScanArgs Args(DType dtype, int chunkSize = 256, bool lastState = true)
        {
            Tensor T(float[] v, params int[] shape) => dtype == DType.F64
                ? Tensor.From(v.Select(x => (double)x).ToArray(), shape)
                : Tensor.From(v, shape);
            return new SsdScanArgs(T(X, Batch, L, H, P), T(Dt, Batch, L, H), T(A, H), T(B, Batch, L, G, N), T(C, Batch, L, G, N),
                D is null ? null : T(D, H), DtBias is null ? null : T(DtBias, H), Softplus, DtMin, DtMax, chunkSize,
                Tensor.Empty(new Shape(Batch, L, H, P), dtype), lastState ? Tensor.Empty(new Shape(Batch, H, P, N), dtype) : null);
        }

        public SsdScanGrads Grads(in SsdScanArgs a)
        {
            var dtype = a.X.DType;
            Tensor Like(Tensor t) => Tensor.Zeros(t.Shape, dtype);
            var dy = dtype == DType.F64 ? Tensor.From(DY.Select(x => (double)x).ToArray(), Batch, L, H, P) : Tensor.From(DY, Batch, L, H, P);
            return new SsdScanGrads(dy, Like(a.X), Like(a.Dt), Like(a.A), Like(a.B), Like(a.C),
                a.D is null ? null : Like(a.D), a.DtBias is null ? null : Like(a.DtBias));
        }

        /// <summary>dt after bias, softplus and clamp, in double.</summary>
        public double DtAt(int b, int t, int h) => EffectiveDt(Dt[(b * L + t) * H + h] + (double)(DtBias?[h] ?? 0), Softplus, DtMin, DtMax);

        private static double EffectiveDt(double raw, bool softplus, double lo, double hi) =>
            Math.Clamp(softplus ? (raw > 20 ? raw : Math.Log(1 + Math.Exp(raw))) : raw, lo, hi);

        /// <summary>
        /// y and the last state from the quadratic form of the SSD (no recurrence):
        /// y_t = Σ_{s≤t} (C_t·B_s) exp(A Σ_{s&lt;r≤t} dt_r) dt_s x_s + D x_t;  S_{L−1} = Σ_s exp(A Σ_{s&lt;r≤L−1} dt_r) dt_s x_s ⊗ B_s.
        /// </summary>
        public (double[] Y, double[] Last) QuadraticForm()
        {
            var y = new double[X.Length];
            var last = new double[Batch * H * P * N];
            for (int b = 0; b < Batch; b++)
                for (int h = 0; h < H; h++)
                {
                    int g = h / (H / G);
                    double Decay(int s, int t)
                    {
                        double sum = 0;
                        for (int r = s + 1; r <= t; r++) sum += DtAt(b, r, h);
                        return Math.Exp(A[h] * sum);
                    }
                    double Bv(int t, int n) => B[((b * L + t) * G + g) * N + n];
                    double Cv(int t, int n) => C[((b * L + t) * G + g) * N + n];
                    double Xv(int t, int i) => X[((b * L + t) * H + h) * P + i];
                    for (int t = 0; t < L; t++)
                        for (int i = 0; i < P; i++)
                        {
                            double v = (D?[h] ?? 0) * Xv(t, i);
                            for (int s = 0; s <= t; s++)
                            {
                                double cb = 0;
                                for (int n = 0; n < N; n++) cb += Cv(t, n) * Bv(s, n);
                                v += cb * Decay(s, t) * DtAt(b, s, h) * Xv(s, i);
                            }
                            y[((b * L + t) * H + h) * P + i] = v;
                        }
                    for (int i = 0; i < P; i++)
                        for (int n = 0; n < N; n++)
                        {
                            double v = 0;
                            for (int s = 0; s < L; s++) v += Decay(s, L - 1) * DtAt(b, s, h) * Xv(s, i) * Bv(s, n);
                            last[((b * H + h) * P + i) * N + n] = v;
                        }
                }
            return (y, last);
        }
    }

    // ---- the reference against independent math (double precision) ----

    [Theory]
    [InlineData(1, 1, true, true, true, false)]
    [InlineData(4, 2, true, true, true, true)]
    [InlineData(4, 2, false, false, true, true)]
    [InlineData(4, 4, true, false, false, false)]
    [InlineData(3, 1, false, true, false, true)]
    public void ReferenceForwardMatchesQuadraticForm(int h, int g, bool withD, bool withBias, bool softplus, bool clamp)
    {
        using var scope = new TensorScope();
        var pr = Problem.Random(17 + h * g, batch: 2, l: 9, h, p: 3, g, n: 5, withD, withBias, softplus, clamp);
        var args = pr.Args(DType.F64);
        SsdScanReference.Forward(args);
        var (y, last) = pr.QuadraticForm();
        AssertClose("y", args.Y.ToDoubleArray(), y, 1e-12);
        AssertClose("lastState", args.LastState!.ToDoubleArray(), last, 1e-12);
    }

    [Fact]
    public void ClampedProblemsHitBothLimits()
    {
        // The clamp cases above and below are only tests of the clamp if dt falls outside [dtMin, dtMax] on both sides.
        foreach (var softplus in new[] { true, false })
        {
            var pr = Problem.Random(5, batch: 2, l: 8, h: 4, p: 2, g: 2, n: 3, softplus: softplus, clamp: true);
            var raw = Enumerable.Range(0, pr.Dt.Length)
                .Select(i => pr.Dt[i] + (double)pr.DtBias![i % pr.H]).Select(r => softplus ? Math.Log(1 + Math.Exp(r)) : r).ToArray();
            Assert.Contains(raw, v => v < pr.DtMin);
            Assert.Contains(raw, v => v > pr.DtMax);
            Assert.Contains(raw, v => v > pr.DtMin && v < pr.DtMax);
        }
    }

    [Theory]
    [InlineData(1, 1, true, true, true, false)]
    [InlineData(4, 2, true, true, true, true)]
    [InlineData(4, 2, false, false, true, true)]
    [InlineData(4, 2, true, true, false, true)]
    [InlineData(2, 2, false, true, false, false)]
    public void ReferenceBackwardMatchesFiniteDifferences(int h, int g, bool withD, bool withBias, bool softplus, bool clamp)
    {
        using var scope = new TensorScope();
        var pr = Problem.Random(5, batch: 2, l: 8, h, p: 2, g, n: 3, withD, withBias, softplus, clamp);
        var args = pr.Args(DType.F64, lastState: false);
        var grads = pr.Grads(args);
        SsdScanReference.Backward(args, grads);

        var w = grads.DY.ToDoubleArray();
        double Loss()
        {
            SsdScanReference.Forward(args);
            var y = args.Y.AsSpan<double>();
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += w[i] * y[i];
            return s;
        }

        var pairs = new (string Name, Tensor? Input, Tensor? Grad)[]
        {
            ("x", args.X, grads.DX), ("dt", args.Dt, grads.DDt), ("A", args.A, grads.DA), ("B", args.B, grads.DB),
            ("C", args.C, grads.DC), ("D", args.D, grads.DD), ("dtBias", args.DtBias, grads.DDtBias),
        };
        GradCheck.ReferenceBackward(Loss, pairs);
        if (clamp)   // a clamped dt passes no gradient: some ddt are exactly 0
            Assert.Contains(0.0, grads.DDt.ToDoubleArray());
    }

    // ---- the chunked kernel against the reference ----

    /// <summary>Forward tolerance: max |kernel − reference| ≤ 2e-6 · max |reference| per output (float32 vs double;
    /// observed ≤ 4.2e-7 over the cases below).</summary>
    public const double ForwardTolerance = 2e-6;
    /// <summary>Gradient tolerance: max |kernel − reference| ≤ 5e-5 · max |reference| per gradient (float32 sums over
    /// chunks and streams for dA, dD, dDtBias). Observed ≤ 1e-6, except dA: 9.3e-6.</summary>
    public const double GradientTolerance = 5e-5;

    public static TheoryData<int, int, int, int, int, int, int> KernelCases() => new()
    {
        // batch, L, h, g, p, n, chunk
        { 2, 7, 2, 1, 3, 5, 1 },        // chunk 1: every step its own chunk
        { 1, 10, 4, 2, 5, 3, 4 },       // a chunk not dividing L; h/g = 2
        { 2, 5, 3, 3, 17, 19, 16 },     // L < chunk; h/g = 1; p, n not multiples of 8 or 16
        { 1, 24, 4, 1, 16, 32, 8 },     // chunk divides L; p, n multiples of 16; batch 1, one group: split heads
        { 3, 70, 2, 2, 9, 13, 32 },     // several chunks, last one short
        { 1, 33, 6, 2, 8, 8, 256 },     // the default chunk
        { 2, 0, 2, 1, 3, 4, 8 },        // an empty sequence: y empty, the last state and dA, dD, dDtBias zero
    };

    [Theory]
    [MemberData(nameof(KernelCases))]
    public void KernelMatchesReference(int batch, int l, int h, int g, int p, int n, int chunk)
    {
        // The optional inputs and the clamp rotate with the case.
        int k = batch + l + h + p + n + chunk;
        bool withD = k % 2 == 0, withBias = k % 3 != 0, softplus = k % 5 != 1, clamp = k % 4 < 2;
        using var scope = new TensorScope();
        var pr = Problem.Random(100 * l + n, batch, l, h, p, g, n, withD, withBias, softplus, clamp);
        AssertKernelMatchesReference(pr, chunk);
    }

    internal static void AssertKernelMatchesReference(Problem pr, int chunk)
    {
        var fast = pr.Args(DType.F32, chunk);
        var fastGrads = pr.Grads(fast);
        foreach (var t in new[] { fastGrads.DX, fastGrads.DDt, fastGrads.DA, fastGrads.DB, fastGrads.DC, fastGrads.DD, fastGrads.DDtBias })
            if (t is not null) CpuBackend.Instance.Fill(t, float.NaN);   // every gradient must be overwritten
        CpuBackend.Instance.SsdScanForward(fast);
        CpuBackend.Instance.SsdScanBackward(fast, fastGrads);

        var reference = pr.Args(DType.F64, chunk);
        var refGrads = pr.Grads(reference);
        SsdScanReference.Forward(reference);
        SsdScanReference.Backward(reference, refGrads);

        void Close(string what, Tensor? actual, Tensor? expected, double tol)
        {
            Assert.Equal(expected is null, actual is null);
            if (actual is not null) AssertClose($"{what} (chunk {chunk})", actual.ToDoubleArray(), expected!.ToDoubleArray(), tol);
        }
        Close("y", fast.Y, reference.Y, ForwardTolerance);
        Close("lastState", fast.LastState, reference.LastState, ForwardTolerance);
        Close("dx", fastGrads.DX, refGrads.DX, GradientTolerance);
        Close("ddt", fastGrads.DDt, refGrads.DDt, GradientTolerance);
        Close("dA", fastGrads.DA, refGrads.DA, GradientTolerance);
        Close("dB", fastGrads.DB, refGrads.DB, GradientTolerance);
        Close("dC", fastGrads.DC, refGrads.DC, GradientTolerance);
        Close("dD", fastGrads.DD, refGrads.DD, GradientTolerance);
        Close("dDtBias", fastGrads.DDtBias, refGrads.DDtBias, GradientTolerance);
    }

    [Fact]
    public void KernelMatchesReferenceWhenDecaysUnderflow()
    {
        // dt·A far below −87 within a chunk: exp(cum_j − cum_s) and the state's decay underflow.
        using var scope = new TensorScope();
        var pr = Problem.Random(21, batch: 2, l: 40, h: 2, p: 5, g: 1, n: 6, softplus: false);
        for (int i = 0; i < pr.Dt.Length; i++) pr.Dt[i] *= 40;
        AssertKernelMatchesReference(pr, chunk: 16);
    }

    // ---- the op on the CPU backend ----

    [Theory]
    [InlineData(4, 2, 5, true, true, true)]
    [InlineData(3, 1, 19, false, false, false)]      // n = 19: the step's vector loop and its tail
    public void StepByStepEqualsParallelForward(int h, int g, int n, bool withD, bool withBias, bool clamp)
    {
        using var scope = new TensorScope();
        var pr = Problem.Random(23, batch: 2, l: 7, h, p: 3, g, n, withD, withBias, clamp: clamp);
        var a = pr.Args(DType.F32);
        var (y, last) = F.SsdScan(a.X, a.Dt, a.A, a.B, a.C, a.D, a.DtBias, dtMin: pr.DtMin, dtMax: pr.DtMax, chunkSize: 3, returnLastState: true);

        var state = Tensor.Zeros(new Shape(pr.Batch, h, pr.P, pr.N));
        var yAll = y.ToFloatArray();
        for (int t = 0; t < pr.L; t++)
        {
            var x = Slice(pr.X, t, pr.L, h * pr.P, pr.Batch, h, pr.P);
            var dt = Slice(pr.Dt, t, pr.L, h, pr.Batch, h);
            var b = Slice(pr.B, t, pr.L, g * pr.N, pr.Batch, g, pr.N);
            var c = Slice(pr.C, t, pr.L, g * pr.N, pr.Batch, g, pr.N);
            var yt = F.SsdScanStep(x, dt, a.A, b, c, state, a.D, a.DtBias, dtMin: pr.DtMin, dtMax: pr.DtMax).ToFloatArray();
            var expected = Slice(yAll, t, pr.L, h * pr.P, pr.Batch, h, pr.P).ToDoubleArray();
            AssertClose($"y at t = {t}", yt.Select(v => (double)v).ToArray(), expected, 1e-6);
        }
        AssertClose("state after L steps", state.ToDoubleArray(), last!.ToDoubleArray(), 1e-6);
    }

    [Fact]
    public void OpGradientsMatchFiniteDifferences()
    {
        var pr = Problem.Random(3, batch: 2, l: 5, h: 4, p: 3, g: 2, n: 3);
        using var root = new TensorScope();
        var a = pr.Args(DType.F32, lastState: false);
        Tensor[] inputs = [a.X, a.Dt, a.A, a.B, a.C, a.D!, a.DtBias!];
        string[] names = ["x", "dt", "A", "B", "C", "D", "dtBias"];
        for (int i = 0; i < inputs.Length; i++) inputs[i].Name = names[i];
        GradCheck.Check(t => F.SsdScan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], chunkSize: 2).Y, inputs,   // 3 chunks
            eps: 1e-2, atol: 2e-3, rtol: 2e-2, maxChecksPerInput: 24);
    }

    [Fact]
    public void OpWithoutOptionalInputsOrLastState()
    {
        using var scope = new TensorScope();
        var pr = Problem.Random(8, batch: 2, l: 6, h: 2, p: 4, g: 1, n: 3, withD: false, withBias: false);
        var a = pr.Args(DType.F32);
        var (y, last) = F.SsdScan(a.X, a.Dt, a.A, a.B, a.C);
        Assert.Null(last);
        var (expected, _) = pr.QuadraticForm();
        AssertClose("y", y.ToDoubleArray(), expected, 1e-6);
    }

    /// <summary>Time step t of a [batch, L, rest…] array as a tensor of <paramref name="shape"/> ([batch, rest…]).</summary>
    private static Tensor Slice(float[] values, int t, int l, int rowSize, params int[] shape)
    {
        int batch = shape[0];
        var slice = new float[batch * rowSize];
        for (int b = 0; b < batch; b++) Array.Copy(values, (b * l + t) * rowSize, slice, b * rowSize, rowSize);
        return Tensor.From(slice, shape);
    }

    /// <summary>max |actual − expected| ≤ tol · max |expected| (tensor-relative, so near-zero elements do not dominate).</summary>
    private static void AssertClose(string what, double[] actual, double[] expected, double tol)
    {
        Assert.Equal(expected.Length, actual.Length);
        if (expected.Length == 0) return;
        double scale = expected.Select(Math.Abs).DefaultIfEmpty(0).Max(), worst = 0;
        int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = Math.Abs(actual[i] - expected[i]);
            if (!(e <= worst)) { worst = e; at = i; }
        }
        Assert.True(worst <= tol * Math.Max(scale, 1e-30),
            $"{what}: max |actual − expected| = {worst:G3} at {at} (actual {actual[at]:G6}, expected {expected[at]:G6}), max |expected| = {scale:G3}, relative {worst / Math.Max(scale, 1e-30):G3} > {tol}");
    }
}

/// <summary>The SSD backward splits a group's heads over the workers (each split adding into its own dB, dC copy): the
/// kernel against the reference with 1, 3 and 8 workers, which changes the number of splits.</summary>
[Collection(EngineSettingsCollection.Name)]
public class SsdScanThreadTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(8)]
    public void KernelMatchesReferenceForAnyWorkerCount(int threads)
    {
        var engine = Backend.Settings;
        try
        {
            Backend.Configure(engine with { Threads = threads });
            using var scope = new TensorScope();
            var pr = SsdScanTests.Problem.Random(31, batch: 1, l: 20, h: 6, p: 4, g: 2, n: 5);
            SsdScanTests.AssertKernelMatchesReference(pr, chunk: 8);
        }
        finally { Backend.Configure(engine); }
    }
}
