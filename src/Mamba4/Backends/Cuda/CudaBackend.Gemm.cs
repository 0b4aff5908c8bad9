using Mamba4.Backends.Cuda.Native;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// GEMM through cuBLAS. Our matrices are row-major; cuBLAS is column-major, where a row-major X [r, c] is Xᵀ with
// leading dimension c. So C = op(A)·op(B) (row-major, m×n) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ:
//   cublasSgemm(opB, opA, n, m, k, α, B, ldb = B's row length, A, lda = A's row length, β, C, ldc = n)
// with opX = T when X is to be transposed. TF32 stays off unless MatmulPrecision says Tf32; with Bf16 the operands
// of Gemm are rounded to BF16 (elementwise.cu: f32_to_bf16) and multiplied by cublasGemmEx with F32 accumulation.
public sealed unsafe partial class CudaBackend
{
    private int _mathMode = -1;

    private nint CublasHandle()
    {
        if (_cublas == 0)
            lock (_lock)   // the server's decoding thread and its request threads may get here first together
                if (_cublas == 0)
                {
                    MakeCurrent();
                    nint h;
                    Cublas.Check(Cublas.cublasCreate(&h), "cublasCreate");
                    Cublas.Check(Cublas.cublasSetStream(h, Stream), "cublasSetStream");
                    _cublas = h;
                }
        int mode = MatmulPrecision == MatmulPrecision.Tf32 ? Cublas.Tf32TensorOpMath : Cublas.DefaultMath;
        if (mode != _mathMode)
        {
            Cublas.Check(Cublas.cublasSetMathMode(_cublas, mode), "cublasSetMathMode");
            _mathMode = mode;
        }
        return _cublas;
    }

