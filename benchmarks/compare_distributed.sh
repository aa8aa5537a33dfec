#!/usr/bin/env bash
# 1 process vs torchrun 2 processes: `deepnmf train ... --distributed`, same data and seeds; prints the final losses.
# Usage: benchmarks/compare_distributed.sh [OUT_DIR]   (data: $DEEPNMF_DATA, default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
T="${DEEPNMF_DATA:-../shared/data}/speech/timit-sample"
D="$T/dr1-fvmh0 $T/dr1-mcpm0 $T/dr2-faem0 $T/dr2-marc0"
OUT="${1:-/tmp/compare_distributed}"
for m in nmf vae-nmf; do for s in 0 1 2; do
  OMP_NUM_THREADS=1 .venv/bin/deepnmf train $D --model $m --rank 20 --max-epochs 20 --seed $s -o "$OUT/one_${m}_$s" --no-figures -q
  OMP_NUM_THREADS=1 .venv/bin/torchrun --standalone --nproc_per_node=2 -m deepnmf train $D --model $m --rank 20 \
      --max-epochs 20 --seed $s --distributed -o "$OUT/two_${m}_$s" --no-figures -q
done; done
OUT="$OUT" .venv/bin/python - <<'PY'
import json, os
out = os.environ["OUT"]
for m in ["nmf", "vae-nmf"]:
    for s in range(3):
        a, b = (json.load(open(f"{out}/{w}_{m}_{s}/train.json")) for w in ("one", "two"))
        for k in (["objective"] if m == "nmf" else ["train_loss", "val_loss"]):
            print(m, s, k, round(a["final"][k], 4), round(b["final"][k], 4), f"{100 * (b['final'][k] / a['final'][k] - 1):+.2f}%")
PY
