// Fill, column copies and same-shape arithmetic (Ops/Elementwise.cs, Ops/Concat.cs).
//   y = a + b,  y = a·b,  y = αx,  dst += α·src

extern "C" __global__ void fill_u64(u64* p, u64 bits, i64 n)
{
    GRID_STRIDE(i, n) p[i] = bits;
}

// dst[r, dstCol + c] = src[r, srcCol + c] for c < cols; n = rows·cols
#define COPY_COLUMNS(NAME, T)                                                                              \
    extern "C" __global__ void NAME(const T* src, int sLast, int srcCol, T* dst, int dLast, int dstCol, int cols, i64 n) \
    {                                                                                                      \
        GRID_STRIDE(i, n)                                                                                  \
        {                                                                                                  \
            i64 r = i / cols;                                                                              \
            int c = (int)(i - r * cols);                                                                   \
            dst[r * dLast + dstCol + c] = src[r * sLast + srcCol + c];                                     \
        }                                                                                                  \
    }
COPY_COLUMNS(copy_columns_u8, unsigned char)
COPY_COLUMNS(copy_columns_u16, unsigned short)
COPY_COLUMNS(copy_columns_u32, unsigned int)
COPY_COLUMNS(copy_columns_u64, u64)

extern "C" __global__ void add(const float* a, const float* b, float* y, i64 n)
{
    GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

extern "C" __global__ void mul(const float* a, const float* b, float* y, i64 n)
{
    GRID_STRIDE(i, n) y[i] = a[i] * b[i];
}

extern "C" __global__ void scale(const float* x, float alpha, float* y, i64 n)
{
    GRID_STRIDE(i, n) y[i] = x[i] * alpha;
}

extern "C" __global__ void add_in_place(float* dst, const float* src, float alpha, i64 n)
{
    if (alpha == 1.f) { GRID_STRIDE(i, n) dst[i] += src[i]; }
    else { GRID_STRIDE(i, n) dst[i] = fmaf(src[i], alpha, dst[i]); }
}

// F32 → BF16, round to nearest even (NaN stays NaN): the operands of the BF16 GEMM (MatmulPrecision.Bf16)
extern "C" __global__ void f32_to_bf16(const float* x, unsigned short* y, i64 n)
{
    GRID_STRIDE(i, n) store_as<1>(y, i, x[i]);
}

// F32 → F16, round to nearest even (PTX cvt.rn): the activations multiplied by F16 weights (GemmNarrowWeight)
extern "C" __global__ void f32_to_f16(const float* x, unsigned short* y, i64 n)
{
    GRID_STRIDE(i, n) store_as<2>(y, i, x[i]);
}
