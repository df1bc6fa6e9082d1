#!/bin/bash
# Issue 14, stop 12: the trained rows still missing, one heavy job at a time on the 2 cores.
# MLQA-R -> XQuAD-R: X-Y and X-X-mono (CPU preset, seed 42), each evaluated on all XQuAD-R questions right after
# training. XQuAD-R -> MLQA-R: k of lir/global chosen on XQuAD-R (the training collection of that direction), base and
# the three XQuAD-R-trained models on every 3rd parallel id of MLQA-R (all candidates stay).
# Usage: bash benchmarks/results/debias/run_remaining.sh > benchmarks/results/debias/models/remaining.log 2>&1
export PYTERRIER_HYBRID_LAREQA_DIR=/work/shared/datasets/lareqa IR_DATASETS_HOME=/work/main/.cache/ir_datasets \
       PYTERRIER_HYBRID_CACHE=/work/main/.cache/pyterrier_hybrid HF_HUB_OFFLINE=1
cd /work/main
M=benchmarks/results/debias/models
train() {  # train COLLECTION LABEL ALPHA
  out=$M/$1-$2
  if [ -f "$out/TRAINED" ]; then echo "skip $out (finished)"; return 0; fi
  echo "=== $(date -u) start $out"; start=$(date +%s)
  .venv/bin/pyterrier-hybrid train --base-model default --train lareqa/$1 --candidate-text sentence \
    --alpha $3 --batch-size 32 --lr 3e-05 --weight-decay 0.01 --warmup 0.1 --max-steps 100 --seed 42 \
    --loss mnrl --scale 20.0 --eval-fraction 0 --max-seq-length 128 --bf16 --freeze-word-embeddings \
    --save-steps 1000 --save-total-limit 2 --logging-steps 10 --eval-steps 500 -o $out
  rc=$?; echo "=== $(date -u) end $out rc=$rc wall=$(( $(date +%s) - start ))s"
  if [ $rc -eq 0 ]; then echo "$(( $(date +%s) - start ))" > "$out/TRAINED"; rm -rf "$out/checkpoints"; fi
}
evaluate() {  # evaluate TRAIN EVAL LABEL MODEL LIRK GLOBALK [extra debias.py args]
  tr=$1 ev=$2 label=$3 model=$4 lk=$5 gk=$6; shift 6
  echo "=== $(date -u) eval $label ($tr -> $ev)"
  .venv/bin/python benchmarks/debias.py run --train $tr --eval $ev --system "$label=$model" --lir-k $lk \
      --global-k $gk --methods none mean+coll mean@$tr+coll lir:$lk+coll mean@$ev+coll global:$gk "$@"
  .venv/bin/python benchmarks/debias.py report
}
set -x
for pair in "X-Y 0" "X-X-mono 1"; do
  set -- $pair
  train mlqa-r $1 $2 && evaluate mlqa-r xquad-r $1 $M/mlqa-r-$1 1 10
done
.venv/bin/python benchmarks/debias.py choose-k --collection xquad-r
K=$(.venv/bin/python -c "import json;d=json.load(open('benchmarks/results/debias/k_choice/xquad-r/chosen_k.json'));print(d['lir'], d['global'])")
set -- $K; LK=$1 GK=$2
evaluate xquad-r mlqa-r base default $LK $GK --question-step 3
for pair in "hybrid 0.5" "X-Y 0" "X-X-mono 1"; do
  set -- $pair
  train xquad-r $1 $2 && evaluate xquad-r mlqa-r $1 $M/xquad-r-$1 $LK $GK --question-step 3
done
echo "=== $(date -u) all done"
