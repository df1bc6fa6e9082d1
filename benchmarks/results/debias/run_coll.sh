#!/bin/bash
# Second pass on the same sample (vectors from disk): the methods fitted once on XQuAD-R's whole candidate set
# (+coll) instead of per pool, and global:1 (the k grid of choose-k is 1, 4, 10).
export PYTERRIER_HYBRID_LAREQA_DIR=/work/shared/datasets/lareqa IR_DATASETS_HOME=/work/main/.cache/ir_datasets \
       PYTERRIER_HYBRID_CACHE=/work/main/.cache/pyterrier_hybrid HF_HUB_OFFLINE=1
cd /work/main
set -x
.venv/bin/python benchmarks/debias.py run --train mlqa-r --eval xquad-r --system base=default --question-step 3 \
    --stats-step 3 --lir-k 1 --global-k 10 --extra-method lir:4 --extra-method global:4 \
    --extra-method mean+coll --extra-method mean@mlqa-r+coll --extra-method lir:1+coll --extra-method global:1 \
    --extra-method lir:4+coll --extra-method mean@xquad-r+coll
