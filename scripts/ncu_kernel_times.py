# Sums Nsight Compute's per-kernel durations (ncu --csv --metrics gpu__time_duration.sum) by kernel name: the kernels of
# one profiled region, largest first, with calls, milliseconds and share, and the region's total (kernels run one at a
# time under ncu, so the total is the sum of kernel times, without the gaps between them).
#   python3 scripts/ncu_kernel_times.py REGION.csv [TOP]
import csv, io, sys

path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25
lines = open(path, errors="replace").read().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
if start is None:
    sys.exit(f"{path}: no ncu CSV header (\"ID\", ...) found")
totals = {}
for row in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
    if row.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = row["Kernel Name"].split("(")[0][:90]
    ns = float(row["Metric Value"].replace(",", ""))
    calls, total = totals.get(name, (0, 0.0))
    totals[name] = (calls + 1, total + ns)
whole = sum(t for _, t in totals.values())
print(f"{path}: {sum(c for c, _ in totals.values())} kernels, {whole / 1e6:.3f} ms of kernel time")
for name, (calls, ns) in sorted(totals.items(), key=lambda kv: -kv[1][1])[:top]:
    print(f"  {ns / 1e6:9.3f} ms {ns / whole:6.1%} {calls:5d}x  {name}")
