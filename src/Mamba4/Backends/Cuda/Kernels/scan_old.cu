// TEMPORARY (v13 measurement only): scan.cu's forward as of v12 (two or three barriers per tile, runtime TPC and phase),
// kept so that the GPU bench can time it interleaved against the new forward (variant part `old`). Removed after the run.
#define SCAN_HELPERS_ONLY
#include "scan.cu"

// phase 0: h̃_c, S_c (local end state from zero, Σ dt).  phase 1: outputs y (and the last state) from H_c.
// phase 2 (for the backward): h̃_c, S_c and õ_c in one forward sweep, since
//   õ_c = a_{t0}(C_{t0}dy_{t0} + a_{t0+1}(C_{t0+1}dy_{t0+1} + …)) = Σ_t P_t·C_t·dy_t,   P_t = Π_{s=t0..t} a_s
// so one exp per state and step serves both.
// PRE (scan_poly.cu): dt and the gate silu(z) of a tile are computed once per (step, channel) by the whole block into
// shared memory (after the tile arrives, with the bf16 widening: one barrier), instead of by each of the TPC lanes of a
// channel at every step — with TPC = 4 that is 4× fewer softplus and silu on the special-function unit.
template <int NS, bool SEL, bool GRADS, typename T, bool PRE = false>
__device__ void scan_forward_old_impl(const ScanParams& p, int phase, int chunk)
{
    extern __shared__ float4 smem4[];
    T* smem = reinterpret_cast<T*>(smem4);
    ScanLane s = scan_lane(p, chunk, p.tpc, blockDim.x / p.tpc);
    const int N = p.N, n0 = s.sub * NS, np = NS * p.tpc, cpb = blockDim.x / p.tpc, chl = threadIdx.x / p.tpc;
    const bool outputs = !GRADS && phase == 1, grads = GRADS;
    const int slabs = GRADS ? 4 : 3, buffer = slabs * FT * cpb + (SEL ? 2 * FT * np : 0);
    float a2[NS], h[NS], bv[NS], cv[NS], P[NS], o[NS];
    #pragma unroll
    for (int i = 0; i < NS; i++)
    {
        bool ok = n0 + i < N;
        a2[i] = ok ? p.A[(i64)s.dc * N + n0 + i] * LOG2E : 0.f;
        bv[i] = ok && !SEL ? to_f32(reinterpret_cast<const T*>(p.B)[(i64)s.dc * N + n0 + i]) : 0.f;
        cv[i] = ok && !SEL ? to_f32(reinterpret_cast<const T*>(p.C)[(i64)s.dc * N + n0 + i]) : 0.f;
        h[i] = ok && outputs && s.c > 0 ? p.carryH[(((i64)s.b * p.chunks + s.c) * p.Dch + s.dc) * N + n0 + i] : 0.f;
        P[i] = 1.f;
        o[i] = 0.f;
    }
    const float skip = p.D ? p.D[s.dc] : 0.f, bias = p.bias ? p.bias[s.dc] : 0.f;
    const bool withZ = (outputs || grads) && p.z, needC = outputs || grads;
    float dtSum = 0.f;
    // PRE: the channel of the (step, channel) items a thread computes is the same for every tile (blockDim is a multiple of cpb)
    const float preBias = PRE && p.bias ? p.bias[min(blockIdx.x * cpb + (int)(threadIdx.x & (cpb - 1)), p.Dch - 1)] : 0.f;
    if (s.t0 < s.t1) issue_tile(p, s.b, s.t0, s.t1, cpb, np, withZ, grads, SEL, needC, slabs, smem);
    for (int tt = s.t0, j = 0; tt < s.t1; tt += FT, j++)
    {
        T* cur = smem + (j & 1) * buffer;
        if (tt + FT < s.t1)
        {
            issue_tile(p, s.b, tt + FT, s.t1, cpb, np, withZ, grads, SEL, needC, slabs, smem + ((j + 1) & 1) * buffer);
            cp_async_wait_one();
        }
        else cp_async_wait_all();
        __syncthreads();
        const T *su = cur, *sd = cur + FT * cpb, *sz = cur + 2 * FT * cpb, *so = cur + 3 * FT * cpb;
        // B, C rows as F32: a 2-byte T is widened once per tile into rowsF by the whole block (one or two elements per
        // thread, one more barrier) instead of in every thread that reads it. (Widening by the threads that copied the
        // rows, without that barrier, was slower: 16-byte copies leave the work to 16 threads.)
        const float *sB, *sC;
        bool widened = false;
        if constexpr (sizeof(T) == 4)
        {
            sB = reinterpret_cast<const float*>(cur + slabs * FT * cpb);
            sC = sB + FT * np;
        }
        else
        {
            float* rowsF = reinterpret_cast<float*>(smem + 2 * buffer);
            if (SEL)
            {
                const T* raw = cur + slabs * FT * cpb;
                for (int k = threadIdx.x; k < (needC ? 2 : 1) * FT * np; k += blockDim.x) rowsF[k] = to_f32(raw[k]);
                widened = true;
            }
            sB = rowsF;
            sC = rowsF + FT * np;
        }
        float* preDt = reinterpret_cast<float*>(smem + 2 * buffer) + (sizeof(T) == 2 && SEL ? 2 * FT * np : 0);
        float* preGate = preDt + FT * cpb;
        if constexpr (PRE)
        {
            for (int k = threadIdx.x; k < FT * cpb; k += blockDim.x)
            {
                preDt[k] = scan_dt(to_f32(sd[k]) + preBias, p.softplus);
                if (withZ) preGate[k] = fast_silu(to_f32(sz[k]));
            }
        }
        if (PRE || widened) __syncthreads();
        const int steps = min(FT, s.t1 - tt);
        const i64 base = ((i64)s.b * p.L + tt) * p.Dch + s.dc;
        #pragma unroll
        for (int k = 0; k < FT; k++)
        {
            if (k >= steps) break;
            const float uu = to_f32(su[k * cpb + chl]);
            float dt = PRE ? preDt[k * cpb + chl] : scan_dt(to_f32(sd[k * cpb + chl]) + bias, p.softplus), dtu = dt * uu;
            dtSum += dt;
            float bn[NS], cn[NS];
            if (SEL)
            {
                load_row<NS>(sB + k * np + n0, bn);
                if (needC) load_row<NS>(sC + k * np + n0, cn);
            }
            float dy = 0.f;
            if (grads) dy = withZ ? to_f32(so[k * cpb + chl]) * fast_silu(to_f32(sz[k * cpb + chl])) : to_f32(so[k * cpb + chl]);
            float y0 = 0.f, y1 = 0.f;
            #pragma unroll
            for (int i = 0; i < NS; i++)
            {
                const float a = fast_exp2(dt * a2[i]);
                h[i] = fmaf(a, h[i], dtu * (SEL ? bn[i] : bv[i]));
                float c_ = SEL ? cn[i] : cv[i];
                if (outputs)
                {
                    if (i & 1) y1 = fmaf(c_, h[i], y1);
                    else y0 = fmaf(c_, h[i], y0);
                }
                if (grads)
                {
                    P[i] *= a;
                    o[i] = fmaf(P[i], c_ * dy, o[i]);
                }
            }
            if (outputs)
            {
                float yv = channel_sum(y0 + y1, p.tpc);
                if (s.sub == 0 && s.active)
                {
                    yv = fmaf(skip, uu, yv);
                    if (withZ) yv *= PRE ? preGate[k * cpb + chl] : fast_silu(to_f32(sz[k * cpb + chl]));
                    reinterpret_cast<T*>(p.y)[base + (i64)k * p.Dch] = from_f32<T>(yv);
                }
            }
        }
        __syncthreads();
    }
    if (!s.active) return;
    if (!outputs)
    {
        i64 at = (((i64)s.b * p.chunks + s.c) * p.Dch + s.d) * N;
        #pragma unroll
        for (int i = 0; i < NS; i++)
            if (n0 + i < N)
            {
                p.carryH[at + n0 + i] = h[i];
                if (grads) p.carryG[at + n0 + i] = o[i];
            }
        if (s.sub == 0) p.sumDt[((i64)s.b * p.chunks + s.c) * p.Dch + s.d] = dtSum;
    }
    else if (p.last && s.c == p.chunks - 1)
    {
        #pragma unroll
        for (int i = 0; i < NS; i++) if (n0 + i < N) p.last[((i64)s.b * p.Dch + s.d) * N + n0 + i] = h[i];
    }
}

