using System.Runtime.InteropServices;
using Mamba4.Backends;
using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// The managed SGEMM kernel and the public entry point (OpenBLAS where it loads) against a triple loop accumulated
/// in double: every transpose combination, edge sizes, alpha/beta, padded leading dimensions.
/// Tolerance: |C − ref| ≤ 1e-5 · (|alpha|·Σ_p |op(A)[i,p]|·|op(B)[p,j]| + |beta·C0[i,j]|).
/// </summary>
[Collection(EngineSettingsCollection.Name)]
public unsafe class GemmTests
{
    private unsafe delegate void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    private static readonly Sgemm Managed = CpuGemm.SgemmManaged;
    private static readonly Sgemm Public = CpuGemm.Sgemm;
    private static readonly Sgemm OpenBlas = CpuGemm.SgemmOpenBlas;

    /// <summary>Every implementation this machine can run: the managed kernel, the public dispatch, and OpenBLAS when it loads.</summary>
    private static Sgemm[] All => CpuGemm.OpenBlasLoaded ? [Managed, Public, OpenBlas] : [Managed, Public];

    public static TheoryData<int, int, int> Sizes => new()
    {
        { 1, 1, 1 }, { 7, 7, 7 }, { 33, 33, 33 }, { 1, 1000, 7 }, { 33, 7, 1000 }, { 100, 33, 257 },
        { 6, 16, 256 }, { 13, 50, 3 },
        { 150, 300, 520 }, // several tiles and K slices, split across cores
        { 4100, 17, 5 }, { 5, 4100, 9 }, // past the outer M and N blocks
        { 20, 30, 2000 }, // one tile, long K: the cores split K
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void AllTransposesMatchReference(int m, int n, int k)
    {
        foreach (var gemm in All)
        foreach (bool transA in new[] { false, true })
        foreach (bool transB in new[] { false, true })
        {
            Check(gemm, transA, transB, m, n, k, alpha: 1.5f, beta: -0.75f, pad: 0, nanC: false);
            Check(gemm, transA, transB, m, n, k, alpha: -0.5f, beta: 1f, pad: 3, nanC: false);
        }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 33, 100)]
    [InlineData(150, 300, 520)]
    public void BetaZeroOverwritesNaN(int m, int n, int k)
    {
        foreach (var gemm in All)
        foreach (bool transA in new[] { false, true })
        foreach (bool transB in new[] { false, true })
            Check(gemm, transA, transB, m, n, k, alpha: 1f, beta: 0f, pad: 2, nanC: true);
    }

    [Fact]
    public void SlowerKernelsMatchReference()
    {
        // The AVX2 kernel (on 32-wide panels where AVX-512 sets the panel width) and the scalar one.
        try
        {
            foreach (var kernel in new[] { CpuGemm.Kernel.Scalar, CpuGemm.Kernel.Avx2 }.Where(kernel => kernel < CpuGemm.BestKernel))
            {
                CpuGemm.ActiveKernel = kernel;
                foreach (bool transA in new[] { false, true })
                foreach (bool transB in new[] { false, true })
                {
                    Check(Managed, transA, transB, 33, 57, 300, alpha: 1.5f, beta: -0.75f, pad: 1, nanC: false);
                    Check(Managed, transA, transB, 20, 40, 9, alpha: 1f, beta: 0f, pad: 0, nanC: true);
                }
            }
        }
        finally { CpuGemm.ActiveKernel = CpuGemm.BestKernel; }
    }

