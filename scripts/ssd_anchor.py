# Times mamba_ssm's Triton SSD (mamba_chunk_scan_combined, from the anchors' sources: ../shared/anchors or a copy carried
# as .anchors/) on the GPU, forward and backward, fp32, CUDA-event medians; one JSON line per shape for Mamba4.Bench cuda-ssd
# (MAMBA4_SSD_ANCHOR). Run by scripts/gpu-test.sh before that benchmark:  python3 scripts/ssd_anchor.py ANCHORS_DIR
# Its event-timed medians swing by up to half between calls (docs/cuda-kernel-notes.md): five rounds of 20, the median round
# reported with the fastest and slowest. Then its accuracy: y and every gradient at one smaller shape against a float64
# recurrence (the measure CudaSsdScanTests uses: max |err| / max |ref|), its TF32 products beside ours.
import json, os, sys, types, torch

src = os.path.join(os.path.abspath(sys.argv[1]), "src")
sys.path.insert(0, src)
# the Triton kernels alone: a bare package object, so that mamba_ssm/__init__.py (which imports the CUDA extensions) stays out
pkg = types.ModuleType("mamba_ssm")
pkg.__path__ = [os.path.join(src, "mamba_ssm")]
sys.modules["mamba_ssm"] = pkg
from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

def timed(fn, warm=3, iters=20):
    for _ in range(warm): fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize(); times.append(a.elapsed_time(b))
    times.sort(); return times[len(times) // 2]

for (b, l, h, p, g, n, chunk) in [(8, 2048, 24, 64, 1, 128, 256)]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    r = lambda *s: torch.randn(*s, device="cuda", generator=gen)
    x, dt, B, C = r(b, l, h, p), r(b, l, h) - 2, r(b, l, g, n), r(b, l, g, n)
    A, D, bias = -torch.rand(h, device="cuda", generator=gen) * 4 - 0.5, r(h), r(h) * 0.1
    for t in (x, dt, A, B, C, D, bias): t.requires_grad_(True)
    fwd = lambda: mamba_chunk_scan_combined(x, dt, A, B, C, chunk, D=D, dt_bias=bias, dt_softplus=True)
    y = fwd()
    dy = r(*y.shape)
    bwd = lambda: torch.autograd.backward(y, dy, retain_graph=True)
    rounds = []
    for _ in range(5):
        with torch.no_grad():
            f = timed(fwd)
        rounds.append((f, timed(bwd)))
    fs, bs = sorted(r[0] for r in rounds), sorted(r[1] for r in rounds)
    print(json.dumps({"shape": [b, l, h, p, g, n, chunk], "dtype": "float32", "fwd_ms": round(fs[2], 4), "bwd_ms": round(bs[2], 4),
                      "fwd_range": [round(fs[0], 4), round(fs[-1], 4)], "bwd_range": [round(bs[0], 4), round(bs[-1], 4)],
                      "gpu": torch.cuda.get_device_name(), "triton": __import__("triton").__version__}), flush=True)

def reference(x, dt, A, B, C, D, bias):
    """y of the SSD recurrence step by step (float64): S_t = exp(dt_t·A) S_{t−1} + dt_t·x_t ⊗ B_t, y_t = S_t C_t + D·x_t."""
    b, l, h, p = x.shape; g = B.shape[2]
    d = torch.nn.functional.softplus(dt + bias)                           # [b, l, h]
    Bh, Ch = B.repeat_interleave(h // g, dim=2), C.repeat_interleave(h // g, dim=2)   # [b, l, h, n]
    s = torch.zeros(b, h, p, B.shape[3], dtype=x.dtype, device=x.device); ys = []
    for t in range(l):
        s = torch.exp(d[:, t] * A)[:, :, None, None] * s + (d[:, t, :, None] * x[:, t])[..., None] * Bh[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", s, Ch[:, t]) + D[:, None] * x[:, t])
    return torch.stack(ys, 1)

(b, l, h, p, g, n, chunk) = (1, 512, 2, 64, 1, 128, 256)   # as ssd-check.sh's shape of the benchmark's P, N and chunk
gen = torch.Generator(device="cuda").manual_seed(1)
r = lambda *s: torch.randn(*s, device="cuda", generator=gen, dtype=torch.float64)
inputs = [r(b, l, h, p), r(b, l, h) - 2, -torch.rand(h, device="cuda", generator=gen, dtype=torch.float64) * 4 - 0.5,
          r(b, l, g, n), r(b, l, g, n), r(h), r(h) * 0.1]
dy = r(b, l, h, p)
def grads(fn, dtype):
    leaves = [t.detach().to(dtype).requires_grad_(True) for t in inputs]
    y = fn(*leaves); y.backward(dy.to(dtype))
    return [y.detach().double()] + [t.grad.double() for t in leaves]
theirs = grads(lambda x, dt, A, B, C, D, bias: mamba_chunk_scan_combined(x, dt, A, B, C, chunk, D=D, dt_bias=bias, dt_softplus=True), torch.float32)
ref = grads(reference, torch.float64)
rel = lambda a, e: (a - e).abs().max().item() / max(e.abs().max().item(), 1e-3)
print(json.dumps({"accuracy_shape": [b, l, h, p, g, n, chunk], "vs": "float64 recurrence", **{k: float(f"{rel(a, e):.2e}") for k, a, e in
      zip(["y", "dx", "ddt", "dA", "dB", "dC", "dD", "dDtBias"], theirs, ref)}}), flush=True)
