# scan-fwd-check.sh's preprocessor: common.cuh + selective_scan.cu as C++ for shim.h — the time-parallel forward kernels
# (scan_forward_lanes*) only: every instantiation line dropped and the three lanes kernels instantiated, cp.async
# emulated by a copy (or zeros), the special-function PTX replaced by libm (as scan_prep.py).
import re, sys
from prep import common_replacements
common, scan, out = sys.argv[1:4]
src = open(common).read() + "\n" + open(scan).read()
src = common_replacements(src, f16_input=True)
src = src.replace('asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', 'y = log2f(x);')
src = src.replace('asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', 'y = 1.f / x;')
src = src.replace('asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.v) : "f"(x));', 'r.v = emu_bf16(x);')
n16 = src.count('asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"')
src = re.sub(r'asm volatile\("cp\.async\.cg\.shared\.global \[%0\], \[%1\], 16, %2;"[^;]*"memory"\);',
             'if (valid) std::memcpy(dst, src, 16); else std::memset(dst, 0, 16);', src)
src = re.sub(r'asm volatile\("cp\.async\.ca\.shared\.global \[%0\], \[%1\], 4, %2;"[^;]*"memory"\);',
             'if (valid) std::memcpy(dst, src, 4); else std::memset(dst, 0, 4);', src)
assert n16 == 1, n16
src = re.sub(r'asm volatile\("cp\.async\.(commit|wait)_group[^"]*" ::: "memory"\);', '', src)
src = src.replace('extern __shared__ float4 smem4[];', 'float4* smem4 = emu_smem;')
src = re.sub(r'^SCAN_(FORWARD|BACKWARD)\w*\(.*$', '', src, flags=re.M)
assert 'SCAN_FORWARD_LANES(T, T, SUFFIX)' in src
src += '\nSCAN_FORWARD_LANES(float, float, )\nSCAN_FORWARD_LANES(bf16_bits, bf16_bits, _bf16)\nSCAN_FORWARD_LANES(float, bf16_bits, _obf16)\n'
assert 'asm(' not in src.replace('//', ''), [l for l in src.split('\n') if 'asm(' in l]
assert 'asm volatile' not in src, [l for l in src.split('\n') if 'asm volatile' in l]
open(out, 'w').write(src)
