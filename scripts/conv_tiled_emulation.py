# Off-line emulation of the tiled causal-conv kernels (Kernels/causal_conv1d.cu: conv_forward_tiled, conv_backward_tiled,
# then conv_params_final), thread by thread in float64, against a direct float64 evaluation of the conv and its gradients.
# It checks the kernels' index logic (tiles, the register windows, the streaming dx, the flush at the sequence's end)
# where no GPU is at hand; the GPU test CausalConv1dForwardBackward checks the compiled kernels against the CPU backend.
#   python3 scripts/conv_tiled_emulation.py        (numpy only; prints the worst error per case, exits 1 on a mismatch)
import math, sys
import numpy as np

def sigmoid(v): return 1.0 / (1.0 + math.exp(-v))
def silu(v): return v * sigmoid(v)
def silu_grad(v): s = sigmoid(v); return s * (1.0 + v * (1.0 - s))

def tiles(B, L, D, sms):   # CudaBackend.ConvTiles: (run, grid.x, grid.y)
    rows, target = B * L, max(1, sms * 2048 // max(1, D))
    run = min(max((rows + target - 1) // target, 16), max(16, L))
    ntiles, channel_blocks = B * ((L + run - 1) // run), (D + 127) // 128
    along = min(max(sms * 16 // channel_blocks, 1), 1024)
    return run, min(ntiles, along), channel_blocks

def tile_of(tile, L, run):   # conv_tile
    runs = (L + run - 1) // run
    b = tile // runs
    t0 = (tile - b * runs) * run
    return b, t0, min(L, t0 + run)

def thread_tiles(bx, gx, B, L, run):   # for (tile = blockIdx.x; tile < tiles; tile += gridDim.x)
    return range(bx, B * ((L + run - 1) // run), gx)

def forward_tiled(x, w, bias, use_silu, run, gx):
    B, L, D = x.shape; K = w.shape[1]
    y = np.full_like(x, np.nan)
    for bx in range(gx):
      for tile in thread_tiles(bx, gx, B, L, run):
        b, t0, t1 = tile_of(tile, L, run)
        for c in range(D):
            wc = w[c]; bc = bias[c] if bias is not None else 0.0
            win = [0.0] * K
            for j in range(K - 1):
                s = t0 - K + 1 + j
                win[j] = x[b, s, c] if s >= 0 else 0.0
            for t in range(t0, t1):
                win[K - 1] = x[b, t, c]
                p = bc
                for j in range(K): p += win[j] * wc[j]
                y[b, t, c] = silu(p) if use_silu else p
                for j in range(K - 1): win[j] = win[j + 1]
    return y

def backward_tiled(x, w, bias, use_silu, dy, run, gx):
    B, L, D = x.shape; K = w.shape[1]
    dx = np.full_like(x, np.nan)
    partial = np.full((gx, K + 1, D), np.nan)
    sws = np.zeros((gx, D, K)); sbs = np.zeros((gx, D))
    for bx in range(gx):
      for tile in thread_tiles(bx, gx, B, L, run):
        b, t0, t1 = tile_of(tile, L, run)
        for c in range(D):
            wc = w[c]; bc = bias[c] if bias is not None else 0.0
            win = [0.0] * K; acc = [0.0] * K; sw = list(sws[bx, c]); sb = sbs[bx, c]
            for j in range(K - 1):
                s = t0 - K + 1 + j
                win[j] = x[b, s, c] if s >= 0 else 0.0
            t_end = min(L, t1 + K - 1)
            for t in range(t0, t_end):
                win[K - 1] = x[b, t, c]
                g = dy[b, t, c]
                if use_silu:
                    p = bc
                    for j in range(K): p += win[j] * wc[j]
                    dp = g * silu_grad(p)
                else:
                    dp = g
                for j in range(K): acc[j] += wc[j] * dp
                if t < t1:
                    for j in range(K): sw[j] += dp * win[j]
                    sb += dp
                s = t - K + 1
                if s >= t0:
                    assert math.isnan(dx[b, s, c]), "dx written twice"
                    dx[b, s, c] = acc[0]
                for j in range(K - 1):
                    acc[j] = acc[j + 1]; win[j] = win[j + 1]
                acc[K - 1] = 0.0
            for m in range(K - 1):
                s = t_end - K + 1 + m
                if t0 <= s < t1:
                    assert math.isnan(dx[b, s, c]), "dx written twice"
                    dx[b, s, c] = acc[m]
            sws[bx, c] = sw; sbs[bx, c] = sb
    for bx in range(gx):
        for c in range(D):
            for j in range(K): partial[bx, j, c] = sws[bx, c, j]
            partial[bx, K, c] = sbs[bx, c]
    dw = partial[:, :K, :].sum(axis=0).T       # conv_params_final: dw[c, j]
    db = partial[:, K, :].sum(axis=0)
    return dx, dw, db

def reference(x, w, bias, use_silu, dy):
    B, L, D = x.shape; K = w.shape[1]
    xp = np.concatenate([np.zeros((B, K - 1, D)), x], axis=1)
    pre = sum(xp[:, j:j + L, :] * w[:, j] for j in range(K)) + (bias if bias is not None else 0.0)
    sg = 1.0 / (1.0 + np.exp(-pre))
    y = pre * sg if use_silu else pre
    dp = dy * sg * (1.0 + pre * (1.0 - sg)) if use_silu else dy
    dpp = np.concatenate([dp, np.zeros((B, K - 1, D))], axis=1)
    dx = sum(dpp[:, K - 1 - j:K - 1 - j + L, :] * w[:, j] for j in range(K))
    dw = np.stack([(dp * xp[:, j:j + L, :]).sum(axis=(0, 1)) for j in range(K)], axis=1)
    return y, dx, dw, dp.sum(axis=(0, 1))

rng = np.random.default_rng(3)
worst = 0.0
# (B, L, D, K, silu, bias, run, grid.x): the host's choice for 132 and for 1 multiprocessor (None), or forced (runs shorter
# than K, few blocks walking many tiles)
cases = [(2, 1, 5, 4, True, True, None, None), (3, 50, 7, 2, False, True, None, None), (1, 333, 3, 3, True, False, None, None),
         (4, 17, 4, 4, False, False, None, None), (2, 40, 3, 8, True, True, None, None), (1, 5, 2, 8, True, True, None, None),
         (2, 37, 3, 1, True, True, None, None), (1, 64, 2, 4, True, True, None, None), (2, 33, 3, 4, True, True, 32, 3),
         (1, 7, 2, 5, False, True, 3, 1), (3, 29, 2, 6, True, True, 5, 4), (5, 3, 2, 7, True, False, 2, 2)]
for (B, L, D, K, use_silu, has_bias, run, gx) in cases:
  for sms in ((132, 1) if run is None else (0,)):
    if run is None: run_, gx_, _ = tiles(B, L, D, sms)
    else: run_, gx_ = run, gx
    x = rng.standard_normal((B, L, D)); w = rng.standard_normal((D, K)); dy = rng.standard_normal((B, L, D))
    bias = rng.standard_normal(D) if has_bias else None
    y_ref, dx_ref, dw_ref, db_ref = reference(x, w, bias, use_silu, dy)
    y = forward_tiled(x, w, bias, use_silu, run_, gx_)
    dx, dw, db = backward_tiled(x, w, bias, use_silu, dy, run_, gx_)
    errs = [np.max(np.abs(a - r)) for a, r in ((y, y_ref), (dx, dx_ref), (dw, dw_ref), (db, db_ref))]
    assert not any(np.isnan(a).any() for a in (y, dx, dw, db)), f"unwritten outputs in {(B, L, D, K)}"
    print(f"B {B} L {L} D {D} K {K} silu {use_silu} bias {has_bias} run {run_} grid.x {gx_}: max |error| y {errs[0]:.1e} dx {errs[1]:.1e} dw {errs[2]:.1e} db {errs[3]:.1e}")
    worst = max(worst, *errs)
# the host's rule: tiles near SMs·2048/D, runs ≥ 16 and ≤ max(16, L), partial rows = grid.x ≤ min(SMs·16 / channel blocks, 1024)
for (B, L, D) in [(8, 2048, 1536), (1, 1 << 20, 1536), (64, 200, 128), (100000, 1, 768), (1, 3, 5)]:
    run, gx, gy = tiles(B, L, D, 132)
    print(f"tiles for B {B} L {L} D {D}: run {run}, grid ({gx}, {gy}), {B * ((L + run - 1) // run)} tiles, partial {gx * 5 * D * 8 / 1e6:.1f} MB at K = 4")
print(f"worst error {worst:.1e}")
sys.exit(0 if worst < 1e-10 else 1)
