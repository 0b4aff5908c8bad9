# Off-line emulation (numpy, CPU): how exact would the SSD scan's products be on tensor cores? The chunked forward
# (ssd_scan.cu's plan: C·B per chunk, the in-chunk quadratic form, chunk states, the off part) is computed with every
# product's operands in F64 (the reference), F32, TF32 rounded once (mamba_ssm's Triton default for fp32 inputs) and the
# 3xTF32 split (a = hi + lo, both TF32; a·b ≈ hi·hi + hi·lo + lo·hi), each product accumulated in F32 (numpy's sgemm).
# Prints max |y − y_f64| / max |y_f64| — the measure CudaSsdScanTests holds y to (1e-5).
#   python3 scripts/ssd_tf32_emulation.py        (numpy; Debian: apt-get install python3-numpy)
# Tensor cores do not accumulate exactly as IEEE F32 (their alignment truncates): a real kernel's error can be somewhat
# above these figures; they bound what the operand rounding alone costs.
import numpy as np

def tf32(a):
    """Round F32 to TF32 (10-bit mantissa), to nearest with ties away from zero, as cvt.rna.tf32.f32."""
    bits = np.asarray(a, np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)

def product(mode):
    def mm(a, b):
        if mode == "f64":
            return a.astype(np.float64) @ b.astype(np.float64)
        a, b = a.astype(np.float32), b.astype(np.float32)
        if mode == "f32":
            return a @ b
        ah, bh = tf32(a), tf32(b)
        if mode == "tf32":
            return ah @ bh
        al, bl = tf32(a - ah), tf32(b - bh)
        return ah @ bh + (ah @ bl + al @ bh)   # 3xTF32: the small terms summed first
    return mm

def ssd_forward(x, dt, A, B, C, D, chunk, mode):
    """y for one batch row: x [L, H, P], dt [L, H] (after softplus), A [H], B, C [L, N] (one group), D [H]."""
    L, H, P = x.shape
    mm, f = product(mode), np.float64 if mode == "f64" else np.float32
    y = np.zeros((L, H, P), f)
    for h in range(H):
        S0 = np.zeros((P, B.shape[1]), f)
        for t0 in range(0, L, chunk):
            t1 = min(L, t0 + chunk)
            a = (dt[t0:t1, h] * A[h]).astype(np.float64)
            cum = np.cumsum(a)                                  # double, as ssd_dt_cumsum
            decay = np.exp(np.minimum(cum[:, None] - cum[None, :], 0.0)) * np.tri(t1 - t0)   # exp(cum_t − cum_s), s ≤ t
            w = (decay * dt[t0:t1, h][None, :]).astype(f)
            cb = mm(C[t0:t1], B[t0:t1].T).astype(f)             # ssd_bmm
            diag = mm(w * cb, x[t0:t1, h])                      # the in-chunk quadratic form
            off = np.exp(cum).astype(f)[:, None] * mm(C[t0:t1], S0.T)
            y[t0:t1, h] = diag + off + D[h] * x[t0:t1, h]
            ws = (np.exp(cum[-1] - cum) * dt[t0:t1, h]).astype(f)
            S0 = np.exp(cum[-1]).astype(f) * S0 + mm((x[t0:t1, h] * ws[:, None]).T, B[t0:t1])   # chunk state, passing
    return y

rng = np.random.default_rng(7)
print("| L, H, P, N, chunk | F32 | TF32 (1x) | 3xTF32 |")
print("|---|---|---|---|")
for (L, H, P, N, chunk) in [(300, 2, 24, 48, 256), (512, 2, 64, 128, 256), (2048, 2, 64, 128, 256), (1024, 2, 64, 128, 64)]:
    x = rng.uniform(-1, 1, (L, H, P)).astype(np.float32)
    dt = np.log1p(np.exp(rng.uniform(-4, 0, (L, H)))).astype(np.float32)   # softplus, the bench's range
    A = rng.uniform(-4.5, -0.5, H).astype(np.float32)
    B = rng.uniform(-1, 1, (L, N)).astype(np.float32)
    C = rng.uniform(-1, 1, (L, N)).astype(np.float32)
    D = rng.uniform(-1, 1, H).astype(np.float32)
    ref = ssd_forward(x, dt, A, B, C, D, chunk, "f64")
    scale = np.abs(ref).max()
    errs = [np.abs(ssd_forward(x, dt, A, B, C, D, chunk, m).astype(np.float64) - ref).max() / scale for m in ("f32", "tf32", "tf32x3")]
    print(f"| {L}, {H}, {P}, {N}, {chunk} | " + " | ".join(f"{e:.1e}" for e in errs) + " |")
