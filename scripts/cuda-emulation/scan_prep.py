# scan-check.sh's preprocessor: common.cuh + selective_scan.cu as C++ for shim.h — the main backward kernels only (the
# forward's and phase 2's instantiations dropped, their cp.async PTX removed), the special-function PTX replaced by libm
# (ex2 → exp2f, lg2 → log2f, rcp → 1/x; prep.py's common_replacements), the dynamic shared memory a static buffer.
import re, sys
from prep import common_replacements
common, scan, out = sys.argv[1:4]
src = open(common).read() + "\n" + open(scan).read()
src = common_replacements(src, f16_input=True)   # unpack2(…, half_bits, …) must compile
src = src.replace('asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', 'y = log2f(x);')
src = src.replace('asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', 'y = 1.f / x;')
src = src.replace('asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.v) : "f"(x));', 'r.v = emu_bf16(x);')
src = re.sub(r'asm volatile\("cp\.async.*?\);', '', src, flags=re.S)
src = src.replace('extern __shared__ float4 smem4[];', 'float4* smem4 = emu_smem;')
# only the float backward kernels are instantiated, and their _gbf16 twins (F32 inputs, dΔ and dz written in BF16):
# the forward's instantiation lines and the backward's BF16 / F16 ones dropped
src = re.sub(r'^SCAN_FORWARD\w*\(.*$', '', src, flags=re.M)
src = re.sub(r'^SCAN_BACKWARD\((bf16_bits|half_bits), .*$', '', src, flags=re.M)
if re.search(r'#define SCAN_BACKWARD\(NS, TPC\)', src):   # a kernel file from before the compile groups: one line a split
    src = re.sub(r'#define SCAN_BACKWARD\(NS, TPC\).*?\n(?=SCAN_BACKWARD\(1, 1\))',
                 '#define SCAN_BACKWARD(NS, TPC) SCAN_BACKWARD_PF(NS, TPC, float, float, ) '
                 'SCAN_BACKWARD_PF(NS, TPC, float, bf16_bits, _gbf16)\n', src, flags=re.S)
else:
    assert re.search(r'^SCAN_BACKWARD\(float, float, \)$', src, re.M) and re.search(r'^SCAN_BACKWARD\(float, bf16_bits, _gbf16\)$', src, re.M)
assert 'asm(' not in src.replace('//', ''), [l for l in src.split('\n') if 'asm(' in l]
open(out, 'w').write(src)
