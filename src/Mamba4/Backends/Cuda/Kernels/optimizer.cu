// AdamW (Training/AdamW.cs) over every parameter in one launch: a table of chunks (≤ ADAMW_CHUNK elements of one
// tensor each), one block per chunk. Per element, as CpuBackend.AdamWStep (g = gradScale·grad: clipping's factor):
//   m = β₁m + (1−β₁)g,   v = β₂v + (1−β₂)g²,   p −= lr·wd·p (not in the tensor's skip row),
//   p −= (lr/bc₁)·m / (√v/√bc₂ + ε)
struct AdamWChunk
{
    float* p;
    const float* g;
    float* m;
    float* v;
    i64 n;           // elements in this chunk
    i64 first;       // index of its first element in the tensor (for the row of the padding exemption)
    i64 rowLength;
    i64 skipRow;     // −1: none
    float weightDecay;
    int pad;
};

extern "C" __global__ void adamw_multi(const AdamWChunk* chunks, float lr, float beta1, float beta2, float eps, float bc1, float bc2, float gradScale)
{
    const AdamWChunk c = chunks[blockIdx.x];
    float stepSize = lr / bc1, rootBc2 = sqrtf(bc2), decay = lr * c.weightDecay;
    for (i64 i = threadIdx.x; i < c.n; i += blockDim.x)
    {
        float g = c.g[i] * gradScale;
        float m = beta1 * c.m[i] + (1 - beta1) * g;
        float v = beta2 * c.v[i] + (1 - beta2) * g * g;
        c.m[i] = m;
        c.v[i] = v;
        float p = c.p[i];
        if ((c.first + i) / c.rowLength != c.skipRow) p -= decay * p;
        c.p[i] = p - stepSize * m / (sqrtf(v) / rootBc2 + eps);
    }
}
