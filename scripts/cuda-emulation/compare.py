# ssd-check.sh's judge: y and the last state of the second run against a float64 recurrence, every output of it against the
# first run's (main's kernels).   compare.py B L H G P N CHUNK MAIN.bin OTHER.bin [plain|clamp]   (run.cpp's modes)
import sys, numpy as np
b, L, H, G, P, N, chunk = map(int, sys.argv[1:8]); fm, fp = sys.argv[8:10]
mode = sys.argv[10] if len(sys.argv) > 10 else ""
# TOL=rel_y,rel_grad (ssd-check.sh TF32=1: the TF32 products against main's F32-accurate ones); F32 accuracy by default
tol_y, tol_g = map(float, (__import__("os").environ.get("TOL") or "1e-5,1e-4").split(","))
def parse(f):
    v = np.fromfile(f, dtype=np.float32); o = 0; out = {}
    for name, n in [("y", b*L*H*P), ("last", b*H*P*N), ("dx", b*L*H*P), ("ddt", b*L*H), ("dA", H), ("dB", b*L*G*N), ("dC", b*L*G*N), ("dD", H), ("dDtBias", H),
                    ("x", b*L*H*P), ("dt", b*L*H), ("A", H), ("B", b*L*G*N), ("C", b*L*G*N), ("D", H), ("bias", H), ("dy", b*L*H*P)]:
        out[name] = v[o:o+n].astype(np.float64); o += n
    assert o == len(v); return out
m, q = parse(fm), parse(fp)
x = m["x"].reshape(b, L, H, P); dt = m["dt"].reshape(b, L, H); Bm = m["B"].reshape(b, L, G, N); Cm = m["C"].reshape(b, L, G, N)
y = np.zeros((b, L, H, P)); last = np.zeros((b, H, P, N))
for bi in range(b):
    for h in range(H):
        g = h // (H // G); s = np.zeros((P, N))
        for t in range(L):
            v = dt[bi, t, h] + m["bias"][h]
            if mode != "plain": v = v if v > 20 else np.log1p(np.exp(v))
            if mode == "clamp": v = min(max(v, 0.1), 0.6)
            s = np.exp(v * m["A"][h]) * s + v * np.outer(x[bi, t, h], Bm[bi, t, g])
            y[bi, t, h] = s @ Cm[bi, t, g] + m["D"][h] * x[bi, t, h]
        last[bi, h] = s
def rel(a, r): return np.max(np.abs(a - r)) / max(np.max(np.abs(r)), 1e-3)
ok = True
print(f"  F64 reference: y main {rel(m['y'], y.ravel()):.1e}, other {rel(q['y'], y.ravel()):.1e}; last state main {rel(m['last'], last.ravel()):.1e}, other {rel(q['last'], last.ravel()):.1e}")
ok &= rel(q['y'], y.ravel()) < tol_y and rel(q['last'], last.ravel()) < tol_y
for k in ["y", "last", "dx", "ddt", "dA", "dB", "dC", "dD", "dDtBias"]:
    nanm, nanq = np.isnan(m[k]).sum(), np.isnan(q[k]).sum()
    r = rel(q[k], m[k]) if not (nanm or nanq) else float("nan")
    tol = tol_y if k in ("y", "last") else tol_g
    bad = nanm or nanq or not r <= tol
    ok &= not bad
    print(f"  {k}: other vs main {r:.1e}{'  NaN main %d other %d' % (nanm, nanq) if nanm or nanq else ''}{'  <-- BAD' if bad else ''}")
print("  OK" if ok else "  FAILED"); raise SystemExit(0 if ok else 1)
