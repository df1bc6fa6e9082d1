"""Named training recipes: :class:`~pyterrier_hybrid.training.config.HybridTrainingConfig` values for a purpose.

:data:`PAPER_CPU_RECIPE` is the paper's recipe (arXiv 2408.10536) sized for two CPU cores: batches of 100
(question, answer sentence, same-paragraph negative) triplets, bfloat16 autocast, early stopping on the held-out
loss. It trains on MLQA-R for the zero-shot MLQA-R -> XQuAD-R comparison (X-X-mono alpha 1, X-Y alpha 0, hybrid
alpha 0.5; set ``alpha``, ``seed``, ``output_dir`` with :func:`dataclasses.replace`).

What is kept from the paper and what is cut for the CPU:

- kept: batch 100, one hard negative per pair (another sentence of the answer's paragraph: LAReQA's hard case),
  AdamW lr 3e-5, weight decay 0.01, 10% warmup, InfoNCE over in-batch and hard negatives (scale 20), early stopping
  on the held-out loss with the best checkpoint kept;
- cut: candidates are the answer sentence alone (with its paragraph they cost 5-6 times more and the untrained
  e5-small is worse with it: benchmarks/README.md (a)), at most 128 tokens, the word-embedding matrix frozen (82%
  of e5-small's weights; the rest is trained), bf16 autocast.

Time budget (one direction, 3 seeds x 3 systems in at most 150 minutes on 2 cores), :data:`PAPER_CPU_TIME_BUDGET`::

    MLQA-R with hard negatives: 14,127 training rows, 1,081 parallel ids (5% of the articles held out: 624 rows,
    47 ids, validation batches of 10) -> an epoch is floor(1081 / 100) = 10 steps of batch 100.
    Evaluation of one trained model on XQuAD-R (sentences, 11 languages): 206 s (the CPU comparison,
    benchmarks/results/paper_comparison/cpu); 9 models + base (200 s) + BM25 (34 s): 35 min.
    Left for training: 150 - 35 = 115 min for 9 runs = 767 s each; 60 s of it load the model and data.
    Step of this recipe: 14.1 s, measured with the faster step (fused AdamW, fast dropout, length buckets:
    benchmarks/training_speed.py --recipe-steps 4, benchmarks/README.md (e)) on the 2 cores when nothing else ran
    (the CPU preset's step measured in the same run: 2.0-3.2 s; the host's speed varied by 1.5x within minutes).
    An epoch: 10 x 14.1 s + a validation of 4 batches of 10 and a checkpoint (10 s) = 151 s. Per run 767 - 60 =
    707 s of training -> 4 epochs (604 s): 35 + 9 x (60 + 4 x 151) / 60 = 135 min for the direction (5 epochs
    would be 157). So: at most 4 epochs (40 steps, 4,000 triplets per system), validation and a checkpoint every
    epoch, patience 1 (stop at the first epoch that does not improve the held-out loss; the best epoch's weights
    are kept either way). Before the step was made faster (175-215 s per step on the loaded machine, about 26 s on
    quiet cores) the same budget allowed 2 epochs.

Measured in the three-seed run of 2026-11-30 (benchmarks/README.md (b), *paper-cpu preset*): a run of 4 epochs took
740-816 s on quiet cores (about 17.5 s per step with its share of validation and checkpoints, not the 14.1 s of the
4-step benchmark; the host's speed varies) and the evaluation of a trained model 205 s, so the direction is about
9 x 12.8 + 36 = 151 minutes: 4 epochs fit the budget with no margin (3 would leave 25 minutes). The held-out loss
still fell in the 4th epoch of every run (by 0.007-0.03), so early stopping never cut one.

Run it on a quiet machine: with other jobs on the two cores a step is several times slower. A run that is
interrupted resumes from its last checkpoint (``train(config, resume=True)`` /
``pyterrier-hybrid train --recipe paper-cpu ... --resume``), and the progress bar shows the elapsed and remaining time
(the remaining time assumes no early stop).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass

from .config import HybridTrainingConfig

__all__ = ["DISTILL_CPU_BUDGET", "DISTILL_CPU_RECIPE", "PAPER_CPU_RECIPE", "PAPER_CPU_TIME_BUDGET", "RECIPES",
           "TimeBudget", "apply_recipe"]


@dataclass(frozen=True)
class TimeBudget:
    """How a recipe's epochs were chosen to fit a wall-clock budget (minutes, on the machine measured)."""

    budget_min: float
    runs: int
    evaluation_min: float
    overhead_per_run_s: float
    step_s: float
    eval_pass_s: float
    steps_per_epoch: int

    @property
    def training_s_per_run(self) -> float:
        return (self.budget_min - self.evaluation_min) * 60 / self.runs - self.overhead_per_run_s

    @property
    def max_epochs(self) -> int:
        """Whole epochs (each: its steps and one validation pass) that fit in a run's share."""
        return int(self.training_s_per_run // (self.steps_per_epoch * self.step_s + self.eval_pass_s))

    def minutes(self, epochs: int) -> float:
        """Wall-clock minutes of the whole direction when every run trains ``epochs`` epochs (no early stop)."""
        per_run = self.overhead_per_run_s + epochs * (self.steps_per_epoch * self.step_s + self.eval_pass_s)
        return self.evaluation_min + self.runs * per_run / 60


#: Measured on the shared 2-core machine (see the module docstring and benchmarks/README.md (e)).
PAPER_CPU_TIME_BUDGET = TimeBudget(
    budget_min=150, runs=9, evaluation_min=35.0, overhead_per_run_s=60, step_s=14.1, eval_pass_s=10.0,
    steps_per_epoch=10,
)

PAPER_CPU_RECIPE = HybridTrainingConfig(
    train="lareqa/mlqa-r",
    alpha=0.5,
    batch_size=100,
    hard_negatives=True,
    learning_rate=3e-5,
    weight_decay=0.01,
    warmup=0.1,
    epochs=float(PAPER_CPU_TIME_BUDGET.max_epochs),
    candidate_text="sentence",
    max_seq_length=128,
    bf16=True,
    freeze_word_embeddings=True,
    # Batch 100 of triplets needs an estimated 38 GiB with plain MNRL (benchmarks/README.md (e)); the cached loss
    # gives the same gradients in mini-batches of 32 texts (about 8 GiB), lowered by the memory plan if needed.
    loss="cached-mnrl",
    mini_batch_size=32,
    eval_fraction=0.05,
    eval_steps=PAPER_CPU_TIME_BUDGET.steps_per_epoch,
    max_eval_batches=4,
    early_stopping_patience=1,
    save_steps=PAPER_CPU_TIME_BUDGET.steps_per_epoch,
    save_total_limit=2,
    logging_steps=5,
    seed=42,
    output_dir="runs/paper-cpu",
)

#: The budget of the distillation recipe and of the candidates it was chosen from
#: (``benchmarks/distillation_selection.py``): batches of 112 rows (a parallel distillation row is a question and its
#: answer sentence in one language, so 112 rows are about 16 whole MLQA-R groups), 60 distillation batches, AdamW lr
#: 2e-5, bf16 autocast, frozen word embeddings, answer sentences of at most 128 tokens.
DISTILL_CPU_BUDGET = HybridTrainingConfig(
    train="lareqa/mlqa-r", batch_size=112, max_steps=60, learning_rate=2e-5, warmup=0.1, max_seq_length=128,
    bf16=True, freeze_word_embeddings=True, candidate_text="sentence", loss="mnrl", eval_fraction=0.05,
    eval_steps=1000, save_steps=1000, logging_steps=5, seed=42, output_dir="runs/distill-cpu",
)

#: Parallel distillation towards each group's mean at ten times the budget's learning rate, chosen on MLQA-R's
#: held-out articles against the English target, a base term, alternating hybrid contrastive batches, pooled batches
#: and other learning rates and step counts (the candidates of benchmarks/distillation_selection.py).
DISTILL_CPU_RECIPE = dataclasses.replace(
    DISTILL_CPU_BUDGET, contrastive=False, distill_parallel_weight=1.0, distill_target="mean", learning_rate=2e-4,
)

#: Recipes by name.
RECIPES: dict[str, HybridTrainingConfig] = {"paper-cpu": PAPER_CPU_RECIPE, "distill-cpu": DISTILL_CPU_RECIPE}


def apply_recipe(name: str, requested: HybridTrainingConfig, given: Collection[str] = ()) -> HybridTrainingConfig:
    """Recipe ``name`` with the fields of ``requested`` that differ from the defaults, and the fields named in
    ``given`` (options written on the command line, even at their default value), laid over it (what
    ``pyterrier-hybrid train --recipe NAME --max-steps 3 ...`` means: the options given explicitly win)."""
    from dataclasses import replace

    if name not in RECIPES:
        from .config import TrainingConfigError

        raise TrainingConfigError(f"unknown recipe {name!r}; expected one of {', '.join(sorted(RECIPES))}")
    changed = {field: mine for field, (_, mine) in HybridTrainingConfig().differences(requested).items()}
    changed.update({f.name: getattr(requested, f.name) for f in dataclasses.fields(requested) if f.name in given})
    if changed.get("train_langs") is not None:
        changed["train_langs"] = tuple(changed["train_langs"])
    return replace(RECIPES[name], **changed)