#define SCAN_FORWARD_OLD(NS, T, SUFFIX)                                                                                       \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_old_ns##NS##_sel##SUFFIX(ScanParams p, int phase) { scan_forward_old_impl<NS, true, false, T>(p, phase, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_old_ns##NS##_lti##SUFFIX(ScanParams p, int phase) { scan_forward_old_impl<NS, false, false, T>(p, phase, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_old_ns##NS##_sel_pre##SUFFIX(ScanParams p, int phase) { scan_forward_old_impl<NS, true, false, T, true>(p, phase, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_old_ns##NS##_lti_pre##SUFFIX(ScanParams p, int phase) { scan_forward_old_impl<NS, false, false, T, true>(p, phase, blockIdx.y); }
#define SCAN_FORWARD_OLD_TYPES(NS) SCAN_FORWARD_OLD(NS, float, ) SCAN_FORWARD_OLD(NS, bf16_bits, _bf16) SCAN_FORWARD_OLD(NS, half_bits, _f16)
SCAN_FORWARD_OLD_TYPES(1)
SCAN_FORWARD_OLD_TYPES(2)
SCAN_FORWARD_OLD_TYPES(4)
SCAN_FORWARD_OLD_TYPES(8)
SCAN_FORWARD_OLD_TYPES(16)
