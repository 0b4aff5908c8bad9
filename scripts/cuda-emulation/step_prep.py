# step-check.sh's preprocessor: common.cuh + mamba_step.cu as C++ for shim.h — programmatic-launch and L2-prefetch PTX
# dropped (one kernel runs at a time here), dynamic shared memory a static buffer (one block at a time), the f16 and bf16
# conversions emulated (as scan_fwd_prep.py).
import re, sys
from prep import common_replacements
common, step, out = sys.argv[1:4]
src = common_replacements(open(common).read() + "\n" + open(step).read(), f16_input=True)
src = src.replace('asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.v) : "f"(x));', 'r.v = emu_bf16(x);')
for ptx in ('asm volatile("griddepcontrol.launch_dependents;");', 'asm volatile("griddepcontrol.wait;" ::: "memory");',
            'asm volatile("prefetch.global.L2 [%0];" :: "l"((const char*)w + at));'):
    assert ptx in src, ptx
    src = src.replace(ptx, ';')
src = src.replace('extern __shared__ __align__(16) float xs[];', 'float* xs = emu_dyn;')
assert 'asm(' not in src.replace('//', ''), [l for l in src.split('\n') if 'asm(' in l]
assert 'asm volatile' not in src, [l for l in src.split('\n') if 'asm volatile' in l]
open(out, 'w').write(src)
