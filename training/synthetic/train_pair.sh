#!/usr/bin/env bash
# Train the CPU-scale reference pair with the SFT recipe, then pack both final models into $1/models.tar.gz.
#   bash training/synthetic/train_pair.sh OUTDIR [key=value ...]    (extra overrides go to both runs)
# Needs runs/synthetic-data (python training/synthetic/build_data.py --out runs/synthetic-data).
set -uo pipefail
out=${1:?usage: train_pair.sh OUTDIR [key=value ...]}; shift
mkdir -p "$out"
for fmt in inftythink vanilla; do
  timeout "${PAIR_TIMEOUT:-100000}" python3 training/recipes/sft.py --config "training/configs/tiny-synthetic_${fmt}.yaml" \
      "output_dir=runs/tiny-synthetic-${fmt}" "$@" > "$out/train_${fmt}.log" 2>&1
  echo "$fmt: exit $?"; grep -a "train_runtime\|^done" "$out/train_${fmt}.log" | tail -2
done
tar czf "$out/models.tar.gz" runs/tiny-synthetic-*/final runs/tiny-synthetic-*/train_summary.json 2>/dev/null
ls -la "$out"
