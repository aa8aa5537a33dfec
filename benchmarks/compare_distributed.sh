#!/usr/bin/env bash
# 1 process vs torchrun 2 processes: `deepnmf train ... --distributed`, same data and seeds; prints the final losses.
# A third run, 1 process with 2 threads (the same computation, other floating-point summation orders), shows how
# far rounding alone moves the result. Usage: benchmarks/compare_distributed.sh [OUT_DIR]
# Environment: DEEPNMF_DATA (default ../shared/data), MODELS (default "nmf vae-nmf"), SEEDS (default "0 1 2"),
# ARGS (extra options for every run, e.g. ARGS="--likelihood poisson").
set -euo pipefail
cd "$(dirname "$0")/.."
T="${DEEPNMF_DATA:-../shared/data}/speech/timit-sample"
D="$T/dr1-fvmh0 $T/dr1-mcpm0 $T/dr2-faem0 $T/dr2-marc0"
OUT="${1:-/tmp/compare_distributed}"
MODELS="${MODELS:-nmf vae-nmf}"
SEEDS="${SEEDS:-0 1 2}"
ARGS="${ARGS:-}"
for m in $MODELS; do for s in $SEEDS; do
  common="--model $m --rank 20 --max-epochs 20 --seed $s --no-figures -q $ARGS"
  OMP_NUM_THREADS=1 .venv/bin/deepnmf train $D $common -o "$OUT/one_${m}_$s"
  OMP_NUM_THREADS=2 .venv/bin/deepnmf train $D $common -o "$OUT/threads2_${m}_$s"
  OMP_NUM_THREADS=1 .venv/bin/torchrun --standalone --nproc_per_node=2 -m deepnmf train $D $common --distributed \
      -o "$OUT/two_${m}_$s"
done; done
OUT="$OUT" MODELS="$MODELS" SEEDS="$SEEDS" .venv/bin/python - <<'PY'
import json, os
out = os.environ["OUT"]
keys = {"nmf": ["objective"], "vae-nmf": ["train_loss", "val_loss"], "implicit": ["loss"]}
print("model seed term | 1 process | 2 processes (rel. diff) | 1 process, 2 threads (rel. diff)")
for m in os.environ["MODELS"].split():
    for s in os.environ["SEEDS"].split():
        one, two, thr = (json.load(open(f"{out}/{w}_{m}_{s}/train.json"))["final"] for w in ("one", "two", "threads2"))
        for k in keys[m]:
            rel = lambda x: f"{100 * (x[k] / one[k] - 1):+.2f}%"
            print(m, s, k, "|", round(one[k], 4), "|", round(two[k], 4), f"({rel(two)})", "|", round(thr[k], 4),
                  f"({rel(thr)})")
PY
