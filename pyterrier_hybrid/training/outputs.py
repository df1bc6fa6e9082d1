"""What a finished run writes besides the model: the loss curve (``loss_curve.csv`` / ``loss_curve.png``) and a
short model card (``README.md``)."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import HybridTrainingConfig

__all__ = ["LOSS_CURVE_CSV", "LOSS_CURVE_PNG", "MULTI_DATASET_EVAL_LOSSES", "write_loss_curve", "write_model_card"]

LOSS_CURVE_CSV = "loss_curve.csv"
LOSS_CURVE_PNG = "loss_curve.png"
#: The validation losses of a run with several datasets (see distillation_plan), read as its validation loss.
MULTI_DATASET_EVAL_LOSSES = ("eval_pairs_loss", "eval_parallel_loss")


def _loss_rows(log_history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by_step: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        if "loss" not in entry and not ({"eval_loss", *MULTI_DATASET_EVAL_LOSSES} & set(entry)):
            continue
        row = by_step.setdefault(int(entry["step"]), {"step": int(entry["step"])})
        row["epoch"] = entry.get("epoch", row.get("epoch"))
        entry = {**entry, **{"eval_loss": v for k, v in entry.items() if k in MULTI_DATASET_EVAL_LOSSES}}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
            if key in entry:
                row[key] = entry[key]
    return [by_step[s] for s in sorted(by_step)]


def write_loss_curve(log_history: Sequence[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """``loss_curve.csv`` (step, epoch, loss, eval_loss, learning_rate, grad_norm) and ``loss_curve.png``."""
    rows = _loss_rows(log_history)
    fields = ["step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm"]
    with (out / LOSS_CURVE_CSV).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})

    import matplotlib

    matplotlib.use("Agg")  # no display needed, safe in threads and on servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    train_points = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    eval_points = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    if train_points:
        ax.plot(*zip(*train_points), label="training loss")
    if eval_points:
        ax.plot(*zip(*eval_points), marker="o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("InfoNCE loss")
    ax.set_title("Hybrid batch training")
    if train_points or eval_points:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / LOSS_CURVE_PNG, dpi=100)
    plt.close(fig)
    return rows


def write_model_card(out: Path, config: HybridTrainingConfig, run: dict[str, Any]) -> None:
    last = run.get("final_training_loss")
    best_eval = run.get("best_validation_loss")
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sentence-transformers, cross-lingual-retrieval, pyterrier-hybrid]",
        f"language: [{', '.join(run['languages'])}]",
        "---",
        "",
        "# Hybrid-batch-trained multilingual bi-encoder",
        "",
        f"Fine-tuned from `{run['base_model']}` by `pyterrier-hybrid train` with hybrid batch training "
        "(arXiv 2408.10536): each batch is monolingual (one language) with probability "
        f"alpha={config.alpha:g}, else cross-lingual, and never holds two translations of one question.",
        "",
        f"- training data: `{config.train}`, {run['train_examples']} examples ({run['train_parallel_ids']} parallel "
        f"ids), languages {', '.join(run['languages'])}; {run['eval_examples']} held-out examples",
        f"- loss: {config.loss} (InfoNCE, in-batch negatives{', hard negatives' if config.hard_negatives else ''}, "
        f"cosine x {config.scale:g}); batch {config.batch_size}; AdamW lr {config.learning_rate:g}, weight decay "
        f"{config.weight_decay:g}, warmup {config.warmup:g}; {run['global_steps']} steps; seed {config.seed}",
        f"- passages: {config.candidate_text}; prompts {run['query_prompt']!r} / {run['passage_prompt']!r}",
        f"- final training loss: {last:.4f}" if last is not None else "- final training loss: n/a",
    ]
    if best_eval is not None:
        lines.append(f"- best validation loss: {best_eval:.4f}")
    if config.trainer_arguments:
        given = ", ".join(f"{name}={value!r}" for name, value in config.trainer_arguments.items())
        lines.append(f"- other trainer arguments: {given}")
    if config.distills:
        lines.append(
            f"- distillation from the frozen starting model (cosine distance): every text to its own embedding x "
            f"{config.distill_base_weight:g}; parallel batches x {config.distill_parallel_weight:g} towards the "
            f"group's {config.distill_target} target; contrastive batches: {'yes' if config.contrastive else 'no'}"
        )
    lines += [
        "",
        "Full configuration: `training_config.json`; loss by step: `loss_curve.csv` / `loss_curve.png`.",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "model = SentenceTransformer(PATH)",
        'queries = model.encode_query(["..."])      # adds the query prompt',
        'passages = model.encode_document(["..."])  # adds the passage prompt',
        "```",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")

