// Reductions (Ops/Reduce.cs, and the bias gradient of Ops/Linear.cs), accumulated in double.
//   sum:       y = Σ_i x_i                         (block partials, then one block adds them)
//   sum rows:  y[j] (+)= Σ_r x[r, j]               (column per thread over a segment of rows; segments added after)
//   add row:   y[r, j] += bias[j]

extern "C" __global__ void sum_partials(const float* x, i64 n, double* partial)
{
    double s = 0;
    GRID_STRIDE(i, n) s += x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

extern "C" __global__ void sum_final(const double* partial, int count, float* y)
{
    double s = 0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
    s = block_sum(s);
    if (threadIdx.x == 0) y[0] = (float)s;
}

// grid (⌈d/256⌉, segments): partial[seg, j] = Σ_{r in segment} x[r, j]
extern "C" __global__ void sum_rows_partials(const float* x, i64 rows, int d, i64 rowsPerSegment, double* partial)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    i64 r0 = (i64)blockIdx.y * rowsPerSegment, r1 = min(rows, r0 + rowsPerSegment);
    double s = 0;
    for (i64 r = r0; r < r1; r++) s += x[r * d + j];
    partial[(i64)blockIdx.y * d + j] = s;
}

// y[j] = Σ_seg partial[seg, j]  (+ y[j] when accumulating)
extern "C" __global__ void sum_rows_final(const double* partial, int segments, int d, float* y, int accumulate)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    double s = accumulate ? (double)y[j] : 0.0;
    // unrolled so that eight loads are in flight at once (hundreds of segments: one dependent load a step took ~16 µs
    // for RMSNorm's weight at 8,192 rows); the additions keep their order, so the sums are the same bits
#pragma unroll 8
    for (int g = 0; g < segments; g++) s += partial[(i64)g * d + j];
    y[j] = (float)s;
}

extern "C" __global__ void add_row_vector(float* y, const float* bias, int d, i64 n)
{
    GRID_STRIDE(i, n) y[i] += bias[i % d];
}

// Σ x² over many tensors (the global gradient norm): a table of chunks {x, n}, one block per chunk writes its partial;
// sum_squares_final adds the partials in a fixed order (deterministic), in double.
struct SquaresChunk
{
    const float* x;
    i64 n;
};

extern "C" __global__ void sum_squares_partials(const SquaresChunk* chunks, double* partial)
{
    const SquaresChunk c = chunks[blockIdx.x];
    double s = 0;
    for (i64 i = threadIdx.x; i < c.n; i += blockDim.x) { double v = c.x[i]; s += v * v; }
    s = block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

extern "C" __global__ void sum_squares_final(const double* partial, int count, double* y)
{
    double s = 0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
    s = block_sum(s);
    if (threadIdx.x == 0) y[0] = s;
}
