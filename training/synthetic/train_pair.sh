#!/usr/bin/env bash
# Train the CPU-scale reference pair with the SFT recipe: both models at once, one thread each
# (on a 2-core CPU this beats two threads per model run one after the other), then copy each final
# model into OUTDIR/<name>/ and print the wall time.
#   bash training/synthetic/train_pair.sh OUTDIR [key=value ...]    (extra overrides go to both runs)
# Needs runs/synthetic-data (python training/synthetic/build_data.py --out runs/synthetic-data).
# On a GPU machine drop OMP_NUM_THREADS: the recipe uses the GPU when it sees one.
set -uo pipefail
out=${1:?usage: train_pair.sh OUTDIR [key=value ...]}; shift
mkdir -p "$out"
started=$(date +%s)
for fmt in inftythink vanilla; do
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} python3 training/recipes/sft.py \
      --config "training/configs/tiny-synthetic_${fmt}.yaml" "output_dir=runs/tiny-synthetic-${fmt}" "$@" \
      > "$out/train_${fmt}.log" 2>&1 &
done
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
echo "pair wall time: $(( $(date +%s) - started )) s (exit status $status)"
for fmt in inftythink vanilla; do
  grep -a "^done" "$out/train_${fmt}.log" | tail -1
  rm -rf "$out/tiny-synthetic-${fmt}"
  cp -r "runs/tiny-synthetic-${fmt}/final" "$out/tiny-synthetic-${fmt}" \
    && cp "runs/tiny-synthetic-${fmt}/train_summary.json" "$out/tiny-synthetic-${fmt}/"
done
exit $status
