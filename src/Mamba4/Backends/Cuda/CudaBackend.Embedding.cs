using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/embedding.cu
public sealed unsafe partial class CudaBackend
{
    public void EmbeddingForward(Tensor weight, Tensor ids, Tensor y)
    {
        int num = weight.Shape[0], dim = weight.Shape[1];
        long n = ids.NumElements * dim;
        if (n == 0) return;
        // nothing can be read back while a graph is captured: out-of-range ids give zero rows there, unreported
        Tensor? slot = IsCapturing ? null : BadIndexSlot();
        if (weight.DType == DType.F32)
            Launch(Kernels.Embedding.File, Kernels.Embedding.EmbeddingForward, GridFor(n), 256, 0, weight, ids, ids.DType == DType.I64, num, dim, y, n, slot);
        else
            Launch(Kernels.Embedding.File, Kernels.Embedding.EmbeddingForwardNarrow, GridFor(n), 256, 0, weight, NarrowKind(weight), ids, ids.DType == DType.I64, num, dim, y, n, slot);
        if (IsCapturing) return;
        long bad = ReadBadIndex(slot!);
        if (bad >= 0)
            throw new ArgumentOutOfRangeException(nameof(ids), $"Embedding: id {HostIndex(ids, bad)} at position {bad} of ids {ids.Shape} is outside [0, {num}) for weight {weight.Name}{weight.Shape}");
    }

    public void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dWeight, long paddingIndex)
    {
        int dim = dWeight.Shape[1];
        long n = ids.NumElements * dim;
        Map(Kernels.Embedding.File, Kernels.Embedding.EmbeddingBackward, n, dy, ids, ids.DType == DType.I64, dim, dWeight, paddingIndex, n);
    }
}