    [Fact]
    public void FewRowKernelsMatchReference()
    {
        // CpuGemv (A·Wᵀ for few rows): the 4×3 tiles on 512-bit vectors, the 3×2 and 3×1 tiles, with row and
        // weight-row remainders, k below, at and past the 32-wide blocks.
        var engine = Backend.Settings;
        try
        {
        unsafe
        {
            Sgemm few = (transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) => CpuGemv.RowsTimesTransposed(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            foreach (var tiles in new[] { CpuGemvTiles.Auto, CpuGemvTiles.Up3x2, CpuGemvTiles.Rows })
            {
                Backend.Configure(engine with { CpuGemvTiles = tiles });
                foreach (int m in new[] { 1, 3, 4, 5, 8, 13 })
                foreach (int n in new[] { 1, 2, 3, 7, 50 })
                foreach (int k in new[] { 5, 32, 48, 100, 777 })
                {
                    Check(few, false, true, m, n, k, alpha: 1.5f, beta: -0.75f, pad: 0, nanC: false);
                    Check(few, false, true, m, n, k, alpha: -0.5f, beta: 0f, pad: 3, nanC: true);
                }
            }
        }
        }
        finally { Backend.Configure(engine); }
    }

    [Fact]
    public void ZeroDepthOrZeroAlphaOnlyScalesC()
    {
        foreach (var gemm in All)
        {
            Check(gemm, false, false, 5, 9, 0, alpha: 1f, beta: 0.5f, pad: 1, nanC: false);
            Check(gemm, false, false, 5, 9, 0, alpha: 1f, beta: 0f, pad: 1, nanC: true);
            Check(gemm, true, true, 5, 9, 4, alpha: 0f, beta: -2f, pad: 0, nanC: false);
        }
    }

    [Fact]
    public void ConcurrentCallersGetTheirOwnBuffers()
    {
        // Each thread owns its pack buffers; results must not mix.
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
            Check(Managed, i % 2 == 1, i / 2 == 1, 70 + i, 90, 300, alpha: 1f, beta: 0f, pad: i, nanC: true));
    }

    [Fact]
    public void BadLeadingDimensionsThrow()
    {
        float* p = stackalloc float[64];
        Assert.Throws<ArgumentException>(() => CpuGemm.Sgemm(false, false, 2, 3, 4, 1f, p, 3, p, 3, 0f, p, 3));
        Assert.Throws<ArgumentException>(() => CpuGemm.SgemmManaged(true, false, 2, 3, 4, 1f, p, 1, p, 3, 0f, p, 3));
        Assert.Throws<ArgumentException>(() => CpuGemm.Sgemm(false, true, 2, 3, 4, 1f, p, 4, p, 3, 0f, p, 3));
        Assert.Throws<ArgumentException>(() => CpuGemm.Sgemm(false, false, 2, 3, 4, 1f, p, 4, p, 3, 0f, p, 2));
        Assert.Throws<ArgumentException>(() => CpuGemm.Sgemm(false, false, -1, 3, 4, 1f, p, 4, p, 3, 0f, p, 3));
    }

    [Fact]
    public void DescriptionSaysWhichImplementationRuns()
    {
        Assert.Contains(CpuGemm.UsingOpenBlas ? "OpenBLAS" : "managed", CpuGemm.BlasDescription);
    }

    [Fact]
    public void BackendGemmDerivesSizesFromShapes()
    {
        using var scope = new TensorScope();
        var rng = new Random(5);
        // A [2, 3, 4] is a 6×4 matrix; op(A)·op(B) is 6×5 for every transpose combination below.
        foreach (bool transA in new[] { false, true })
        foreach (bool transB in new[] { false, true })
        {
            var a = GradCheck.Random(rng, 1f, transA ? [4, 6] : [2, 3, 4]);
            var b = GradCheck.Random(rng, 1f, transB ? [5, 4] : [4, 5]);
            var c = GradCheck.Random(rng, 1f, 6, 5);
            var c0 = c.ToFloatArray();
            CpuBackend.Instance.Gemm(a, transA, b, transB, c, 2f, 0.5f);
            var (expected, scale) = Reference(transA, transB, 6, 5, 4, 2f, a.ToFloatArray(), transA ? 6 : 4, b.ToFloatArray(), transB ? 4 : 5, 0.5f, c0, 5);
            AssertClose(expected, scale, c.ToFloatArray(), 5, 5, $"backend transA={transA} transB={transB}");
        }
    }

    [Fact]
    public void BackendGemmRejectsMismatchedShapes()
    {
        using var scope = new TensorScope();
        var a = Tensor.Zeros(new Shape(6, 4));
        var b = Tensor.Zeros(new Shape(5, 4));
        var c = Tensor.Zeros(new Shape(6, 5));
        var inner = Assert.Throws<ArgumentException>(() => CpuBackend.Instance.Gemm(a, false, b, false, c, 1f, 0f));
        Assert.Contains("[6, 4]", inner.Message);
        Assert.Contains("[5, 4]", inner.Message);
        var wrongC = Assert.Throws<ArgumentException>(() => CpuBackend.Instance.Gemm(a, false, b, true, Tensor.Zeros(new Shape(5, 6)), 1f, 0f));
        Assert.Contains("[5, 6]", wrongC.Message);
        Assert.Throws<ArgumentException>(() => CpuBackend.Instance.Gemm(a, false, b, true, a.Reshape(6, 4).Slice(0, 6).Reshape(4, 6), 1f, 0f));
        CpuBackend.Instance.Gemm(a, false, b, true, c, 1f, 0f); // the right shapes pass
    }

