"""What the base distillation term costs a training step, measured side by side on the same batches.

    python benchmarks/distillation_overhead.py --batches 4 --rounds 2

Builds the paper's CPU recipe (``training.recipes.PAPER_CPU_RECIPE``: batches of 100 MLQA-R triplets, cached InfoNCE,
bf16 autocast, frozen word embeddings, fast dropout, length buckets) with ``distill_base_weight`` 0.5, which first
encodes the teacher table (every distinct training text once; its time is reported apart, as a one-time cost), then
times the forward and backward pass of the loss on the same ``--batches`` batches of the trainer's own dataloader,
interleaved by round: the distilled loss (``DistilledCachedMNRL``) and the plain one (sentence-transformers'
``CachedMultipleNegativesRankingLoss``, today's step without the term). The optimizer step is the same in both and is
not timed. Writes benchmarks/results/distillation/overhead.md and overhead.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from training_step_variants import forward_backward_times as step_variant_times

from pyterrier_hybrid.provenance import git_commit

OUT = Path(__file__).resolve().parent / "results" / "distillation"


def forward_backward_times(trainer, loss, batches: list) -> list[float]:
    """Forward and backward of ``loss`` on each batch, under bf16 autocast (training_step_variants' timing)."""
    trainer.loss = loss
    return step_variant_times(trainer, batches, autocast=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    from pyterrier_hybrid.training.recipes import PAPER_CPU_RECIPE
    from pyterrier_hybrid.training.trainer import prepare_training

    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(PAPER_CPU_RECIPE, distill_base_weight=0.5, eval_fraction=0.0,
                                     early_stopping_patience=None, output_dir=str(Path(tmp) / "run"))
        started = time.perf_counter()
        prepared = prepare_training(config)
        setup_s = time.perf_counter() - started
        trainer = prepared.trainer
        distilled = trainer.loss
        teacher_texts = int(distilled.teacher.table.shape[0])
        plain = CachedMultipleNegativesRankingLoss(trainer.model, scale=config.scale,
                                                   mini_batch_size=distilled.mini_batch_size)
        loader = iter(trainer.get_train_dataloader())
        batches = [next(loader) for _ in range(args.batches)]
        trainer.model.train()
        times: dict[str, list[float]] = {"plain": [], "distilled": []}
        for _ in range(args.rounds):
            for name, loss in (("plain", plain), ("distilled", distilled)):
                times[name] += forward_backward_times(trainer, loss, batches)
    median = {name: statistics.median(values) for name, values in times.items()}
    overhead = median["distilled"] / median["plain"] - 1
    result = {
        "commit": git_commit(), "batches": args.batches, "rounds": args.rounds, "threads": torch.get_num_threads(),
        "setup_s_with_teacher_table": round(setup_s, 1), "median_s": {k: round(v, 3) for k, v in median.items()},
        "overhead": round(overhead, 4), "times_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "teacher_texts": teacher_texts,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "overhead.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Base distillation: cost of a training step",
        "",
        f"Paper CPU recipe (batch 100 triplets, cached InfoNCE, bf16), {args.batches} batches x {args.rounds} rounds "
        f"interleaved, forward + backward of the loss, {torch.get_num_threads()} torch threads, commit "
        f"`{result['commit']}`.",
        "",
        "| step | median s |",
        "|---|---|",
        f"| plain (CachedMultipleNegativesRankingLoss) | {median['plain']:.2f} |",
        f"| with base distillation (weight 0.5) | {median['distilled']:.2f} |",
        "",
        f"Overhead of the term: {overhead:+.1%}. One-time set-up with the teacher table (loading data and model, "
        f"encoding each of the {teacher_texts} distinct training texts once): {setup_s:.0f} s.",
        "",
    ]
    (OUT / "overhead.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
