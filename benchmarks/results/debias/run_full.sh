#!/bin/bash
# The main rows again on ALL 13,090 XQuAD-R questions (system "base-allq"), once the machine had calmed down.
export PYTERRIER_HYBRID_LAREQA_DIR=/work/shared/datasets/lareqa IR_DATASETS_HOME=/work/main/.cache/ir_datasets \
       PYTERRIER_HYBRID_CACHE=/work/main/.cache/pyterrier_hybrid HF_HUB_OFFLINE=1
cd /work/main
set -x
.venv/bin/python benchmarks/debias.py run --train mlqa-r --eval xquad-r --system base-allq=default --lir-k 1 \
    --global-k 10 --methods none mean+coll mean@mlqa-r+coll lir:1+coll mean@xquad-r+coll mean global:10
.venv/bin/python benchmarks/debias.py report
