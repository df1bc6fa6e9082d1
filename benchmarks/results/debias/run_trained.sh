#!/bin/bash
# The trained rows (issue 14): the CPU preset's MLQA-R models (only hybrid was trained and evaluated in stop 11) (trained by the loop in train_models.sh, mlqa-r
# part, one seed), each evaluated on all XQuAD-R questions with the same methods as base-allq (run_full.sh).
export PYTERRIER_HYBRID_LAREQA_DIR=/work/shared/datasets/lareqa IR_DATASETS_HOME=/work/main/.cache/ir_datasets \
       PYTERRIER_HYBRID_CACHE=/work/main/.cache/pyterrier_hybrid HF_HUB_OFFLINE=1
cd /work/main
set -x
for label in hybrid X-Y X-X-mono; do
  model=benchmarks/results/debias/models/mlqa-r-$label
  while [ ! -f "$model/TRAINED" ]; do sleep 20; done
  .venv/bin/python benchmarks/debias.py run --train mlqa-r --eval xquad-r --system "$label=$model" --lir-k 1 \
      --global-k 10 --methods none mean+coll mean@mlqa-r+coll lir:1+coll mean@xquad-r+coll global:10
  .venv/bin/python benchmarks/debias.py report
done
