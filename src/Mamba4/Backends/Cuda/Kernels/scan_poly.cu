// The selective-scan forward of scan.cu with one state in P taking its exponential from poly_exp2 (common.cuh) on the
// FMA pipe instead of ex2 on the special-function unit: scan_forward_ns{NS}_{sel,lti}_poly{P}{type}, P = 16, 8, 4;
// with _pre: dt and the gate computed once per (step, channel) per tile in shared memory (PRE in scan_forward_impl),
// scan_forward_ns{NS}_{sel,lti}[_poly{P}]_pre{type}.
// Its own file (and module) so that a compile failure here leaves scan.cu's kernels working; CudaBackend picks these
// kernels by MAMBA4_SCAN_FWD (CudaBackend.SelectiveScan.cs). Everything but the kernels comes from scan.cu.
#define SCAN_HELPERS_ONLY
#include "scan.cu"

#define SCAN_FORWARD_POLY(NS, P, T, SUFFIX)                                                                                   \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_ns##NS##_sel_poly##P##SUFFIX(ScanParams p, int phase) { scan_forward_impl<NS, true, false, T, P>(p, phase, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_ns##NS##_lti_poly##P##SUFFIX(ScanParams p, int phase) { scan_forward_impl<NS, false, false, T, P>(p, phase, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_ns##NS##_sel_poly##P##_pre##SUFFIX(ScanParams p, int phase) { scan_forward_impl<NS, true, false, T, P, true>(p, phase, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_ns##NS##_lti_poly##P##_pre##SUFFIX(ScanParams p, int phase) { scan_forward_impl<NS, false, false, T, P, true>(p, phase, blockIdx.y); }
#define SCAN_FORWARD_PRE(NS, T, SUFFIX)                                                                                       \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_ns##NS##_sel_pre##SUFFIX(ScanParams p, int phase) { scan_forward_impl<NS, true, false, T, 0, true>(p, phase, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(128) scan_forward_ns##NS##_lti_pre##SUFFIX(ScanParams p, int phase) { scan_forward_impl<NS, false, false, T, 0, true>(p, phase, blockIdx.y); }
#define SCAN_FORWARD_POLY_TYPES(NS, P) SCAN_FORWARD_POLY(NS, P, float, ) SCAN_FORWARD_POLY(NS, P, bf16_bits, _bf16) SCAN_FORWARD_POLY(NS, P, half_bits, _f16)
#define SCAN_FORWARD_POLY_ALL(P) SCAN_FORWARD_POLY_TYPES(1, P) SCAN_FORWARD_POLY_TYPES(2, P) SCAN_FORWARD_POLY_TYPES(4, P) \
    SCAN_FORWARD_POLY_TYPES(8, P) SCAN_FORWARD_POLY_TYPES(16, P)
#define SCAN_FORWARD_PRE_TYPES(NS) SCAN_FORWARD_PRE(NS, float, ) SCAN_FORWARD_PRE(NS, bf16_bits, _bf16) SCAN_FORWARD_PRE(NS, half_bits, _f16)
SCAN_FORWARD_POLY_ALL(16)
SCAN_FORWARD_POLY_ALL(8)
SCAN_FORWARD_POLY_ALL(4)
SCAN_FORWARD_PRE_TYPES(1)
SCAN_FORWARD_PRE_TYPES(2)
SCAN_FORWARD_PRE_TYPES(4)
SCAN_FORWARD_PRE_TYPES(8)
SCAN_FORWARD_PRE_TYPES(16)

// y = poly_exp2(x): for the GPU test of its accuracy against 2^x in double precision.
extern "C" __global__ void poly_exp2_values(const float* x, float* y, i64 n) { GRID_STRIDE(i, n) y[i] = poly_exp2(x[i]); }
