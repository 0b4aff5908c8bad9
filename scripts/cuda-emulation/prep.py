# ssd-check.sh's preprocessor: common.cuh + a kernel file as C++ for shim.h — the inline PTX the SSD kernels reach
# replaced by its emulation (ex2 → exp2f, cvt.rna.tf32 → emu_tf32, mma.sync → emu_mma), the rest (half/bf16 asm) dropped.
import re, sys
common, ssd, out = sys.argv[1:4]
src = open(common).read() + "\n" + open(ssd).read()
# asm statements the SSD kernels reach, replaced by their emulation; the rest (unused by SSD) dropped
src = src.replace('asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', 'y = exp2f(x);')
src = re.sub(r'__device__ __forceinline__ float to_f32\(half_bits x\)[^\n]*\n', '', src)
src = re.sub(r'template <> __device__ __forceinline__ half_bits from_f32<half_bits>[^\n]*\n', '', src)
src = src.replace('else ((half_bits*)y)[i] = from_f32<half_bits>(v);', '')
src = src.replace('asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(hi) : "f"(v));', 'hi = emu_tf32(v);')
src = src.replace('asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(lo) : "f"(v - __uint_as_float(hi)));', 'lo = emu_tf32(v - __uint_as_float(hi));')
src = re.sub(r'asm\("mma\.sync[^;]*;"\s*:[^;]*;', 'emu_mma(d0, d1, d2, d3, a, b0, b1);', src, flags=re.S)
src = src.replace('asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.v) : "f"(x));', "")
src = src.replace('extern "C"', '')
assert 'asm(' not in src.replace('//', ''), [l for l in src.split('\n') if 'asm(' in l]
open(out, 'w').write(src)
