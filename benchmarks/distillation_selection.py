"""Choose the distillation settings on the training collection's held-out articles, never on the evaluation one.

The candidates below are trained and scored by ``held_out_selection.py`` (each on the training collection minus its
held-out articles, scored on the questions of those articles against the full candidate pools).

    python benchmarks/distillation_selection.py --out benchmarks/results/distillation/selection
    python benchmarks/distillation_selection.py --out ... --only mean,mean+base     # some candidates
    python benchmarks/distillation_selection.py --train lareqa/xquad-r --out ... # for the reverse direction

The table is ``selection.csv`` / ``selection.md`` with ``selection.png`` under ``--out``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from pyterrier_hybrid.training.recipes import DISTILL_CPU_BUDGET

sys.path.insert(0, str(Path(__file__).resolve().parent))
from held_out_selection import Selection, main  # noqa: E402

COMMON = DISTILL_CPU_BUDGET  # the budget every candidate shares

#: Candidates: name -> changes to COMMON. Contrastive candidates alternate a contrastive and a distillation batch,
#: so they get twice the steps (the same number of distillation batches).
CANDIDATES: dict[str, dict] = {
    "mean": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean"),
    "english": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="english"),
    "mean+base": dict(contrastive=False, distill_parallel_weight=1.0, distill_base_weight=0.5, distill_target="mean"),
    "hybrid+mean+base": dict(alpha=0.5, max_steps=120, distill_parallel_weight=1.0, distill_base_weight=0.5,
                             distill_target="mean"),
    # More movement away from the base within the same recipe: 4, 10 and 25 times the learning rate, or four times the
    # steps.
    "mean-lr8e-5": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean", learning_rate=8e-5),
    "mean-240steps": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean", max_steps=240),
    "mean-lr2e-4": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean", learning_rate=2e-4),
    "mean-lr5e-4": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean", learning_rate=5e-4),
    # Pooled multi-positive batches (whole groups of every language, 4 groups of MLQA-R's 7 languages: 8 groups do
    # not fit in memory without a cached loss) in turn with the group-mean distillation batches (28 rows as well).
    "pooled+mean-lr8e-5": dict(batching="pooled", batch_size=28, max_steps=120, distill_parallel_weight=1.0,
                               distill_target="mean", learning_rate=8e-5),
    # The same with 16 groups per pooled batch (112 rows, 15 other groups' sentences as negatives), which fits with
    # the cached multi-positive loss, at the chosen recipe's learning rate.
    "pooled112+mean-lr2e-4": dict(batching="pooled", batch_size=112, max_steps=120, distill_parallel_weight=1.0,
                                  distill_target="mean", learning_rate=2e-4),
    # Fewer trained weights: the lowest 3 or 6 transformer layers kept as the base has them (as well as the word
    # embeddings), so that what they know cannot be spent.
    "mean-lr2e-4-frozen3": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean",
                                learning_rate=2e-4, freeze_layers=3),
    "mean-lr2e-4-frozen6": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean",
                                learning_rate=2e-4, freeze_layers=6),
}
#: Candidates made without training (WiSE-FT): a trained candidate's weights interpolated with the untrained base's,
#: name -> (trained candidate, its weight). Listed after the candidate they come from.
INTERPOLATED: dict[str, tuple[str, float]] = {
    "mean-lr2e-4-x0.5": ("mean-lr2e-4", 0.5),
    "mean-lr2e-4-x0.75": ("mean-lr2e-4", 0.75),
}

SELECTION = Selection("Distillation settings", COMMON, CANDIDATES, INTERPOLATED)

if __name__ == "__main__":
    raise SystemExit(main(SELECTION, __doc__))
