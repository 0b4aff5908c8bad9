# Times mamba_ssm's Triton SSD (mamba_chunk_scan_combined, from the anchors' sources: ../shared/anchors or a copy carried
# as .anchors/) on the GPU, forward and backward, fp32, CUDA-event medians; one JSON line per shape for Mamba4.Bench cuda-ssd
# (MAMBA4_SSD_ANCHOR). Run by scripts/gpu-test.sh before that benchmark:  python3 scripts/ssd_anchor.py ANCHORS_DIR
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
    with torch.no_grad():
        f = timed(fwd)
    bk = timed(bwd)
    print(json.dumps({"shape": [b, l, h, p, g, n, chunk], "dtype": "float32", "fwd_ms": round(f, 4), "bwd_ms": round(bk, 4),
                      "gpu": torch.cuda.get_device_name(), "triton": __import__("triton").__version__}), flush=True)
