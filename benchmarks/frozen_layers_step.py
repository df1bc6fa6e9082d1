"""What freezing the lower transformer layers saves a training step, measured side by side on the same batches.

    python benchmarks/frozen_layers_step.py --batches 3 --rounds 2 --depths 0 6 9

Builds the paper's CPU recipe (``training.recipes.PAPER_CPU_RECIPE``: batches of 100 MLQA-R triplets, cached InfoNCE,
bf16 autocast, frozen word embeddings, fast dropout, length buckets) once, then times the forward and backward pass
of its loss on the same ``--batches`` batches of the trainer's own dataloader with the lowest N layers frozen, for
each N of ``--depths`` (0: today's step), interleaved by round (the layers are frozen and unfrozen in place between
measurements). The optimizer step is not timed (it shrinks with the trained weights too). Writes
benchmarks/results/frozen_layers/step.md and step.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
from pathlib import Path

from distillation_overhead import forward_backward_times

from pyterrier_hybrid.provenance import git_commit

OUT = Path(__file__).resolve().parent / "results" / "frozen_layers"


def set_lower_layers_trainable(model, depth: int, layers: int) -> None:
    """Freeze the lowest ``depth`` of ``layers`` transformer layers and train the others (the word embeddings stay
    frozen as in the recipe; the position and type embeddings are trained only when no layer is frozen)."""
    from pyterrier_hybrid.training.trainer import freeze_lower_layers

    auto_model = model[0].auto_model
    for module in [auto_model.embeddings, *auto_model.encoder.layer]:
        for weight in module.parameters():
            weight.requires_grad_(True)
    auto_model.get_input_embeddings().weight.requires_grad_(False)
    if depth:
        freeze_lower_layers(model, depth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--depths", type=int, nargs="+", default=[0, 6, 9])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from pyterrier_hybrid.training.recipes import PAPER_CPU_RECIPE
    from pyterrier_hybrid.training.trainer import prepare_training

    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(PAPER_CPU_RECIPE, eval_fraction=0.0, early_stopping_patience=None,
                                     output_dir=str(Path(tmp) / "run"))
        prepared = prepare_training(config)
        trainer = prepared.trainer
        model = trainer.model
        layers = len(model[0].auto_model.encoder.layer)
        loader = iter(trainer.get_train_dataloader())
        batches = [next(loader) for _ in range(args.batches)]
        model.train()
        times: dict[int, list[float]] = {depth: [] for depth in args.depths}
        trainable: dict[int, int] = {}
        for _ in range(args.rounds):
            for depth in args.depths:
                set_lower_layers_trainable(model, depth, layers)
                trainable[depth] = sum(p.numel() for p in model.parameters() if p.requires_grad)
                times[depth] += forward_backward_times(trainer, trainer.loss, batches)
    median = {depth: statistics.median(values) for depth, values in times.items()}
    baseline = median[args.depths[0]]
    result = {"commit": git_commit(), "batches": args.batches, "rounds": args.rounds,
              "threads": torch.get_num_threads(), "layers": layers, "median_s": median,
              "trainable_weights": trainable, "times_s": times}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "step.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Frozen lower layers: cost of a training step",
        "",
        f"Paper CPU recipe (batch 100 triplets, cached InfoNCE, bf16, word embeddings frozen), {args.batches} "
        f"batches x {args.rounds} rounds interleaved, forward + backward of the loss, "
        f"{torch.get_num_threads()} torch threads, commit `{result['commit']}`.",
        "",
        "| frozen layers (of %d) | trained weights | median s | vs %d frozen |" % (layers, args.depths[0]),
        "|---|---|---|---|",
        *(f"| {d} | {trainable[d]:,} | {median[d]:.2f} | {median[d] / baseline:.2f}x |" for d in args.depths),
        "",
    ]
    (OUT / "step.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
