"""Choose how many weights the hybrid trainer trains on the training collection's held-out articles.

Candidates for the comparison of full fine-tuning with fewer trained weights: the CPU preset's hybrid training
(alpha 0.5, 100 steps of 32 pairs, AdamW lr 3e-5, bf16, frozen word embeddings) with every transformer layer trained,
with the lowest 3, 6 or 9 layers frozen, with LoRA adapters (their own, higher learning rate: at lr 3e-5 adapters
barely move), and with the time that freezing saves spent on more steps. Each trains on the training collection
minus its held-out articles (5%, drawn with the seed) and is scored by ``held_out_selection.py`` on those articles'
questions against the full candidate pools; the zero-shot evaluation collection is not touched.

The rule, fixed before the runs: the candidate with the highest mean of the three held-out mAPs (mono, cross,
multi) is the setting of the comparison, and pooled batches are then tried with it.

    python benchmarks/trainable_weights_selection.py --out benchmarks/results/trainable_weights/selection
    python benchmarks/trainable_weights_selection.py --out ... --only frozen6,frozen9     # some candidates

The table is ``selection.csv`` / ``selection.md`` with ``selection.png`` under ``--out``.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from pyterrier_hybrid.experiments.presets import PRESETS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from held_out_selection import Selection, main  # noqa: E402

#: The CPU preset's hybrid training with the trainer's held-out split (scored here, never used for validation).
COMMON = dataclasses.replace(PRESETS["cpu"].training, alpha=0.5, eval_fraction=0.05, eval_steps=1000,
                             output_dir="runs/trainable-weights")

#: Candidates: name -> changes to COMMON. A step with 9 frozen layers costs about half of a full one on the CPU preset
#: (100-110 s against 215-275 s a model, benchmarks/README.md (i)) and one with 6 about 0.7 of it, so "-200steps" and
#: "-140steps" train for about the time of full fine-tuning.
CANDIDATES: dict[str, dict] = {
    "every-layer": {},
    "frozen3": dict(freeze_layers=3),
    "frozen6": dict(freeze_layers=6),
    "frozen9": dict(freeze_layers=9),
    "frozen6-140steps": dict(freeze_layers=6, max_steps=140),
    "frozen9-200steps": dict(freeze_layers=9, max_steps=200),
    "lora8-lr3e-4": dict(lora_rank=8, learning_rate=3e-4),
    "lora32-lr3e-4": dict(lora_rank=32, learning_rate=3e-4),
    # Pooled multi-positive batches (4 whole MLQA-R groups of 7 languages in a batch of 32) with every layer trained
    # and with the chosen setting.
    "pooled-every-layer": dict(batching="pooled"),
}

SELECTION = Selection("Trained weights of the hybrid trainer", COMMON, CANDIDATES)

if __name__ == "__main__":
    raise SystemExit(main(SELECTION, __doc__))
