#!/usr/bin/env python3
# Off-line check of the index math of ssd_scan.cu's tensor-core products (no GPU): mix_product's fragment reads for every staging
# layout (A as [k][rows] or [rows][k], B as [k][cols] or [cols][k], with the kernel's strides), the mma.m16n8k8 tf32
# fragment layout as the PTX ISA gives it (A 16x8: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); B 8x8: b0 (t, g),
# b1 (t+4, g); D 16x8: (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1); lane = 4g + t), the per-lane row scales, and mix_rows'
# two-pass trip through shared memory back to the epilogues' rows (thread = 16 ty + tx: rows 4 ty + i, columns
# 4 tx + 64 q + jj). Each warp's tile product is done exactly (float64), so this checks where values go, not rounding.
# Also counts shared-memory bank conflicts of the fragment reads (32 banks of 4 bytes).
#   python3 scripts/cuda-emulation/ssd_mma_layout_check.py        (numpy)
import numpy as np

def check(CN, a_rows, b_cols):
    cols = 16 * CN
    rng = np.random.default_rng(CN * 4 + 2 * a_rows + b_cols)
    A, B = rng.standard_normal((64, 32)), rng.standard_normal((32, cols))   # A(row, k), B(k, col)
    scale = rng.standard_normal(64)                                          # row factors (mix_off's off_t)
    lda = 36 if a_rows else 72                                               # MIX_LDK / MIX_LD
    ldb = 36 if b_cols else cols + 8
    As, Bs = np.full(64 * 72, np.nan), np.full(cols * 40, np.nan)
    for r in range(64):
        for k in range(32): As[r * lda + k if a_rows else k * lda + r] = A[r, k]
    for k in range(32):
        for c in range(cols): Bs[c * ldb + k if b_cols else k * ldb + c] = B[k, c]
    acc, worst_conflict = np.zeros((256, 4, CN)), 1
    for warp in range(8):
        for k in range(0, 32, 8):
            Am, banks, bbanks = np.zeros((16, 8)), {}, {}
            Bm = [np.zeros((8, 8)) for _ in range(CN)]
            for lane in range(32):
                g, t = lane >> 2, lane & 3
                row, col = 16 * (warp & 3) + g, (warp >> 2) * 8 * CN + g
                a_at = lambda r, kk: scale[row + r] * (As[(row + r) * lda + kk + t] if a_rows else As[(kk + t) * lda + row + r])
                a_addr = (row * lda + k + t) if a_rows else ((k + t) * lda + row)
                banks.setdefault(a_addr % 32, set()).add(a_addr)
                Am[g, t], Am[g + 8, t], Am[g, t + 4], Am[g + 8, t + 4] = a_at(0, k), a_at(8, k), a_at(0, k + 4), a_at(8, k + 4)
                for n in range(CN):
                    b_at = lambda kk: Bs[(col + 8 * n) * ldb + kk + t] if b_cols else Bs[(kk + t) * ldb + col + 8 * n]
                    Bm[n][t, g], Bm[n][t + 4, g] = b_at(k), b_at(k + 4)
                b_addr = (col * ldb + k + t) if b_cols else ((k + t) * ldb + col)
                bbanks.setdefault(b_addr % 32, set()).add(b_addr)
            worst_conflict = max(worst_conflict, max(len(v) for v in banks.values()), max(len(v) for v in bbanks.values()))
            for n in range(CN):
                D = Am @ Bm[n]
                for lane in range(32):
                    g, t = lane >> 2, lane & 3
                    acc[warp * 32 + lane, :, n] += [D[g, 2 * t], D[g, 2 * t + 1], D[g + 8, 2 * t], D[g + 8, 2 * t + 1]]
    ld, sm, rows = cols + 4, np.full(32 * (cols + 4), np.nan), np.zeros((256, 4, CN))
    for half in range(2):
        for th in range(256):
            lane, warp = th & 31, th >> 5
            g, t = lane >> 2, lane & 3
            if ((warp & 3) >> 1) == half:
                for n in range(CN):
                    for r in range(4):
                        sm[(16 * (warp & 1) + g + 8 * (r >> 1)) * ld + (warp >> 2) * 8 * CN + 8 * n + 2 * t + (r & 1)] = acc[th, r, n]
        for th in range(256):
            tx, ty = th & 15, th >> 4
            if (ty >> 3) == half:
                for i in range(4):
                    for j in range(CN): rows[th, i, j] = sm[(4 * (ty & 7) + i) * ld + 4 * tx + 64 * (j // 4) + j % 4]
    ref = (scale[:, None] * A) @ B
    err = max(abs(rows[th, i, j] - ref[4 * (th >> 4) + i, 4 * (th & 15) + 64 * (j // 4) + j % 4])
              for th in range(256) for i in range(4) for j in range(CN))
    print(f"CN {CN}, A {'[rows][k]' if a_rows else '[k][rows]'}, B {'[cols][k]' if b_cols else '[k][cols]'}: "
          f"max error {err:.1e}, fragment reads at most {worst_conflict}-way per bank")
    return err < 1e-12 and worst_conflict == 1

ok = all(check(CN, a, b) for CN in (4, 8) for a in (False, True) for b in (False, True))
print("layout check", "passed" if ok else "FAILED")
raise SystemExit(0 if ok else 1)