    /// <summary>Runs one product on padded random matrices and compares it (and the untouched padding) with the reference.</summary>
    private static void Check(Sgemm gemm, bool transA, bool transB, int m, int n, int k, float alpha, float beta, int pad, bool nanC)
    {
        var rng = new Random(HashCode.Combine(m, n, k, transA, transB, pad));
        int lda = (transA ? m : k) + pad, ldb = (transB ? k : n) + pad, ldc = n + pad;
        int aRows = transA ? k : m, bRows = transB ? n : k;
        // Padding holds NaN: reading it would poison the result.
        var a = Matrix(rng, aRows, transA ? m : k, Math.Max(1, lda));
        var b = Matrix(rng, bRows, transB ? k : n, Math.Max(1, ldb));
        var c = Matrix(rng, m, n, ldc);
        if (nanC)
            for (int i = 0; i < m; i++)
                Array.Fill(c, float.NaN, i * ldc, n);
        var c0 = (float[])c.Clone();
        var (expected, scale) = Reference(transA, transB, m, n, k, alpha, a, Math.Max(1, lda), b, Math.Max(1, ldb), beta, c0, ldc);
        fixed (float* pa = a, pb = b, pc = c)
            gemm(transA, transB, m, n, k, alpha, pa, Math.Max(1, lda), pb, Math.Max(1, ldb), beta, pc, ldc);
        string what = $"{(gemm == Managed ? "managed" : "public")} transA={transA} transB={transB} m={m} n={n} k={k} alpha={alpha} beta={beta} pad={pad}";
        AssertClose(expected, scale, c, n, ldc, what);
        for (int i = 0; i < m; i++)
        for (int j = n; j < ldc; j++)
            Assert.True(float.IsNaN(c[i * ldc + j]), $"{what}: padding C[{i}, {j}] was written");
    }

    /// <summary>rows × cols values in [-1, 1) with row stride ld; the padding columns are NaN.</summary>
    private static float[] Matrix(Random rng, int rows, int cols, int ld)
    {
        var x = new float[Math.Max(1, rows * ld)];
        Array.Fill(x, float.NaN);
        for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            x[i * ld + j] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    /// <summary>ref = alpha·Σ_p op(A)[i,p]·op(B)[p,j] + beta·C0 in double, and the error scale for each element.</summary>
    private static (double[] Expected, double[] Scale) Reference(bool transA, bool transB, int m, int n, int k, float alpha,
        float[] a, int lda, float[] b, int ldb, float beta, float[] c0, int ldc)
    {
        var expected = new double[m * n];
        var scale = new double[m * n];
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            double sum = 0, abs = 0;
            for (int p = 0; p < k; p++)
            {
                double x = transA ? a[p * lda + i] : a[i * lda + p];
                double y = transB ? b[j * ldb + p] : b[p * ldb + j];
                sum += x * y;
                abs += Math.Abs(x * y);
            }
            double old = beta == 0f ? 0 : beta * (double)c0[i * ldc + j];
            expected[i * n + j] = alpha * sum + old;
            scale[i * n + j] = Math.Abs(alpha) * abs + Math.Abs(old);
        }
        return (expected, scale);
    }

    private static void AssertClose(double[] expected, double[] scale, float[] actual, int n, int ldc, string what)
    {
        for (int idx = 0; idx < expected.Length; idx++)
        {
            int i = idx / n, j = idx % n;
            double got = actual[i * ldc + j], tol = 1e-5 * scale[idx];
            if (!(Math.Abs(got - expected[idx]) <= tol))
                Assert.Fail($"{what}: C[{i}, {j}] = {got}, expected {expected[idx]} (tolerance {tol:G3})");
        }
    }
}
