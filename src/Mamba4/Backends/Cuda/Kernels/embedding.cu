// Embedding (Ops/Embedding.cs): y[p, :] = w[ids[p], :];  dw[ids[p], :] += dy[p, :] except the padding row.
// An id outside [0, num) is not read: the smallest such position goes to *bad (the host raises the error; bad is
// null inside a captured CUDA graph).

extern "C" __global__ void embedding_forward(const float* w, const void* ids, int ids64, int num, int dim, float* y, i64 n, u64* bad)
{
    GRID_STRIDE(i, n)
    {
        i64 p = i / dim;
        int c = (int)(i - p * dim);
        i64 id = load_id(ids, ids64, p);
        if (id < 0 || id >= num)
        {
            if (c == 0 && bad) atomicMin(bad, (u64)p);
            y[i] = 0.f;
        }
        else y[i] = w[id * dim + c];
    }
}

// BF16 (kind 0) or F16 (kind 1) weights, kept narrow on the GPU for inference: the row widened to F32.
extern "C" __global__ void embedding_forward_narrow(const unsigned short* w, int kind, const void* ids, int ids64, int num, int dim, float* y, i64 n, u64* bad)
{
    GRID_STRIDE(i, n)
    {
        i64 p = i / dim;
        int c = (int)(i - p * dim);
        i64 id = load_id(ids, ids64, p);
        if (id < 0 || id >= num)
        {
            if (c == 0 && bad) atomicMin(bad, (u64)p);
            y[i] = 0.f;
        }
        else
        {
            unsigned short h = w[id * dim + c];
            float v;
            if (kind == 0) v = __uint_as_float((unsigned)h << 16);
            else asm("cvt.f32.f16 %0, %1;" : "=f"(v) : "h"(h));
            y[i] = v;
        }
    }
}

// Scatter-add with atomics (positions sharing an id add in any order).
extern "C" __global__ void embedding_backward(const float* dy, const void* ids, int ids64, int dim, float* dw, i64 paddingIndex, i64 n)
{
    GRID_STRIDE(i, n)
    {
        i64 p = i / dim;
        int c = (int)(i - p * dim);
        i64 id = load_id(ids, ids64, p);
        if (id != paddingIndex) atomicAdd(&dw[id * dim + c], dy[i]);
    }
}
