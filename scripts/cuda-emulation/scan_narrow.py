# scan-check.sh's exactness check of the _gbf16 kernel (F32 inputs, dΔ and dz written in BF16) against the float one of
# the same file, as the GPU test NarrowGradientsAreTheRoundedF32Ones asks: du the same bits, dΔ and dz the F32 values
# rounded to BF16 (nearest even).  scan_narrow.py F32_OUT BF16_OUT B L D
import sys, numpy as np
a, b = (np.fromfile(f, dtype=np.float32) for f in sys.argv[1:3])
B, L, D = map(int, sys.argv[3:6]); bld = B * L * D
def bf16(x):
    u = x.view(np.uint32).astype(np.uint64)
    return (((u + 0x7fff + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
bad = []
for k, name in enumerate(["du", "ddelta", "dz"]):
    x, y = a[k * bld:(k + 1) * bld], b[k * bld:(k + 1) * bld]
    want = x if name == "du" else bf16(x)
    diff = int((want.view(np.uint32) != y.view(np.uint32)).sum())
    if diff: bad.append(f"{name}: {diff} of {bld} differ")
print(("FAIL " + "; ".join(bad)) if bad else "ok (du same bits, dΔ and dz the rounded F32 ones)")
sys.exit(1 if bad else 0)
