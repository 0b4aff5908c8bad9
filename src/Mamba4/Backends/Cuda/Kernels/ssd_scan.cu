// Mamba-2's SSD scan (Ops/SsdScan.cs has the math). Work in progress: the kernels land next.
#include "common.cuh"

extern "C" __global__ void ssd_scan_placeholder() {}
