#!/usr/bin/env python3
# Paired per-user comparison of two `rec eval --ranks` files (same data and split): HR@10 of each, the users only one of
# them hits (McNemar z), the mean paired NDCG@10 difference A − B with its standard error, and the hits by history length.
#   python3 scripts/rec-paired.py A.ranks.tsv B.ranks.tsv
import sys, math
def load(p):
    r = {}
    for line in open(p).read().splitlines()[1:]:
        u, h, t, c, rank = line.split('\t'); r[u] = (int(h), int(rank))
    return r
a, b = load(sys.argv[1]), load(sys.argv[2])
users = sorted(set(a) & set(b))
hit = lambda r: r <= 10
nd = lambda r: 1 / math.log2(r + 1) if r <= 10 else 0.0
only_a = sum(1 for u in users if hit(a[u][1]) and not hit(b[u][1]))
only_b = sum(1 for u in users if hit(b[u][1]) and not hit(a[u][1]))
z = (only_a - only_b) / math.sqrt(only_a + only_b)
d = [nd(a[u][1]) - nd(b[u][1]) for u in users]
m = sum(d) / len(d); se = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))
print(f"{len(users)} users; HR@10 A {sum(hit(a[u][1]) for u in users)/len(users):.4f} B {sum(hit(b[u][1]) for u in users)/len(users):.4f}; "
      f"only A hits {only_a}, only B hits {only_b}, McNemar z = {z:.1f}; paired NDCG@10 A-B = {m:+.4f} ± {se:.4f}")
for lo, hi in [(16, 30), (31, 50), (51, 100), (101, 200), (201, 10**9)]:
    g = [u for u in users if lo <= a[u][0] <= hi]
    if not g: continue
    oa = sum(1 for u in g if hit(a[u][1]) and not hit(b[u][1])); ob = sum(1 for u in g if hit(b[u][1]) and not hit(a[u][1]))
    print(f"  history {lo}-{hi if hi < 10**9 else '':<4} {len(g):5d} users: HR@10 A {sum(hit(a[u][1]) for u in g)/len(g):.4f} B {sum(hit(b[u][1]) for u in g)/len(g):.4f}; only A {oa}, only B {ob}")
