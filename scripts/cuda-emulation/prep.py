# ssd-check.sh's preprocessor: common.cuh + a kernel file as C++ for shim.h — the inline PTX the SSD kernels reach
# replaced by its emulation (ex2 → exp2f, cvt.rna.tf32 → emu_tf32, mma.sync → emu_mma), the rest (half/bf16 asm) dropped.
# common_replacements is shared with scan_prep.py (the selective scan's).
import re, sys

def common_replacements(src, f16_input=False):
    """The PTX both emulations replace: ex2 by exp2f, the f16 conversions dropped (f16_input: kept as stand-ins, emu_half
    and 0, for f16 code that must compile though it is not run), extern "C" removed."""
    src = src.replace('asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', 'y = exp2f(x);')
    if f16_input:
        src = src.replace('asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.v));', 'f = emu_half(x.v);')
        src = src.replace('asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.v) : "f"(x));', 'r.v = 0;')
    else:
        src = re.sub(r'__device__ __forceinline__ float to_f32\(half_bits x\)[^\n]*\n', '', src)
        src = re.sub(r'template <> __device__ __forceinline__ half_bits from_f32<half_bits>[^\n]*\n', '', src)
    src = src.replace('else ((half_bits*)y)[i] = from_f32<half_bits>(v);', '')
    return src.replace('extern "C"', '')

if __name__ == "__main__":
    common, ssd, out = sys.argv[1:4]
    src = common_replacements(open(common).read() + "\n" + open(ssd).read())
    src = src.replace('asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(hi) : "f"(v));', 'hi = emu_tf32(v);')
    src = src.replace('asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(lo) : "f"(v - __uint_as_float(hi)));', 'lo = emu_tf32(v - __uint_as_float(hi));')
    src = re.sub(r'asm\("mma\.sync[^;]*;"\s*:[^;]*;', 'emu_mma(d0, d1, d2, d3, a, b0, b1);', src, flags=re.S)
    src = src.replace('asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.v) : "f"(x));', "")
    assert 'asm(' not in src.replace('//', ''), [l for l in src.split('\n') if 'asm(' in l]
    open(out, 'w').write(src)
