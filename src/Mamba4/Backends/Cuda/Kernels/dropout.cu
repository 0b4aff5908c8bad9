// Inverted dropout (Ops/Dropout.cs) with the CPU backend's counter-based mask: element i is kept iff
// SplitMix64(seed, i) ≥ p·2⁶⁴, so CPU and GPU draw the same mask for the same seed.
//   y = x·m/(1 − p),   dx = dy·m/(1 − p)

extern "C" __global__ void dropout_forward(const float* x, float* y, unsigned char* mask, u64 seed, u64 threshold, float scale, i64 n)
{
    GRID_STRIDE(i, n)
    {
        bool keep = split_mix64(seed, (u64)i) >= threshold;
        mask[i] = keep ? 1 : 0;
        y[i] = keep ? x[i] * scale : 0.f;
    }
}

extern "C" __global__ void dropout_backward(const float* dy, const unsigned char* mask, float scale, float* dx, i64 n)
{
    GRID_STRIDE(i, n) dx[i] = mask[i] ? dy[i] * scale : 0.f;
}
