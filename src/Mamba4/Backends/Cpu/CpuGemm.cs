using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// Single-precision GEMM, row-major: C[m×n] = alpha·op(A)·op(B) + beta·C, op(A) m×k (A stored k×m when
/// transA), op(B) k×n (B stored n×k when transB). beta == 0 overwrites C without reading it.
/// OpenBLAS's cblas_sgemm when libopenblas loads — except on AVX-512 CPUs, where the managed 6×32 kernel
/// measured 1.7–1.9× faster than OpenBLAS 0.3.21 (which runs its Haswell kernels there); MAMBA4_BLAS=managed
/// or MAMBA4_BLAS=openblas forces either — else a managed Goto-style kernel: packed panels, a 6×32 (AVX-512) or 6×16 (AVX2) FMA register tile, tiles split across cores.
/// </summary>
public static unsafe class CpuGemm
{
    private const int CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112;

    // void cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
    private static readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> CblasSgemm;

    /// <summary>Which implementation <see cref="Sgemm"/> uses, and why.</summary>
    public static string BlasDescription { get; }

    /// <summary>OpenBLAS loaded (available to <see cref="SgemmOpenBlas"/> and the benchmark).</summary>
    public static bool OpenBlasLoaded => CblasSgemm != null;

    /// <summary><see cref="Sgemm"/> calls OpenBLAS (rather than the managed kernel).</summary>
    public static bool UsingOpenBlas => CblasSgemm != null && !PreferManaged;

    private static readonly bool PreferManaged;

    static CpuGemm()
    {
        string managed = $"managed {BestKernel switch { Kernel.Avx512 => "AVX-512", Kernel.Avx2 => "AVX2", _ => "scalar" }} kernel";
        var settings = Backend.Settings;
        if (settings.Blas == "managed")
        {
            BlasDescription = $"{managed} (MAMBA4_BLAS=managed)";
            return;
        }
        string? reason = null;
        foreach (var name in (string[])["libopenblas.so.0", "libopenblas.so"])
        {
            if (!NativeLibrary.TryLoad(name, out var lib)) { reason ??= $"{name} did not load"; continue; }
            if (!NativeLibrary.TryGetExport(lib, "cblas_sgemm", out var sgemm)) { reason = $"{name} has no cblas_sgemm"; continue; }
            CblasSgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
            // MAMBA4_THREADS, when set, governs OpenBLAS's threads too
            if (settings.Threads > 0 && NativeLibrary.TryGetExport(lib, "openblas_set_num_threads", out var setThreads))
                ((delegate* unmanaged<int, void>)setThreads)(CpuParallel.Threads);
            PreferManaged = BestKernel == Kernel.Avx512 && settings.Blas != "openblas";
            BlasDescription = PreferManaged
                ? $"{managed} (faster here than the loaded {Describe(lib, name)}; MAMBA4_BLAS=openblas to use it)"
                : Describe(lib, name);
            return;
        }
        BlasDescription = $"{managed} (OpenBLAS not found: {reason})";
    }

    /// <summary>"OpenBLAS 0.3.21 (libopenblas.so.0, openblas_get_config: ..., core Haswell, 2 threads)".</summary>
    private static string Describe(nint lib, string name)
    {
        static string? Text(nint lib, string export) =>
            NativeLibrary.TryGetExport(lib, export, out var f) ? Marshal.PtrToStringUTF8((nint)((delegate* unmanaged<byte*>)f)()) : null;
        var config = Text(lib, "openblas_get_config");
        var words = config?.Split(' ') ?? [];
        string title = words.Length >= 2 && words[0] == "OpenBLAS" ? $"{words[0]} {words[1]}" : "OpenBLAS";
        var parts = new List<string> { name };
        if (config is not null) parts.Add($"openblas_get_config: {config}");
        if (Text(lib, "openblas_get_corename") is { } core) parts.Add($"core {core}");
        if (NativeLibrary.TryGetExport(lib, "openblas_get_num_threads", out var threads))
            parts.Add($"{((delegate* unmanaged<int>)threads)()} threads");
        return $"{title} ({string.Join(", ", parts)})";
    }