    public void Gemm(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta)
    {
        var (m, n, k) = Ops.OpCheck.GemmSizes(a, transA, b, transB, c);
        int aCols = a.Shape.Last, bCols = b.Shape.Last;   // the leading dimensions
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (beta == 0f) Fill(c, 0f);
            else Scale(c, beta, c);
            return;
        }
        if (MatmulPrecision == MatmulPrecision.Bf16 || a.DType == DType.BF16 || b.DType == DType.BF16)
        {
            GemmBf16(transA, transB, m, n, k, alpha, a, b, beta, c);
            return;
        }
        Sgemm(transA, transB, m, n, k, alpha, a.DataPointer, Math.Max(1, aCols), b.DataPointer, Math.Max(1, bCols), beta, c.DataPointer, Math.Max(1, n));
    }

    /// <summary>C[i] = α·op(A[i])·op(B[i]) + β·C[i] over [batch, rows, last] tensors: one cublasSgemmStridedBatched
    /// (F32; the matmul precision applies as for <see cref="Gemm"/>, except BF16, which runs as F32 here).</summary>
    public void GemmBatched(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta)
    {
        int batch = Cpu.CpuBackend.BatchOf(a, b, c);
        int aRows = a.Shape[1], aCols = a.Shape[2], bRows = b.Shape[1], bCols = b.Shape[2];
        int m = transA ? aCols : aRows, k = transA ? aRows : aCols;
        int bk = transB ? bCols : bRows, n = transB ? bRows : bCols;
        if (bk != k || c.Shape[1] != m || c.Shape[2] != n)
            throw new ArgumentException($"gemm (batched): A{a.Shape}{(transA ? "ᵀ" : "")} · B{b.Shape}{(transB ? "ᵀ" : "")} into C{c.Shape}: op(A) is {m}×{k}, op(B) is {bk}×{n}, so C must be [{batch}, {m}, {n}]");
        if (batch == 0 || m == 0 || n == 0) return;
        if (k == 0)
        {
            if (beta == 0f) Fill(c, 0f);
            else Scale(c, beta, c);
            return;
        }
        var h = CublasHandle();
        MakeCurrent();
        Cublas.Check(Cublas.cublasSgemmStridedBatched(h, transB ? Cublas.OpT : Cublas.OpN, transA ? Cublas.OpT : Cublas.OpN, n, m, k,
            &alpha, b.DataPointer, Math.Max(1, bCols), (long)bRows * bCols, a.DataPointer, Math.Max(1, aCols), (long)aRows * aCols,
            &beta, c.DataPointer, Math.Max(1, n), (long)m * n, batch),
            $"cublasSgemmStridedBatched ({batch} × C[{m}×{n}] = A{(transA ? "ᵀ" : "")}·B{(transB ? "ᵀ" : "")}, k = {k})");
    }

    /// <summary>C (F32) = α·op(A)·op(B) + β·C with A and B rounded to BF16 (tensor cores, F32 accumulation): an F32 operand
    /// by a pass into a BF16 copy first, a BF16 one (<see cref="ProductOperand"/>: rounded once for several products) as it
    /// is. (Handing cuBLAS the F32 operands with CUBLAS_COMPUTE_32F_FAST_16BF instead was timed in session 10: 0.99–1.03×
    /// the training step, within the noise, with less defined rounding; not kept. docs/cuda-kernel-notes.md.)</summary>
    private void GemmBf16(bool transA, bool transB, int m, int n, int k, float alpha, Tensor a, Tensor b, float beta, Tensor c)
    {
        using Tensor? a16 = Bf16Operand(a, "A"), b16 = Bf16Operand(b, "B");
        var h = CublasHandle();
        MakeCurrent();
        Cublas.Check(Cublas.cublasGemmEx(h, transB ? Cublas.OpT : Cublas.OpN, transA ? Cublas.OpT : Cublas.OpN, n, m, k,
            &alpha, (b16 ?? b).DataPointer, Cublas.R16BF, Math.Max(1, b.Shape.Last), (a16 ?? a).DataPointer, Cublas.R16BF, Math.Max(1, a.Shape.Last),
            &beta, c.DataPointer, Cublas.R32F, Math.Max(1, n), Cublas.Compute32F, Cublas.GemmDefault),
            $"cublasGemmEx BF16 (C[{m}×{n}] = A{(transA ? "ᵀ" : "")}·B{(transB ? "ᵀ" : "")}, k = {k})");
    }

    /// <summary>A BF16 product operand: null for one already BF16 (read as it is), an F32 one's rounded copy, else an error.</summary>
    private Tensor? Bf16Operand(Tensor x, string which) => x.DType switch
    {
        DType.BF16 => null,
        DType.F32 => RoundedToBf16(x),
        _ => throw new ArgumentException($"gemm: {which}{x.Shape} is {x.DType}; BF16 products take F32 or BF16 operands"),
    };

    public Tensor? ProductOperand(Tensor x) => ProductOperandType == DType.BF16 && x.DType == DType.F32 ? RoundedToBf16(x) : null;
    public DType ProductOperandType => MatmulPrecision == MatmulPrecision.Bf16 ? DType.BF16 : DType.F32;
    public DType ActivationType => Bf16Activations ? ProductOperandType : DType.F32;

    /// <summary>With BF16 products, the activations a product alone reads are written in BF16 by their makers (the block's
    /// RMSNorm output for in_proj, the scan's output for out_proj: <see cref="ActivationType"/>), and so are the gradients
    /// a product alone reads (the scan's dΔ and dz, the conv's dx: Tensor.NarrowGradient), instead of in F32 and rounded
    /// by a pass before each product; the same bits (GPU tests). Off: all in F32, for timing the two in one run.</summary>
    public bool Bf16Activations { get; set; } = true;

    /// <summary>A BF16 copy of F32 x, rounded to nearest even (elementwise.cu: f32_to_bf16).</summary>
    private Tensor RoundedToBf16(Tensor x)
    {
        var y = Tensor.Empty(x.Shape, DType.BF16, x.Device);
        RoundToBf16(x, y);
        return y;
    }

    /// <summary>y (BF16) = F32 x rounded to nearest even.</summary>
    private void RoundToBf16(Tensor x, Tensor y)
    {
        if (x.NumElements > 0) Map(Kernels.Elementwise.File, Kernels.Elementwise.F32ToBf16, x.NumElements, x, y, x.NumElements);
    }

    /// <summary>y (F32) = x·Wᵀ with W [out, in] BF16 or F16 kept narrow in GPU memory: x is rounded to W's type and
    /// cublasGemmEx multiplies on the tensor cores with F32 accumulation. (I8 weights are widened to BF16 when a model
    /// is loaded onto the GPU, so none reach here.) The overload with β (1: y += x·Wᵀ) serves the decoding step.</summary>
    public void GemmNarrowWeight(Tensor x, Tensor weight, Tensor y) => GemmNarrowWeight(x, weight, y, 0f);

    internal void GemmNarrowWeight(Tensor x, Tensor weight, Tensor y, float beta)
    {
        int kind = NarrowKind(weight);
        if (EmptyNarrowGemm(x, weight, y, beta)) return;
        var x16 = Allocator.Allocate(x.NumElements * 2);
        try
        {
            Map(Kernels.Elementwise.File, kind == 0 ? Kernels.Elementwise.F32ToBf16 : Kernels.Elementwise.F32ToF16, x.NumElements, x, x16.Pointer, x.NumElements);
            GemmNarrow(x16.Pointer, checked((int)x.Shape.Rows), x.Shape.Last, weight, y, beta);
        }
        finally
        {
            x16.Release();
        }
    }

    /// <summary>y = x·Wᵀ with x already in W's 2-byte type (written so by the kernel that made it: the decoding step's
    /// RMSNorm, conv and scan beyond 8 streams), so no conversion pass precedes the product. With <paramref name="beta"/> 1, y += x·Wᵀ.</summary>
    internal void GemmNarrowInput(Tensor x, Tensor weight, Tensor y, float beta = 0f)
    {
        NarrowKind(weight);
        if (x.DType != weight.DType)
            throw new ArgumentException($"gemm: x{x.Shape} is {x.DType}, the weight {weight.Name}{weight.Shape} {weight.DType}; a narrow product's input must be in the weight's type");
        if (!EmptyNarrowGemm(x, weight, y, beta)) GemmNarrow(x.DataPointer, checked((int)x.Shape.Rows), x.Shape.Last, weight, y, beta);
    }

    /// <summary>Checks y = x·Wᵀ's shapes; for an empty product does its whole work (nothing, or y = β·y when k = 0) and says so.</summary>
    private bool EmptyNarrowGemm(Tensor x, Tensor weight, Tensor y, float beta)
    {
        int k = x.Shape.Last;
        if (weight.Rank != 2 || weight.Shape[1] != k || y.Shape.Rows != x.Shape.Rows || y.Shape.Last != weight.Shape[0])
            throw new ArgumentException($"gemm: x{x.Shape} · W{weight.Shape}ᵀ into y{y.Shape}: W must be [{y.Shape.Last}, {k}] and y [{x.Shape.Rows}, {weight.Shape[0]}]");
        if (x.Shape.Rows == 0 || weight.Shape[0] == 0) return true;
        if (k == 0)
        {
            if (beta == 0f) Fill(y, 0f);
            else Scale(y, beta, y);
            return true;
        }
        return false;
    }

    /// <summary>y [m, n] F32 = x16 [m, k]·Wᵀ + β·y by cuBLAS, x16 in W's 2-byte type, F32 accumulation.</summary>
    private void GemmNarrow(nint x16, int m, int k, Tensor weight, Tensor y, float beta)
    {
        int type = NarrowKind(weight) == 0 ? Cublas.R16BF : Cublas.R16F, n = weight.Shape[0];
        float alpha = 1f;
        var h = CublasHandle();
        MakeCurrent();
        Cublas.Check(Cublas.cublasGemmEx(h, Cublas.OpT, Cublas.OpN, n, m, k,
            &alpha, weight.DataPointer, type, k, x16, type, k,
            &beta, y.DataPointer, Cublas.R32F, n, Cublas.Compute32F, Cublas.GemmDefault),
            $"cublasGemmEx {weight.DType} weight {weight.Name} (y[{m}×{n}] = x·Wᵀ, k = {k})");
    }

    /// <summary>0 for a BF16 weight, 1 for F16 (the kernels' weight kind); anything else is an error naming the weight.</summary>
    private static int NarrowKind(Tensor weight) => weight.DType switch
    {
        DType.BF16 => 0,
        DType.F16 => 1,
        _ => throw new ArgumentException($"weight {weight.Name}{weight.Shape} is {weight.DType}; on the GPU narrow weights are BF16 or F16 (I8 is widened to BF16 at load)"),
    };

    /// <summary>Row-major C[m×n] = α·op(A)·op(B) + β·C on device addresses, each matrix with its own row stride (ld).</summary>
    internal void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha, nint a, int lda, nint b, int ldb, float beta, nint c, int ldc)
    {
        var h = CublasHandle();
        MakeCurrent();
        Cublas.Check(Cublas.cublasSgemm(h, transB ? Cublas.OpT : Cublas.OpN, transA ? Cublas.OpT : Cublas.OpN, n, m, k,
            &alpha, b, ldb, a, lda, &beta, c, ldc),
            $"cublasSgemm (C[{m}×{n}] = A{(transA ? "ᵀ" : "")}·B{(transB ? "ᵀ" : "")}, k = {k})");
    }
}
