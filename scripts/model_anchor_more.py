# mamba_ssm's MambaLMHeadModel (130M shape, random weights) on the figures the anchors' model_anchor.py does not time:
# prefill (forward without gradients over 1 x 2,048 and 1 x 16,384 tokens, logits of the last position only) and training at
# 8 x 2,048 (fused AdamW, clipping; fp32 and bf16 autocast, with the peak memory). One JSON line per figure, read by
# Mamba4.Bench cuda-model beside its own rows (issue 19, targets 1 and 4). The CUDA extensions are built or loaded through
# the anchors' own model_anchor.py (its ANCHOR_BUILD_ONLY mode), so this script adds no build of its own.
#   python3 scripts/model_anchor_more.py ANCHORS_DIR >> model-anchor.jsonl
import json, os, runpy, sys, time, torch

anchors = os.path.abspath(sys.argv[1])
os.environ["ANCHOR_BUILD_ONLY"] = "1"
try:
    runpy.run_path(os.path.join(anchors, "model_anchor.py"), run_name="model_anchor_build")
except SystemExit:
    pass
from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
from mamba_ssm.models.config_mamba import MambaConfig

cfg = MambaConfig(d_model=768, n_layer=24, vocab_size=50280, ssm_cfg={"layer": "Mamba1"}, rms_norm=True,
                  residual_in_fp32=True, fused_add_norm=True, pad_vocab_size_multiple=8)
torch.manual_seed(0)
model = MambaLMHeadModel(cfg, device="cuda", dtype=torch.float32)

def median_s(fn, warm=2, iters=5):
    for _ in range(warm): fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t = time.time(); fn(); torch.cuda.synchronize(); times.append(time.time() - t)
    times.sort(); return times[len(times) // 2]

model.eval()
for amp in (False, True):
    for L in (2048, 16384):
        ids = torch.randint(0, 50280, (1, L), device="cuda")
        def prefill():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                model(ids, num_last_tokens=1)
        s = median_s(prefill)
        print(json.dumps({"prefill": f"1x{L}", "precision": "bf16-autocast" if amp else "fp32", "tokens_per_s": round(L / s),
                          "ms": round(s * 1e3, 2)}), flush=True)

model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
for amp in (False, True):
    b, L = 8, 2048
    ids = torch.randint(0, 50280, (b, L + 1), device="cuda")
    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            logits = model(ids[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
    torch.cuda.reset_peak_memory_stats()
    s = median_s(step, warm=3, iters=5)
    print(json.dumps({"train": f"{b}x{L}", "precision": "bf16-autocast" if amp else "fp32", "tokens_per_s": round(b * L / s),
                      "ms_per_step": round(s * 1e3, 2), "peak_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2)}), flush=True)
