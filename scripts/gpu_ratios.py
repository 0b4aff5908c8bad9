# Issue 19's tables from one results file that holds our benchmark logs and mamba_ssm's JSON lines timed on the same
# machine (scripts/gpu-all.sh writes both; bench/results/gpu-all-*.txt keeps them): pairs each of our rows with
# mamba_ssm's and prints markdown tables with the ratios, one per target. Nothing is typed in: every number is read
# from the file.   python3 scripts/gpu_ratios.py bench/results/gpu-all-h100-2026-12-07.txt
import json, re, sys

text = open(sys.argv[1], encoding="utf-8").read()
anchor = [json.loads(l) for l in text.splitlines() if l.startswith("{")]

def theirs(**kv):
    for o in anchor:
        if all(o.get(k) == v for k, v in kv.items()):
            return o
    return None

def ratio(ours, base, higher_is_better=True):
    if base is None or ours is None:
        return "—"
    return f"{(ours / base if higher_is_better else base / ours):.2f}×"

print("Target 1, training step (forward, backward, clipping, AdamW), 130M shape, tokens/s and peak GB")
print("| batch × L | ours F32 | mamba_ssm fp32 | ratio | ours BF16 | mamba_ssm bf16 autocast | ratio | our peak F32, kept / recomputed | our peak BF16, kept / recomputed | mamba_ssm peak fp32 / bf16 |")
print("|---|---|---|---|---|---|---|---|---|---|")
train = {}
for m in re.finditer(r"training, 130M shape, GEMMs (\w+)( \(rounded in cuBLAS\))?, (\d+) × 2048(, recompute)? .*?: (\d+) tokens/s .*?peak ([\d.]+) GB", text):
    train[(m.group(1) + ("-cublas" if m.group(2) else ""), int(m.group(3)), bool(m.group(4)))] = (int(m.group(5)), float(m.group(6)))
for b in (1, 4, 8):
    f32 = train.get(("F32", b, False)); bf = train.get(("Bf16", b, False)); rec = train.get(("F32", b, True)); bfrec = train.get(("Bf16", b, True))
    tf = theirs(train=f"{b}x2048", precision="fp32"); tb = theirs(train=f"{b}x2048", precision="bf16-autocast")
    if not f32:
        continue
    print(f"| {b} × 2048 | {f32[0]:,} | {tf['tokens_per_s']:,} | {ratio(f32[0], tf['tokens_per_s'])} | {bf[0]:,} | {tb['tokens_per_s']:,} | "
          f"{ratio(bf[0], tb['tokens_per_s'])} | {f32[1]:.2f} / {rec[1]:.2f} | {bf[1]:.2f} / {bfrec[1] if bfrec else float('nan'):.2f} | "
          f"{tf['peak_gb']:.2f} / {tb['peak_gb']:.2f} |")

print()
print("Target 2, fused selective scan, ms (ratio = mamba_ssm's time / ours)")
print("| b, d_inner, L, d_state | dtype | fwd ours | mamba_ssm | ratio | bwd ours | mamba_ssm | ratio |")
print("|---|---|---|---|---|---|---|---|")
# our rows with or without mamba_ssm's columns filled in by the benchmark (anchor present in its run, or not)
for m in re.finditer(r"^\| (\d+), (\d+), (\d+), (\d+) \| (fp32|bf16) \| ([\d.]+) \| [^|]* \| [^|]* \| \d+% \| ([\d.]+) \|", text, re.M):
    shape = [int(m.group(i)) for i in range(1, 5)]
    t = theirs(shape=shape, dtype={"fp32": "float32", "bf16": "bfloat16"}[m.group(5)])
    fwd, bwd = float(m.group(6)), float(m.group(7))
    print(f"| {', '.join(map(str, shape))} | {m.group(5)} | {fwd:.3f} | {t['fwd_ms']:.3f} | {ratio(fwd, t['fwd_ms'], False)} | "
          f"{bwd:.3f} | {t['bwd_ms']:.3f} | {ratio(bwd, t['bwd_ms'], False)} |")

print()
print("Target 3, decoding with a CUDA graph, 130M shape, greedy, tokens/s end to end (ours: the fused step)")
print("| weights | batch | ours | % of weight-read limit | mamba_ssm generate(cg=True) | ratio |")
print("|---|---|---|---|---|---|")
for m in re.finditer(r"^\| (f32|bf16) \| (\d+) \| fused[^|]*?(4 kernels a layer|cuBLAS products\) \+ PDL) ?[^|]*\| yes \| [\d.]+ \| \d+ \| (\d+)% \| (\d+) \|", text, re.M):
    if "before" in m.group(0):   # the comparison row of an older path, not the default
        continue
    w, b, pct, ours = m.group(1), int(m.group(2)), int(m.group(4)), int(m.group(5))
    shape = "batch 1, 16 prompt + 256 new, greedy" if b == 1 else "batch 64, 16 prompt + 128 new, greedy"
    t = theirs(generate=shape, dtype={"f32": "float32", "bf16": "bfloat16"}[w], cuda_graph=True)
    print(f"| {w.upper()} | {b} | {ours:,} | {pct} % | {t['tokens_per_s']:,.0f} | {ratio(ours, t['tokens_per_s'])} |")

print()
print("Target 4, prefill (forward without gradients, logits of the last position), tokens/s")
print("| tokens | ours F32 | mamba_ssm fp32 | ratio | ours BF16 GEMMs | mamba_ssm bf16 autocast | ratio |")
print("|---|---|---|---|---|---|---|")
pre = {(m.group(1), int(m.group(2))): int(m.group(3)) for m in re.finditer(r"prefill, 130M shape, GEMMs (\w+), 1 × (\d+) .*?: (\d+) tokens/s", text)}
for l in (2048, 16384):
    tf = theirs(prefill=f"1x{l}", precision="fp32"); tb = theirs(prefill=f"1x{l}", precision="bf16-autocast")
    print(f"| 1 × {l:,} | {pre[('F32', l)]:,} | {tf['tokens_per_s']:,} | {ratio(pre[('F32', l)], tf['tokens_per_s'])} | "
          f"{pre[('Bf16', l)]:,} | {tb['tokens_per_s']:,} | {ratio(pre[('Bf16', l)], tb['tokens_per_s'])} |")
