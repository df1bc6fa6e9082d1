"""Training step speed before and after the step optimisations, in one run, interleaved (A B A B), with the loss
curves of the same seed, the achieved GFLOP/s and the machine's bf16 matrix-product rate measured in the same run.

    python benchmarks/training_speed.py --steps 50 --rounds 2

"before" is the step of the comparison's committed runs (``fused_optimizer=False, fast_dropout=False,
length_buckets=1``: torch's per-tensor AdamW loop, torch's dropout and SDPA attention, each column one padded block),
"after" the default (fused AdamW; dropout masks drawn 15 bits at a time with the eager attention:
pyterrier_hybrid.training.speed.fast_dropout; each column run as 4 groups of similar length:
pyterrier_hybrid.training.speed.length_buckets). Both run the CPU preset of the
comparison (batch 32, answer sentences, 128 tokens, bf16 autocast, frozen word embeddings; MLQA-R, alpha 0.5, seed
42) through ``prepare_training`` and the real trainer. The same seed gives the same batches (the sampler has its own
generators), so per-step losses are comparable; "after" draws other dropout masks, so its losses differ by dropout
noise. To size that noise the run adds "before, other dropout draw": the before step with torch's generator
re-seeded when training starts (same batches, same model, another dropout draw). Steps/s is timed from the end of
step ``--warmup`` to the last step (``training_overhead.step_clock``). GFLOP/s counts the encoder's matrix products
of the real (unpadded) tokens: 6 x (weights of the transformer layers) x tokens for forward and backward, plus
attention (12 x length^2 x hidden per sequence and layer); the padded block's FLOPs are listed beside them. The bf16
rate is the median of timed 8192x384 @ 384x1536 bf16 products, measured before every segment. ``--recipe-steps``:
the paper CPU recipe (batch 100 triplets), "after" only, for its time budget (pyterrier_hybrid.training.recipes).

Writes benchmarks/results/training_speed/: speed.md, speed.csv, loss_curve.csv, loss_curve.png, run.json.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyterrier_hybrid.provenance import git_commit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_overhead import step_clock, steps_per_second  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "training_speed"
BEFORE = {"fused_optimizer": False, "fast_dropout": False, "length_buckets": 1}
AFTER = {"fused_optimizer": True, "fast_dropout": True, "length_buckets": 4}
REDRAW = "before, other dropout draw"


def cpu_preset(steps: int, out: str):
    from pyterrier_hybrid.training.config import HybridTrainingConfig

    return HybridTrainingConfig(
        train="lareqa/mlqa-r", alpha=0.5, batch_size=32, max_steps=steps, candidate_text="sentence",
        max_seq_length=128, bf16=True, freeze_word_embeddings=True, eval_fraction=0.0, save_steps=10**6,
        logging_steps=1, seed=42, output_dir=out,
        # A fixed budget, so that every segment trains with plain MNRL whatever the other jobs hold at its start
        # (the memory model estimates 7.6 GiB for this batch; its measured peak is lower: training_memory.py).
        max_memory_gb=12.0,
    )


def bf16_matmul_gflops(seconds: float = 1.5) -> float:
    """Median rate of 8192x384 @ 384x1536 bfloat16 products (the encoder's feed-forward shape)."""
    import torch

    a = torch.randn(8192, 384).bfloat16()
    b = torch.randn(384, 1536).bfloat16()
    a @ b
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 5:
        start = time.perf_counter()
        a @ b
        rates.append(2 * 8192 * 384 * 1536 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def encoder_flops(lengths: list[int], layer_weights: int, layers: int, hidden: int) -> float:
    """Forward + backward FLOPs of the transformer layers for sequences of these lengths."""
    return sum(6.0 * layer_weights * n + 12.0 * n**2 * hidden * layers for n in lengths)


def redraw_dropout(seed: int):
    """A callback re-seeding torch's generator when training starts: another dropout draw, the same batches."""
    import torch
    from transformers import TrainerCallback

    class Redraw(TrainerCallback):
        def on_train_begin(self, *_, **__):
            torch.manual_seed(seed)

    return Redraw()


def segment(config, warmup: int, redraw: bool = False) -> dict:
    """Train ``config`` in this process; steps/s, per-step losses and FLOPs."""
    import torch

    from pyterrier_hybrid.training.trainer import prepare_training

    times: list[float] = []
    callbacks = [step_clock(times)] + ([redraw_dropout(config.seed + 1000)] if redraw else [])
    prepared = prepare_training(config, callbacks=callbacks)
    trainer = prepared.trainer
    collate = trainer.data_collator
    padded_per_step: list[list[int]] = []  # every sequence's padded length (one block per column)
    real_per_step: list[list[int]] = []  # every sequence's real length

    class Recording:  # the padded and real lengths of every column the model encodes
        def __getattr__(self, name):
            return getattr(collate, name)

        def __call__(self, features):
            batch = collate(features)
            masks = [v for k, v in batch.items() if k.endswith("attention_mask")]
            padded_per_step.append([m.shape[1] for m in masks for _ in range(m.shape[0])])
            real_per_step.append([int(n) for m in masks for n in m.sum(dim=1)])
            return batch

    trainer.data_collator = Recording()
    auto = trainer.model[0].auto_model
    layer_weights = sum(p.numel() for n, p in auto.encoder.named_parameters() if p.dim() == 2)
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    shape = (layer_weights, auto.config.num_hidden_layers, auto.config.hidden_size)
    rate = steps_per_second(times, warmup)

    def per_step(values: list[float]) -> float:
        return statistics.mean(values[warmup:]) if len(values) > warmup else statistics.mean(values)

    # "Useful" work is that of the real tokens: the padding's FLOPs are work a step need not do.
    useful = per_step([encoder_flops(s, *shape) for s in real_per_step])
    result = {
        "steps": len(times), "steps_per_s": rate, "s_per_step": 1 / rate, "wall_s": wall, "losses": losses,
        "tokens_per_step": per_step([sum(s) for s in padded_per_step]),
        "real_tokens_per_step": per_step([sum(s) for s in real_per_step]),
        "padded_gflop_per_step": per_step([encoder_flops(s, *shape) for s in padded_per_step]) / 1e9,
        "gflop_per_step": useful / 1e9, "achieved_gflops": useful * rate / 1e9,
        "threads": torch.get_num_threads(), "memory_plan": prepared.memory_plan.loss,
    }
    del prepared, trainer
    gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="steps per segment (loss curves cover these)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of before, after")
    parser.add_argument("--warmup", type=int, default=3, help="steps excluded from the timing")
    parser.add_argument("--recipe-steps", type=int, default=0, help="steps of the paper CPU recipe (0: skip)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = [("before", BEFORE, False), ("after", AFTER, False)] * args.rounds
        plan.insert(2, (REDRAW, BEFORE, True))
        for index, (variant, overrides, redraw) in enumerate(plan):
            round_number = sum(1 for v, _, _ in plan[:index] if v == variant)
            matmul = bf16_matmul_gflops()
            config = dataclasses.replace(cpu_preset(args.steps, f"{tmp}/{index}"), **overrides)
            result = segment(config, args.warmup, redraw)
            rows.append({"setup": "cpu-preset", "variant": variant, "round": round_number + 1,
                         "bf16_matmul_gflops": matmul, **result})
            print({k: v for k, v in rows[-1].items() if k != "losses"}, flush=True)
        if args.recipe_steps:
            from pyterrier_hybrid.training.recipes import PAPER_CPU_RECIPE

            matmul = bf16_matmul_gflops()
            config = dataclasses.replace(PAPER_CPU_RECIPE, max_steps=args.recipe_steps, eval_fraction=0.0,
                                         early_stopping_patience=None, save_steps=10**6, logging_steps=1,
                                         output_dir=f"{tmp}/recipe")
            result = segment(config, args.warmup)
            rows.append({"setup": "paper-cpu recipe (batch 100 triplets)", "variant": "after", "round": 1,
                         "bf16_matmul_gflops": matmul, **result})
            print({k: v for k, v in rows[-1].items() if k != "losses"}, flush=True)
    write_results(rows, args, time.time() - started)


def curve_differences(reference: list[float], other: list[float], tail: int = 10) -> dict:
    """Mean and largest per-step |difference| and the difference of the last ``tail`` steps' mean loss."""
    n = min(len(reference), len(other))
    diffs = [abs(a - b) for a, b in zip(reference[:n], other[:n])]
    return {"steps": n, "mean_abs": statistics.mean(diffs), "max_abs": max(diffs),
            "tail_mean_diff": statistics.mean(other[n - tail:n]) - statistics.mean(reference[n - tail:n])}


def write_results(rows: list[dict], args, wall: float) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fields = ["setup", "variant", "round", "steps", "s_per_step", "steps_per_s", "tokens_per_step",
              "real_tokens_per_step", "padded_gflop_per_step", "gflop_per_step",
              "achieved_gflops", "bf16_matmul_gflops", "threads", "memory_plan", "wall_s"]
    with (OUT / "speed.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    preset = [r for r in rows if r["setup"] == "cpu-preset"]
    before = {r["round"]: r for r in preset if r["variant"] == "before"}
    after = {r["round"]: r for r in preset if r["variant"] == "after"}
    ratios = [after[k]["steps_per_s"] / before[k]["steps_per_s"] for k in sorted(before) if k in after]
    curves = {"before": before[1]["losses"], "after": after[1]["losses"]}
    curves.update({r["variant"]: r["losses"] for r in preset if r["variant"] == REDRAW})
    n = min(len(v) for v in curves.values())
    vs_after = curve_differences(curves["before"], curves["after"])
    vs_redraw = curve_differences(curves["before"], curves[REDRAW]) if REDRAW in curves else None
    with (OUT / "loss_curve.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step"] + list(curves))
        for i in range(n):
            writer.writerow([i + 1] + [curves[k][i] for k in curves])
    lines = [
        "# Training step speed: before / after (one run, interleaved)", "",
        f"Command: `python benchmarks/training_speed.py {' '.join(sys.argv[1:])}`", "",
        "| setup | variant | round | s/step | steps/s | tokens/step (padded block / real) | GFLOP/step (padded / "
        "real tokens) | achieved GFLOP/s (real tokens) | bf16 matmul GFLOP/s (same moment) | % of matmul rate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setup']} | {r['variant']} | {r['round']} | {r['s_per_step']:.2f} | {r['steps_per_s']:.3f} | "
            f"{r['tokens_per_step']:.0f} / {r['real_tokens_per_step']:.0f} | {r['padded_gflop_per_step']:.0f} / "
            f"{r['gflop_per_step']:.0f} | {r['achieved_gflops']:.0f} | "
            f"{r['bf16_matmul_gflops']:.0f} | {100 * r['achieved_gflops'] / r['bf16_matmul_gflops']:.1f}% |")
    lines += [
        "", f"After / before steps/s, per round: {', '.join(f'{x:.2f}x' for x in ratios)} "
        f"(median {statistics.median(ratios):.2f}x).", "",
        f"Loss curves, {n} steps, seed 42, the same batches: after vs before: mean per-step |difference| "
        f"{vs_after['mean_abs']:.4f} (largest {vs_after['max_abs']:.4f}), last-10-steps mean "
        f"{vs_after['tail_mean_diff']:+.4f}."
        + (f" Dropout noise alone (before vs before with another dropout draw): mean {vs_redraw['mean_abs']:.4f} "
           f"(largest {vs_redraw['max_abs']:.4f}), last-10-steps mean {vs_redraw['tail_mean_diff']:+.4f}."
           if vs_redraw else ""),
    ]
    (OUT / "speed.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = list(range(1, n + 1))
    for (label, curve), style in zip(curves.items(), ("-o", "-x", ":")):
        ax.plot(steps, curve[:n], style, markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (InfoNCE)")
    ax.set_title("CPU preset, seed 42, the same batches: loss per step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "loss_curve.png", dpi=100)
    plt.close(fig)
    run = {
        "command": "python benchmarks/training_speed.py " + " ".join(sys.argv[1:]),
        "git_commit": git_commit(),
        "wall_s": round(wall, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "ratios_after_over_before": ratios,
        "loss_after_vs_before": vs_after, "loss_redraw_vs_before": vs_redraw,
        "rows": rows,
    }
    (OUT / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
