#!/bin/bash
# The evaluation steps of benchmarks/debias.py in the order they were run (each resumable).
# Usage: bash benchmarks/results/debias/run_all.sh > benchmarks/results/debias/models/run_all.log 2>&1
export PYTERRIER_HYBRID_LAREQA_DIR=/work/shared/datasets/lareqa IR_DATASETS_HOME=/work/main/.cache/ir_datasets \
       PYTERRIER_HYBRID_CACHE=/work/main/.cache/pyterrier_hybrid HF_HUB_OFFLINE=1
cd /work/main
set -x
.venv/bin/python benchmarks/debias.py choose-k --collection mlqa-r --step 5
.venv/bin/python benchmarks/debias.py run --train mlqa-r --eval xquad-r --system base=default
.venv/bin/python benchmarks/debias.py report
.venv/bin/python benchmarks/debias.py choose-k --collection xquad-r --step 5
.venv/bin/python benchmarks/debias.py run --train xquad-r --eval mlqa-r --system base=default
.venv/bin/python benchmarks/debias.py language-variance
.venv/bin/python benchmarks/debias.py langid
.venv/bin/python benchmarks/debias.py report
