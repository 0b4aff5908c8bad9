# mamba_ssm's MambaLMHeadModel (130M shape, random weights) doing exactly one piece of work between
# cudaProfilerStart and cudaProfilerStop, for a profiler run with --profile-from-start off (scripts/gpu-measure.sh), beside
# Mamba4.Bench's region mode (MAMBA4_CUDA_BENCH=region-...): the same regions, so the two kernel lists compare.
#   python3 scripts/model_anchor_profile.py ANCHORS_DIR train-f32|train-bf16|prefill-f32|prefill-bf16|prefill16k-f32|prefill16k-bf16
# train: one step at 4 x 2048 (forward, cross-entropy, backward, clipping, fused AdamW; bf16 = autocast, as model_anchor.py);
# prefill: the forward over 1 x 2048 (prefill16k: 1 x 16384) without gradients, last logits only. The extensions come from the anchors' own
# model_anchor.py (ANCHOR_BUILD_ONLY: built once, then cached by torch).
import os, runpy, sys, torch

anchors, region = os.path.abspath(sys.argv[1]), sys.argv[2]
os.environ["ANCHOR_BUILD_ONLY"] = "1"
try:
    runpy.run_path(os.path.join(anchors, "model_anchor.py"), run_name="model_anchor_build")
except SystemExit:
    pass
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
from mamba_ssm.models.config_mamba import MambaConfig

kind, precision = region.split("-")
amp = precision == "bf16"
cfg = MambaConfig(d_model=768, n_layer=24, vocab_size=50280, ssm_cfg={"layer": "Mamba1"}, rms_norm=True,
                  residual_in_fp32=True, fused_add_norm=True, pad_vocab_size_multiple=8)
torch.manual_seed(0)
model = MambaLMHeadModel(cfg, device="cuda", dtype=torch.float32)
if kind == "train":
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, 50280, (4, 2049), device="cuda")
    def work():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            logits = model(ids[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
elif kind in ("prefill", "prefill16k"):
    model.eval()
    ids = torch.randint(0, 50280, (1, 2048 if kind == "prefill" else 16384), device="cuda")
    def work():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            model(ids, num_last_tokens=1)
else:
    sys.exit(f"region {region}: expected (train|prefill|prefill16k)-(f32|bf16)")
import time
warm = []
for _ in range(3):
    t0 = time.perf_counter(); work(); torch.cuda.synchronize(); warm.append((time.perf_counter() - t0) * 1000)
# wall time of the unprofiled steps, to set beside the profiled step's kernel-time sum (the gap: host, launches)
print("warm-up steps (wall, under the profiler but not profiled): " + ", ".join(f"{t:.1f}" for t in warm) + " ms", flush=True)
torch.cuda.profiler.start()
work()
torch.cuda.synchronize()
torch.cuda.profiler.stop()
print(f"profiled region {region}", flush=True)
