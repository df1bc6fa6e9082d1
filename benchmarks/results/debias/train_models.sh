#!/bin/bash
# Usage: bash benchmarks/results/debias/train_models.sh > benchmarks/results/debias/models/train.log 2>&1
# Trains the six CPU-preset models one after another (recipe: benchmarks/results/paper_comparison/cpu/run.json)
export PYTERRIER_HYBRID_LAREQA_DIR=/work/shared/datasets/lareqa IR_DATASETS_HOME=/work/main/.cache/ir_datasets \
       PYTERRIER_HYBRID_CACHE=/work/main/.cache/pyterrier_hybrid HF_HUB_OFFLINE=1
cd /work/main
for train in mlqa-r xquad-r; do
  for pair in "hybrid 0.5" "X-Y 0" "X-X-mono 1"; do
    set -- $pair
    out=benchmarks/results/debias/models/$train-$1
    if [ -f "$out/TRAINED" ]; then echo "skip $out (finished)"; continue; fi
    echo "=== $(date -u) start $out"
    start=$(date +%s)
    .venv/bin/pyterrier-hybrid train --base-model default --train lareqa/$train --candidate-text sentence \
      --alpha $2 --batch-size 32 --lr 3e-05 --weight-decay 0.01 --warmup 0.1 --max-steps 100 --seed 42 \
      --loss mnrl --scale 20.0 --eval-fraction 0 --max-seq-length 128 --bf16 --freeze-word-embeddings \
      --save-steps 1000 --save-total-limit 2 --logging-steps 10 --eval-steps 500 -o $out
    rc=$?
    echo "=== $(date -u) end $out rc=$rc wall=$(( $(date +%s) - start ))s"
    if [ $rc -eq 0 ]; then echo "$(( $(date +%s) - start ))" > "$out/TRAINED"; rm -rf "$out/checkpoints"; fi
  done
done
