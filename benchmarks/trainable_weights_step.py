"""What training fewer weights saves a training step, measured side by side on the same batches: full fine-tuning,
LoRA adapters at several ranks, and the lower transformer layers frozen at several depths.

    python benchmarks/trainable_weights_step.py --batches 3 --rounds 2 --lora-ranks 8 32 --depths 6 9 11 \
        --one-pass-depths 9 11

Builds the paper's CPU recipe (``training.recipes.PAPER_CPU_RECIPE``: batches of 100 MLQA-R triplets, cached InfoNCE,
bf16 autocast, frozen word embeddings, fast dropout, length buckets) once, then times the forward and backward pass
of its loss on the same ``--batches`` batches of the trainer's own dataloader for every variant, interleaved by round;
the deepest freezings are timed with the one-pass loss as well (MNRL: one forward with a graph instead of the cached
loss's two forwards, which fits once only the top layers keep activations, see training.speed.memory).
Variants change the model in place and are undone after their measurement: layers are frozen and unfrozen; LoRA
adapters are injected (on every linear layer, as ``--lora-rank`` trains by default, and for the first rank also on the
attention's query and value only) and merged away again, which leaves the weights
as they were because an adapter that has taken no optimizer step adds zero. The optimizer step is not timed (it
shrinks with the trained weights too). Writes benchmarks/results/trainable_weights/step.md, step.json and step.png.
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

OUT = Path(__file__).resolve().parent / "results" / "trainable_weights"


def train_all_but_word_embeddings(model) -> None:
    """The recipe's starting point: every weight trains except the word-embedding matrix."""
    auto_model = model[0].auto_model
    for weight in auto_model.parameters():
        weight.requires_grad_(True)
    auto_model.get_input_embeddings().weight.requires_grad_(False)


def apply_variant(model, config, variant: tuple[str, int]):
    """Set the model up for ``variant`` and return the function that undoes it."""
    from pyterrier_hybrid.training.speed.trainable import add_lora_adapter, freeze_lower_layers, merge_lora_adapter

    kind, size = variant
    train_all_but_word_embeddings(model)
    if kind.startswith("frozen layers") and size:
        freeze_lower_layers(model, size)
    if kind.startswith("lora"):
        targets = ("query", "value") if kind == "lora attention" else config.lora_targets
        add_lora_adapter(model, dataclasses.replace(config, lora_rank=size, lora_targets=targets))
        return lambda: merge_lora_adapter(model)
    return lambda: None


def variant_name(variant: tuple[str, int]) -> str:
    kind, size = variant
    if kind == "lora":
        return f"LoRA rank {size}, every linear layer"
    if kind == "lora attention":
        return f"LoRA rank {size}, query and value"
    if kind == "frozen layers, one pass":
        return f"lowest {size} layers frozen, one-pass InfoNCE"
    return "full fine-tuning" if size == 0 else f"lowest {size} layers frozen"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lora-ranks", type=int, nargs="*", default=[8, 32])
    parser.add_argument("--depths", type=int, nargs="*", default=[6, 9, 11])
    parser.add_argument("--one-pass-depths", type=int, nargs="*", default=[9, 11],
                        help="depths also timed with the one-pass loss (MNRL), which fits in memory once only the "
                             "top layers keep activations")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from pyterrier_hybrid.training.recipes import PAPER_CPU_RECIPE
    from pyterrier_hybrid.training.trainer import prepare_training

    variants = [("frozen layers", 0), *(("lora", r) for r in args.lora_ranks),
                *(("lora attention", r) for r in args.lora_ranks[:1]),
                *(("frozen layers", d) for d in args.depths),
                *(("frozen layers, one pass", d) for d in args.one_pass_depths)]
    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(PAPER_CPU_RECIPE, eval_fraction=0.0, early_stopping_patience=None,
                                     output_dir=str(Path(tmp) / "run"))
        prepared = prepare_training(config)
        trainer = prepared.trainer
        model = trainer.model
        cached_loss = trainer.loss
        one_pass_loss = MultipleNegativesRankingLoss(model, scale=config.scale)
        layers = len(model[0].auto_model.encoder.layer)
        loader = iter(trainer.get_train_dataloader())
        batches = [next(loader) for _ in range(args.batches)]
        model.train()
        times: dict[str, list[float]] = {variant_name(v): [] for v in variants}
        trainable: dict[str, int] = {}
        for _ in range(args.rounds):
            for variant in variants:
                undo = apply_variant(model, config, variant)
                trainable[variant_name(variant)] = sum(p.numel() for p in model.parameters() if p.requires_grad)
                loss = one_pass_loss if variant[0] == "frozen layers, one pass" else cached_loss
                times[variant_name(variant)] += forward_backward_times(trainer, loss, batches)
                undo()
    median = {name: statistics.median(values) for name, values in times.items()}
    baseline = median["full fine-tuning"]
    result = {"commit": git_commit(), "batches": args.batches, "rounds": args.rounds,
              "threads": torch.get_num_threads(), "layers": layers, "median_s": median,
              "trainable_weights": trainable, "times_s": times}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "step.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Training fewer weights: cost of a training step",
        "",
        f"Paper CPU recipe (batch 100 triplets, cached InfoNCE, bf16, word embeddings frozen; {layers} layers), "
        f"{args.batches} batches x {args.rounds} rounds interleaved, forward + backward of the loss, "
        f"{torch.get_num_threads()} torch thread(s), commit `{result['commit']}`.",
        "",
        "| variant | trained weights | median s | vs full fine-tuning |",
        "|---|---|---|---|",
        *(f"| {name} | {trainable[name]:,} | {median[name]:.2f} | {median[name] / baseline:.2f}x |"
          for name in median),
        "",
    ]
    (OUT / "step.md").write_text("\n".join(lines), encoding="utf-8")
    plot(median, baseline, OUT / "step.png")
    print("\n".join(lines))


def plot(median: dict[str, float], baseline: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(median)
    ax.barh(names, [median[n] for n in names], color=["grey"] + ["tab:blue"] * (len(names) - 1))
    ax.axvline(baseline / 2, color="tab:red", linestyle="--", label="half of full fine-tuning")
    ax.invert_yaxis()
    ax.set_xlabel("forward + backward of one batch (s, median)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
