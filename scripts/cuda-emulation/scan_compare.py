# scan-check.sh's comparison: two scan_run outputs (main's kernel file against another) field by field, max |a − b| / max |a|
# (dB, dC, dA, dD, dbias are atomic sums: their order differs); no NaN allowed.  scan_compare.py A B B L D N [lti]
import sys, numpy as np
a, b = (np.fromfile(f, dtype=np.float32) for f in sys.argv[1:3])
B, L, D, N = map(int, sys.argv[3:7]); sel = not (len(sys.argv) > 7 and sys.argv[7] == "lti")
bld, bln, dn = B * L * D, (B * L * N if sel else D * N), D * N
fields = [("du", bld), ("ddelta", bld), ("dz", bld), ("dA", dn), ("dB", bln), ("dC", bln), ("dD", D), ("dbias", D), ("dh0", B * D * N)]
assert a.size == b.size == sum(n for _, n in fields), (a.size, b.size)
at, worst, bad = 0, 0.0, []
for name, n in fields:
    x, y = a[at:at + n].astype(np.float64), b[at:at + n].astype(np.float64); at += n
    if np.isnan(x).any() or np.isnan(y).any(): bad.append(f"{name}: NaN ({np.isnan(x).sum()} / {np.isnan(y).sum()})"); continue
    err = np.abs(x - y).max() / max(np.abs(x).max(), 1e-30)
    worst = max(worst, err)
    if err > 1e-5: bad.append(f"{name}: {err:.2e}")
print(("FAIL " + "; ".join(bad)) if bad else f"ok (worst {worst:.1e})")
sys.exit(1 if bad else 0)
