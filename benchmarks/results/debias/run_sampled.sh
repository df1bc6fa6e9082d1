#!/bin/bash
# What was run after the full-question run proved too slow on the shared machine (load 13-15 on 2 cores): the
# XQuAD-R candidates encoded by run_all.sh are reused from disk, the questions are every 3rd parallel id.
export PYTERRIER_HYBRID_LAREQA_DIR=/work/shared/datasets/lareqa IR_DATASETS_HOME=/work/main/.cache/ir_datasets \
       PYTERRIER_HYBRID_CACHE=/work/main/.cache/pyterrier_hybrid HF_HUB_OFFLINE=1
cd /work/main
set -x
.venv/bin/python benchmarks/debias.py run --train mlqa-r --eval xquad-r --system base=default --question-step 3 \
    --stats-step 3 --lir-k 1 --global-k 10 --extra-method lir:4 --extra-method global:4
.venv/bin/python benchmarks/debias.py report
.venv/bin/python benchmarks/debias.py language-variance --collections xquad-r --k 12
.venv/bin/python benchmarks/debias.py choose-k --collection mlqa-r --step 5 --k 1 4 10
.venv/bin/python benchmarks/debias.py report
