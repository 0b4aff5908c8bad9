# Per-kernel CUDA times of mamba_ssm's Triton SSD (mamba_chunk_scan_combined, fp32, the cuda-ssd benchmark's shape), forward
# and backward, by torch.profiler after warm-up (Triton's autotuning stays out of the profiled region):
#   python3 scripts/ssd_anchor_profile.py ANCHORS_DIR
import os, sys, types, torch
from torch.profiler import profile, ProfilerActivity

src = os.path.join(os.path.abspath(sys.argv[1]), "src")
sys.path.insert(0, src)
pkg = types.ModuleType("mamba_ssm")   # the Triton kernels alone (see ssd_anchor.py)
pkg.__path__ = [os.path.join(src, "mamba_ssm")]
sys.modules["mamba_ssm"] = pkg
from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

b, l, h, p, g, n, chunk = 8, 2048, 24, 64, 1, 128, 256
gen = torch.Generator(device="cuda").manual_seed(0)
r = lambda *s: torch.randn(*s, device="cuda", generator=gen)
x, dt, B, C = r(b, l, h, p), r(b, l, h) - 2, r(b, l, g, n), r(b, l, g, n)
A, D, bias = -torch.rand(h, device="cuda", generator=gen) * 4 - 0.5, r(h), r(h) * 0.1
for t in (x, dt, A, B, C, D, bias): t.requires_grad_(True)
dy = r(b, l, h, p)
def step():
    y = mamba_chunk_scan_combined(x, dt, A, B, C, chunk, D=D, dt_bias=bias, dt_softplus=True)
    torch.autograd.backward(y, dy)
for _ in range(5): step()
torch.cuda.synchronize()
reps = 10
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(reps): step()
    torch.cuda.synchronize()
rows = [(e.key, e.device_time_total / reps / 1000, e.count // reps) for e in prof.key_averages() if e.device_time_total > 0]
rows.sort(key=lambda t: -t[1])
print(f"mamba_ssm SSD fwd+bwd, fp32, {torch.cuda.get_device_name()}: {sum(t for _, t, _ in rows):.3f} ms of kernel time a step (mean of {reps})")
for name, ms, calls in rows[:30]:
    print(f"  {ms:8.3f} ms {calls:4d}x  {name[:90]}")