    /// <summary>C[m×n] = alpha·op(A)·op(B) + beta·C (row-major; leading dimensions in elements).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        Validate(transA, transB, m, n, k, lda, ldb, ldc);
        if (m == 0 || n == 0) return;
        if (UsingOpenBlas) SgemmOpenBlas(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        else SgemmManaged(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    /// <summary>OpenBLAS's cblas_sgemm (requires <see cref="OpenBlasLoaded"/>).</summary>
    internal static void SgemmOpenBlas(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (CblasSgemm == null) throw new InvalidOperationException("OpenBLAS is not loaded: " + BlasDescription);
        Validate(transA, transB, m, n, k, lda, ldb, ldc);
        if (m == 0 || n == 0) return;
        CblasSgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    private static void Validate(bool transA, bool transB, int m, int n, int k, int lda, int ldb, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"sgemm: negative size m={m}, n={n}, k={k}");
        int aCols = transA ? m : k, bCols = transB ? k : n;
        if (lda < Math.Max(1, aCols) || ldb < Math.Max(1, bCols) || ldc < Math.Max(1, n))
            throw new ArgumentException($"sgemm: leading dimensions lda={lda}, ldb={ldb}, ldc={ldc} are smaller than the rows " +
                                        $"they hold (A {(transA ? $"{k}×{m}" : $"{m}×{k}")}, B {(transB ? $"{n}×{k}" : $"{k}×{n}")}, C {m}×{n})");
    }

    // ---- managed kernel ----

    internal enum Kernel { Scalar, Avx2, Avx512 }

    /// <summary>The fastest micro-kernel this CPU runs: 6×32 on AVX-512, 6×16 on AVX2 + FMA, else scalar.</summary>
    internal static readonly Kernel BestKernel =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? Kernel.Avx512 : Avx2.IsSupported && Fma.IsSupported ? Kernel.Avx2 : Kernel.Scalar;

    /// <summary>The micro-kernel in use (tests switch to the slower ones to cover them).</summary>
    internal static Kernel ActiveKernel { get; set; } = BestKernel;

    /// <summary>Register tile MR × NR; K slice KC (a B micro-panel, KC·NR floats, stays in L1); rows per tile
    /// TileRows (its packed A, TileRows·KC floats, stays in L2), columns per tile TileCols; outer blocks BlockM × BlockN.</summary>
    internal const int MR = 6, KC = 256, TileRows = 144, TileCols = 256, BlockM = 4096, BlockN = 4096;

    /// <summary>Width of a B panel: 32 (two zmm) with AVX-512, else 16 (two ymm). The AVX2 kernel also runs on
    /// 32-wide panels, 16 columns at a time.</summary>
    internal static readonly int NR = BestKernel == Kernel.Avx512 ? 32 : 16;

    private const int MaxNR = 32;

    /// <summary>Below this many multiply-adds the call runs on the calling thread.</summary>
    private const long ParallelWork = 1L << 20;

    /// <summary>The most floats the cores' partial products may take when they split K (16 MB).</summary>
    private const long SplitKFloats = 1L << 22;

    /// <summary>The managed kernel, whatever <see cref="BlasDescription"/> says (tests and benchmarks compare both).</summary>
    internal static void SgemmManaged(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        Validate(transA, transB, m, n, k, lda, ldb, ldc);
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0f)
        {
            ScaleC(m, n, beta, c, ldc);
            return;
        }
        int threads = CpuParallel.Threads > 1 && (long)m * n * k >= ParallelWork ? CpuParallel.Threads : 1;
        long tiles = (long)((m + TileRows - 1) / TileRows) * ((n + TileCols - 1) / TileCols);
        if (threads > 1 && tiles < 2 * threads && k >= KC * threads && (long)m * n * threads <= SplitKFloats)
        {
            SplitK(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
            return;
        }
        var job = GemmJob.Rent();
        try { job.Run(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads); }
        finally { GemmJob.Return(job); }
    }

    [ThreadStatic] private static NativeBuffer? _partials;

    /// <summary>
    /// Too few tiles of C to share but a long K (a small weight gradient over many tokens): part t of the cores'
    /// K ranges writes its own P_t = op(A)[:, K_t]·op(B)[K_t, :], then C = alpha·Σ_t P_t + beta·C.
    /// </summary>
    private static void SplitK(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc, int parts)
    {
        var partials = (_partials ??= new NativeBuffer()).Reserve((long)parts * m * n);
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
        {
            int p0 = (int)((long)k * part / parts), p1 = (int)((long)k * (part + 1) / parts);
            var job = GemmJob.Rent();
            try
            {
                job.Run(transA, transB, m, n, p1 - p0, 1f, transA ? a + (long)p0 * lda : a + p0, lda,
                    transB ? b + p0 : b + (long)p0 * ldb, ldb, 0f, partials + (long)part * m * n, n, threads: 1);
            }
            finally { GemmJob.Return(job); }
        });
        var sum = new Span<float>(partials, m * n);
        for (int part = 1; part < parts; part++)
            System.Numerics.Tensors.TensorPrimitives.Add(sum, new ReadOnlySpan<float>(partials + (long)part * m * n, m * n), sum);
        for (int i = 0; i < m; i++)
        {
            var row = new Span<float>(c + (long)i * ldc, n);
            var p = sum.Slice(i * n, n);
            System.Numerics.Tensors.TensorPrimitives.Multiply(p, alpha, beta == 0f ? row : p);
            if (beta != 0f) System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(row, beta, p, row);
        }
    }

    /// <summary>A 64-byte aligned native float buffer that grows on demand and is freed with its owner.</summary>
    private sealed class NativeBuffer
    {
        private float* _pointer;
        private long _capacity;

        public float* Reserve(long floats)
        {
            if (floats <= _capacity) return _pointer;
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
            _capacity = 0;
            _pointer = (float*)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, floats) * sizeof(float)), 64);
            if (_pointer == null) throw new OutOfMemoryException($"sgemm: could not allocate a {floats}-float buffer");
            _capacity = floats;
            return _pointer;
        }

        ~NativeBuffer() => NativeMemory.AlignedFree(_pointer);
    }

    /// <summary>C = beta·C (beta == 0 writes zeros without reading C).</summary>
    private static void ScaleC(int m, int n, float beta, float* c, int ldc)
    {
        for (int i = 0; i < m; i++)
        {
            var row = new Span<float>(c + (long)i * ldc, n);
            if (beta == 0f) row.Clear();
            else if (beta != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(row, beta, row);
        }
    }

    /// <summary>
    /// One call's state. For each block (BlockM rows × BlockN columns × KC): pack op(A) into MR-row panels and
    /// op(B) into NR-column panels (zero-padded), then run the micro-kernel over TileRows × TileCols tiles of C.
    /// Both phases are split across cores. Rented per calling thread so the pack buffers (native) are reused.
    /// </summary>
    private sealed class GemmJob
    {
        [ThreadStatic] private static GemmJob? _cached;

        public static GemmJob Rent()
        {
            var job = _cached ?? new GemmJob();
            _cached = null; // a re-entrant call on this thread gets its own
            return job;
        }

        public static void Return(GemmJob job) => _cached = job;

        private readonly Action<int> _packChunk, _computeTile;
        private ParallelOptions _options = new();
        private readonly NativeBuffer _bufferA = new(), _bufferB = new();
        private float* _packedA, _packedB;

        // the call
        private bool _transA, _transB;
        private float _alpha;
        private float* _a, _b, _c;
        private int _lda, _ldb, _ldc;
        // the current block: rows [i0, i0+mc), columns [j0, j0+nc), depth [p0, p0+kc)
        private int _i0, _mc, _j0, _nc, _p0, _kc;
        private float _blockBeta;
        private int _panelsA, _panelsB, _packChunks, _tileRows, _tileCols;

        private GemmJob()
        {
            _packChunk = PackChunk;
            _computeTile = ComputeTile;
        }

        public void Run(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc, int threads)
        {
            (_transA, _transB, _alpha, _lda, _ldb, _ldc) = (transA, transB, alpha, lda, ldb, ldc);
            _a = a;
            _b = b;
            _c = c;
            bool parallel = threads > 1;
            if (parallel && _options.MaxDegreeOfParallelism != threads) _options = new ParallelOptions { MaxDegreeOfParallelism = threads };

            int slices = (k + KC - 1) / KC, sliceDepth = (k + slices - 1) / slices; // equal K slices
            for (_i0 = 0; _i0 < m; _i0 += BlockM)
            {
                _mc = Math.Min(BlockM, m - _i0);
                _panelsA = (_mc + MR - 1) / MR;
                for (_j0 = 0; _j0 < n; _j0 += BlockN)
                {
                    _nc = Math.Min(BlockN, n - _j0);
                    _panelsB = (_nc + NR - 1) / NR;
                    for (_p0 = 0; _p0 < k; _p0 += sliceDepth)
                    {
                        _kc = Math.Min(sliceDepth, k - _p0);
                        _blockBeta = _p0 == 0 ? beta : 1f;
                        _packedA = _bufferA.Reserve((long)_panelsA * MR * _kc);
                        _packedB = _bufferB.Reserve((long)_panelsB * NR * _kc);
                        _tileRows = (_panelsA * MR + TileRows - 1) / TileRows;
                        _tileCols = (_panelsB * NR + TileCols - 1) / TileCols;
                        _packChunks = parallel ? Math.Min(_panelsA + _panelsB, 8 * threads) : 1;
                        if (parallel)
                        {
                            Parallel.For(0, _packChunks, _options, _packChunk);
                            Parallel.For(0, _tileRows * _tileCols, _options, _computeTile);
                        }
                        else
                        {
                            PackChunk(0);
                            for (int t = 0; t < _tileRows * _tileCols; t++) ComputeTile(t);
                        }
                    }
                }
            }
        }

        /// <summary>Packs panels [chunk·P/chunks, (chunk+1)·P/chunks) of the A panels followed by the B panels.</summary>
        private void PackChunk(int chunk)
        {
            long total = _panelsA + _panelsB;
            int start = (int)(total * chunk / _packChunks), end = (int)(total * (chunk + 1) / _packChunks);
            int endA = Math.Min(end, _panelsA), panel = start;
            if (_transA && endA > start)
            {
                // full panels together: each row of the stored A is read once
                int full = Math.Min(endA, _mc / MR);
                if (full > start)
                    PackATransposed(_a + (long)_p0 * _lda + _i0 + start * MR, _lda, full - start, _kc, _packedA + (long)start * MR * _kc);
                panel = Math.Max(start, full);
            }
            for (; panel < endA; panel++) PackA(panel);
            for (panel = Math.Max(start, _panelsA); panel < end; panel++) PackB(panel - _panelsA);
        }

        private void PackA(int panel)
        {
            int row0 = panel * MR;
            var src = _transA ? _a + (long)_p0 * _lda + _i0 + row0 : _a + (long)(_i0 + row0) * _lda + _p0;
            CpuGemm.PackA(src, _lda, _transA, Math.Min(MR, _mc - row0), _kc, _packedA + (long)panel * MR * _kc);
        }

        private void PackB(int panel)
        {
            int col0 = panel * NR;
            var src = _transB ? _b + (long)(_j0 + col0) * _ldb + _p0 : _b + (long)_p0 * _ldb + _j0 + col0;
            CpuGemm.PackB(src, _ldb, _transB, Math.Min(NR, _nc - col0), _kc, _packedB + (long)panel * NR * _kc);
        }

        /// <summary>One TileRows × TileCols tile of C: for each B micro-panel (held in L1), every A panel of the tile.</summary>
        private void ComputeTile(int tile)
        {
            int tr = tile / _tileCols, tc = tile % _tileCols;
            int panelA0 = tr * (TileRows / MR), panelA1 = Math.Min(_panelsA, panelA0 + TileRows / MR);
            int panelB0 = tc * (TileCols / NR), panelB1 = Math.Min(_panelsB, panelB0 + TileCols / NR);
            int kc = _kc;
            for (int jp = panelB0; jp < panelB1; jp++)
            {
                int col = jp * NR, cols = Math.Min(NR, _nc - col);
                var bPanel = _packedB + (long)jp * NR * kc;
                for (int ip = panelA0; ip < panelA1; ip++)
                {
                    int row = ip * MR, rows = Math.Min(MR, _mc - row);
                    var cTile = _c + (long)(_i0 + row) * _ldc + _j0 + col;
                    var aPanel = _packedA + (long)ip * MR * kc;
                    switch (ActiveKernel)
                    {
                        case Kernel.Avx512:
                            Kernel6x32(kc, aPanel, bPanel, cTile, _ldc, rows, cols, _alpha, _blockBeta);
                            break;
                        case Kernel.Avx2:
                            for (int j = 0; j < cols; j += 16)
                                Kernel6x16(kc, aPanel, bPanel + j, NR, cTile + j, _ldc, rows, Math.Min(16, cols - j), _alpha, _blockBeta);
                            break;
                        default:
                            KernelScalar(kc, aPanel, bPanel, cTile, _ldc, rows, cols, _alpha, _blockBeta);
                            break;
                    }
                }
            }
        }
    }

    /// <summary>
    /// An A panel: dst[p·MR + r] = op(A)[r, p] for p &lt; kc, r &lt; MR (rows ≥ <paramref name="rows"/> are 0), where
    /// op(A)[r, p] = src[r·lda + p], or src[p·lda + r] when transposed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackA(float* src, int lda, bool trans, int rows, int kc, float* dst)
    {
        int p = 0;
        if (rows == MR && !trans && Avx.IsSupported)
        {
            // 8 values of each of the 6 rows, transposed (two zero rows pad the 8×8 block)
            for (; p + 8 <= kc; p += 8, dst += 8 * MR)
            {
                var s = src + p;
                Vector256<float> r0 = Avx.LoadVector256(s), r1 = Avx.LoadVector256(s + lda), r2 = Avx.LoadVector256(s + 2L * lda);
                Vector256<float> r3 = Avx.LoadVector256(s + 3L * lda), r4 = Avx.LoadVector256(s + 4L * lda), r5 = Avx.LoadVector256(s + 5L * lda);
                Vector256<float> r6 = default, r7 = default;
                Transpose8x8(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
                StoreSix(r0, dst); StoreSix(r1, dst + MR); StoreSix(r2, dst + 2 * MR); StoreSix(r3, dst + 3 * MR);
                StoreSix(r4, dst + 4 * MR); StoreSix(r5, dst + 5 * MR); StoreSix(r6, dst + 6 * MR); StoreSix(r7, dst + 7 * MR);
            }
        }
        for (; p < kc; p++, dst += MR)
        for (int r = 0; r < MR; r++)
            dst[r] = r >= rows ? 0f : trans ? src[(long)p * lda + r] : src[(long)r * lda + p];
    }

    /// <summary>
    /// Full A panels [0, panels) of a transposed A (stored k×m): dst[panel·MR·kc + p·MR + r] = src[p·lda + panel·MR + r].
    /// Row p of the stored A is read once and dealt out MR values per panel.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackATransposed(float* src, int lda, int panels, int kc, float* dst)
    {
        const int rowsPerPass = 16; // the rows of the stored A that one pass deals out (kept in L1)
        for (int p0 = 0; p0 < kc; p0 += rowsPerPass)
        {
            int p1 = Math.Min(kc, p0 + rowsPerPass);
            for (int panel = 0; panel < panels; panel++)
            {
                var s = src + (long)p0 * lda + panel * MR;
                var d = dst + (long)panel * MR * kc + p0 * MR;
                for (int p = p0; p < p1; p++, s += lda, d += MR)
                {
                    Vector128.Store(Vector128.Load(s), d);
                    *(long*)(d + 4) = *(long*)(s + 4);
                }
            }
        }
    }

    /// <summary>
    /// A B panel: dst[p·NR + c] = op(B)[p, c] for p &lt; kc, c &lt; NR (columns ≥ <paramref name="cols"/> are 0), where
    /// op(B)[p, c] = src[p·ldb + c], or src[c·ldb + p] when transposed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackB(float* src, int ldb, bool trans, int cols, int kc, float* dst)
    {
        int p = 0;
        if (cols == NR && !trans)
        {
            // the NR values of one p are adjacent
            for (; p < kc; p++, src += ldb, dst += NR)
            for (int c = 0; c < NR; c += 8)
                Vector256.Store(Vector256.Load(src + c), dst + c);
            return;
        }
        if (cols == NR && Avx.IsSupported)
        {
            // 8×8 transposes: columns 0..7, 8..15, ... for 8 values of p
            for (; p + 8 <= kc; p += 8, dst += 8 * NR)
            for (int c = 0; c < NR; c += 8)
            {
                var s = src + (long)c * ldb + p;
                var d = dst + c;
                Vector256<float> r0 = Avx.LoadVector256(s), r1 = Avx.LoadVector256(s + ldb), r2 = Avx.LoadVector256(s + 2L * ldb), r3 = Avx.LoadVector256(s + 3L * ldb);
                Vector256<float> r4 = Avx.LoadVector256(s + 4L * ldb), r5 = Avx.LoadVector256(s + 5L * ldb), r6 = Avx.LoadVector256(s + 6L * ldb), r7 = Avx.LoadVector256(s + 7L * ldb);
                Transpose8x8(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
                Avx.Store(d, r0); Avx.Store(d + NR, r1); Avx.Store(d + 2 * NR, r2); Avx.Store(d + 3 * NR, r3);
                Avx.Store(d + 4 * NR, r4); Avx.Store(d + 5 * NR, r5); Avx.Store(d + 6 * NR, r6); Avx.Store(d + 7 * NR, r7);
            }
        }
        for (; p < kc; p++, dst += NR)
        for (int c = 0; c < NR; c++)
            dst[c] = c >= cols ? 0f : trans ? src[(long)c * ldb + p] : src[(long)p * ldb + c];
    }

    /// <summary>Rows r0..r7 of an 8×8 block become its columns (r_j[i] = old r_i[j]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(ref Vector256<float> r0, ref Vector256<float> r1, ref Vector256<float> r2, ref Vector256<float> r3,
                                     ref Vector256<float> r4, ref Vector256<float> r5, ref Vector256<float> r6, ref Vector256<float> r7)
    {
        // pairs interleaved, then quads, then the 128-bit halves swapped
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        r0 = Avx.Permute2x128(u0, u4, 0x20); r1 = Avx.Permute2x128(u1, u5, 0x20);
        r2 = Avx.Permute2x128(u2, u6, 0x20); r3 = Avx.Permute2x128(u3, u7, 0x20);
        r4 = Avx.Permute2x128(u0, u4, 0x31); r5 = Avx.Permute2x128(u1, u5, 0x31);
        r6 = Avx.Permute2x128(u2, u6, 0x31); r7 = Avx.Permute2x128(u3, u7, 0x31);
    }

    /// <summary>Stores the first 6 floats of v (4 + 2, no write past dst + 6).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreSix(Vector256<float> v, float* dst)
    {
        Vector128.Store(v.GetLower(), dst);
        *(long*)(dst + 4) = v.GetUpper().AsInt64().ToScalar();
    }

    /// <summary>
    /// acc[r, 0..16) = Σ_p a[p·6 + r] · b[p·bStride .. +16]; then C[r, c] = alpha·acc + beta·C (C not read when beta == 0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x16(int kc, float* a, float* b, int bStride, float* c, int ldc, int rows, int cols, float alpha, float beta)
    {
        for (int r = 0; r < rows; r++) // C's rows arrive while the sum runs
        {
            Sse.Prefetch0(c + (nint)r * ldc);
            Sse.Prefetch0(c + (nint)r * ldc + 15);
        }
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Avx.LoadAlignedVector256(b);
            var b1 = Avx.LoadAlignedVector256(b + 8);
            var ar = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(ar, b0, c00); c01 = Fma.MultiplyAdd(ar, b1, c01);
            ar = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(ar, b0, c10); c11 = Fma.MultiplyAdd(ar, b1, c11);
            ar = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(ar, b0, c20); c21 = Fma.MultiplyAdd(ar, b1, c21);
            ar = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(ar, b0, c30); c31 = Fma.MultiplyAdd(ar, b1, c31);
            ar = Vector256.Create(a[4]);
            c40 = Fma.MultiplyAdd(ar, b0, c40); c41 = Fma.MultiplyAdd(ar, b1, c41);
            ar = Vector256.Create(a[5]);
            c50 = Fma.MultiplyAdd(ar, b0, c50); c51 = Fma.MultiplyAdd(ar, b1, c51);
            a += MR;
            b += bStride;
        }

        if (rows == MR && cols == 16)
        {
            var va = Vector256.Create(alpha);
            nint ld = ldc;
            StoreRow(c, c00, c01, va, beta);
            StoreRow(c + ld, c10, c11, va, beta);
            StoreRow(c + 2 * ld, c20, c21, va, beta);
            StoreRow(c + 3 * ld, c30, c31, va, beta);
            StoreRow(c + 4 * ld, c40, c41, va, beta);
            StoreRow(c + 5 * ld, c50, c51, va, beta);
            return;
        }
        var acc = stackalloc float[MR * 16];
        Vector256.Store(c00, acc); Vector256.Store(c01, acc + 8);
        Vector256.Store(c10, acc + 16); Vector256.Store(c11, acc + 24);
        Vector256.Store(c20, acc + 32); Vector256.Store(c21, acc + 40);
        Vector256.Store(c30, acc + 48); Vector256.Store(c31, acc + 56);
        Vector256.Store(c40, acc + 64); Vector256.Store(c41, acc + 72);
        Vector256.Store(c50, acc + 80); Vector256.Store(c51, acc + 88);
        StoreEdge(acc, 16, c, ldc, rows, cols, alpha, beta);
    }

    /// <summary>
    /// The AVX-512 tile: acc[r, 0..32) = Σ_p a[p·6 + r] · b[p·32 .. +32] in 12 zmm registers; then
    /// C[r, c] = alpha·acc + beta·C (C not read when beta == 0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x32(int kc, float* a, float* b, float* c, int ldc, int rows, int cols, float alpha, float beta)
    {
        for (int r = 0; r < rows; r++) // C's rows arrive while the sum runs
        {
            Sse.Prefetch0(c + (nint)r * ldc);
            Sse.Prefetch0(c + (nint)r * ldc + 16);
            Sse.Prefetch0(c + (nint)r * ldc + 31);
        }
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.LoadAligned(b);
            var b1 = Vector512.LoadAligned(b + 16);
            var ar = Vector512.Create(a[0]);
            c00 = Avx512F.FusedMultiplyAdd(ar, b0, c00); c01 = Avx512F.FusedMultiplyAdd(ar, b1, c01);
            ar = Vector512.Create(a[1]);
            c10 = Avx512F.FusedMultiplyAdd(ar, b0, c10); c11 = Avx512F.FusedMultiplyAdd(ar, b1, c11);
            ar = Vector512.Create(a[2]);
            c20 = Avx512F.FusedMultiplyAdd(ar, b0, c20); c21 = Avx512F.FusedMultiplyAdd(ar, b1, c21);
            ar = Vector512.Create(a[3]);
            c30 = Avx512F.FusedMultiplyAdd(ar, b0, c30); c31 = Avx512F.FusedMultiplyAdd(ar, b1, c31);
            ar = Vector512.Create(a[4]);
            c40 = Avx512F.FusedMultiplyAdd(ar, b0, c40); c41 = Avx512F.FusedMultiplyAdd(ar, b1, c41);
            ar = Vector512.Create(a[5]);
            c50 = Avx512F.FusedMultiplyAdd(ar, b0, c50); c51 = Avx512F.FusedMultiplyAdd(ar, b1, c51);
            a += MR;
            b += 32;
        }

        if (rows == MR && cols == 32)
        {
            var va = Vector512.Create(alpha);
            nint ld = ldc;
            StoreRow(c, c00, c01, va, beta);
            StoreRow(c + ld, c10, c11, va, beta);
            StoreRow(c + 2 * ld, c20, c21, va, beta);
            StoreRow(c + 3 * ld, c30, c31, va, beta);
            StoreRow(c + 4 * ld, c40, c41, va, beta);
            StoreRow(c + 5 * ld, c50, c51, va, beta);
            return;
        }
        var acc = stackalloc float[MR * 32];
        Vector512.Store(c00, acc); Vector512.Store(c01, acc + 16);
        Vector512.Store(c10, acc + 32); Vector512.Store(c11, acc + 48);
        Vector512.Store(c20, acc + 64); Vector512.Store(c21, acc + 80);
        Vector512.Store(c30, acc + 96); Vector512.Store(c31, acc + 112);
        Vector512.Store(c40, acc + 128); Vector512.Store(c41, acc + 144);
        Vector512.Store(c50, acc + 160); Vector512.Store(c51, acc + 176);
        StoreEdge(acc, 32, c, ldc, rows, cols, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* c, Vector512<float> lo, Vector512<float> hi, Vector512<float> alpha, float beta)
    {
        lo *= alpha;
        hi *= alpha;
        if (beta != 0f)
        {
            var vb = Vector512.Create(beta);
            lo = Avx512F.FusedMultiplyAdd(vb, Vector512.Load(c), lo);
            hi = Avx512F.FusedMultiplyAdd(vb, Vector512.Load(c + 16), hi);
        }
        Vector512.Store(lo, c);
        Vector512.Store(hi, c + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* c, Vector256<float> lo, Vector256<float> hi, Vector256<float> alpha, float beta)
    {
        lo *= alpha;
        hi *= alpha;
        if (beta != 0f)
        {
            var vb = Vector256.Create(beta);
            lo = Fma.MultiplyAdd(vb, Vector256.Load(c), lo);
            hi = Fma.MultiplyAdd(vb, Vector256.Load(c + 8), hi);
        }
        Vector256.Store(lo, c);
        Vector256.Store(hi, c + 8);
    }

    /// <summary>Writes the valid rows × cols corner of an accumulator tile acc[r · width + j].</summary>
    private static void StoreEdge(float* acc, int width, float* c, int ldc, int rows, int cols, float alpha, float beta)
    {
        for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++)
        {
            ref float dst = ref c[(long)r * ldc + j];
            dst = beta == 0f ? alpha * acc[r * width + j] : alpha * acc[r * width + j] + beta * dst;
        }
    }

    /// <summary>The same tile product without SIMD (machines without AVX2/FMA).</summary>
    private static void KernelScalar(int kc, float* a, float* b, float* c, int ldc, int rows, int cols, float alpha, float beta)
    {
        int nr = NR;
        var acc = stackalloc float[MR * MaxNR];
        new Span<float>(acc, MR * nr).Clear();
        for (int p = 0; p < kc; p++, a += MR, b += nr)
        for (int r = 0; r < MR; r++)
        {
            float ar = a[r];
            for (int j = 0; j < nr; j++) acc[r * nr + j] += ar * b[j];
        }
        StoreEdge(acc, nr, c, ldc, rows, cols, alpha, beta);
    }
}
