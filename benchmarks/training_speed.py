"""Training step speed before and after the step optimisations, in one run, interleaved (A B A B), with the loss
curves of the same seed, the achieved GFLOP/s and the machine's bf16 matrix-product rate measured in the same run.

    python benchmarks/training_speed.py --steps 12 --rounds 2 --recipe-steps 5

"before" is today's step (``fused_optimizer=False``: torch's per-tensor AdamW loop), "after" the default
(``fused_optimizer=True``). Both run the CPU preset of the comparison (batch 32, answer sentences, 128 tokens, bf16
autocast, frozen word embeddings; MLQA-R, alpha 0.5, seed 42) through ``prepare_training`` and the real trainer;
the same seed gives the same batches, so the per-step losses are comparable. Steps/s is timed from the end of step
``--warmup`` to the last step (``training_overhead.step_clock``). GFLOP/s counts the encoder's matrix products of the
padded batches: 6 x (weights of the transformer layers) x tokens for forward and backward, plus attention
(12 x length^2 x hidden per sequence and layer). The bf16 rate is the median of timed 8192x384 @ 384x1536 bf16
products, measured before every segment. ``--recipe-steps``: the paper CPU recipe (batch 100 triplets), "after"
only, for its time budget (pyterrier_hybrid.training.recipes).

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
VARIANTS = {"before": {"fused_optimizer": False}, "after": {"fused_optimizer": True}}


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


def encoder_flops(shapes: list[tuple[int, int]], layer_weights: int, layers: int, hidden: int) -> float:
    """Forward + backward FLOPs of the transformer layers for padded columns of (batch, length)."""
    total = 0.0
    for batch, length in shapes:
        total += 6.0 * layer_weights * batch * length + 12.0 * batch * length**2 * hidden * layers
    return total


def segment(config, warmup: int) -> dict:
    """Train ``config`` in this process; steps/s, per-step losses and FLOPs."""
    import torch

    from pyterrier_hybrid.training.trainer import prepare_training

    times: list[float] = []
    prepared = prepare_training(config, callbacks=[step_clock(times)])
    trainer = prepared.trainer
    collate = trainer.data_collator
    shapes_per_step: list[list[tuple[int, int]]] = []

    class Recording:  # the padded (batch, length) of every column the model encodes
        def __getattr__(self, name):
            return getattr(collate, name)

        def __call__(self, features):
            batch = collate(features)
            shapes_per_step.append([tuple(v.shape) for k, v in batch.items() if k.endswith("input_ids")])
            return batch

    trainer.data_collator = Recording()
    auto = trainer.model[0].auto_model
    layer_weights = sum(p.numel() for n, p in auto.encoder.named_parameters() if p.dim() == 2)
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    flops = [encoder_flops(s, layer_weights, auto.config.num_hidden_layers, auto.config.hidden_size)
             for s in shapes_per_step]
    rate = steps_per_second(times, warmup)
    timed_flops = statistics.mean(flops[warmup:]) if len(flops) > warmup else statistics.mean(flops)
    result = {
        "steps": len(times), "steps_per_s": rate, "s_per_step": 1 / rate, "wall_s": wall, "losses": losses,
        "tokens_per_step": statistics.mean(sum(b * n for b, n in s) for s in shapes_per_step),
        "gflop_per_step": timed_flops / 1e9, "achieved_gflops": timed_flops * rate / 1e9,
        "threads": torch.get_num_threads(), "memory_plan": prepared.memory_plan.loss,
    }
    del prepared, trainer
    gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per segment (loss curves cover these)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of before, after")
    parser.add_argument("--warmup", type=int, default=2, help="steps excluded from the timing")
    parser.add_argument("--recipe-steps", type=int, default=0, help="steps of the paper CPU recipe (0: skip)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_number in range(args.rounds):
            for variant, overrides in VARIANTS.items():
                matmul = bf16_matmul_gflops()
                config = dataclasses.replace(cpu_preset(args.steps, f"{tmp}/{variant}-{round_number}"), **overrides)
                result = segment(config, args.warmup)
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


def write_results(rows: list[dict], args, wall: float) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fields = ["setup", "variant", "round", "steps", "s_per_step", "steps_per_s", "tokens_per_step", "gflop_per_step",
              "achieved_gflops", "bf16_matmul_gflops", "threads", "memory_plan", "wall_s"]
    with (OUT / "speed.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    preset = [r for r in rows if r["setup"] == "cpu-preset"]
    ratios = [a["steps_per_s"] / b["steps_per_s"] for b, a in zip(preset[0::2], preset[1::2])]
    first = {r["variant"]: r["losses"] for r in preset if r["round"] == 1}
    second = {r["variant"]: r["losses"] for r in preset if r["round"] == 2}
    n = min(len(v) for v in first.values())
    diff_variants = max(abs(a - b) for a, b in zip(first["before"][:n], first["after"][:n]))
    diff_repeat = (max(abs(a - b) for a, b in zip(first["before"][:n], second["before"][:n]))
                   if "before" in second else None)
    with (OUT / "loss_curve.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "before", "after"] + (["before_round2"] if "before" in second else []))
        for i in range(n):
            writer.writerow([i + 1, first["before"][i], first["after"][i]]
                            + ([second["before"][i]] if "before" in second else []))
    lines = [
        "# Training step speed: before / after (one run, interleaved, 2 CPU cores shared with other jobs)", "",
        f"Command: `python benchmarks/training_speed.py {' '.join(sys.argv[1:])}`", "",
        "| setup | variant | round | s/step | steps/s | tokens/step | GFLOP/step | achieved GFLOP/s "
        "| bf16 matmul GFLOP/s (same moment) | % of matmul rate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setup']} | {r['variant']} | {r['round']} | {r['s_per_step']:.2f} | {r['steps_per_s']:.3f} | "
            f"{r['tokens_per_step']:.0f} | {r['gflop_per_step']:.0f} | {r['achieved_gflops']:.0f} | "
            f"{r['bf16_matmul_gflops']:.0f} | {100 * r['achieved_gflops'] / r['bf16_matmul_gflops']:.1f}% |")
    lines += [
        "", f"After / before steps/s, per round: {', '.join(f'{x:.2f}x' for x in ratios)} "
        f"(median {statistics.median(ratios):.2f}x).", "",
        f"Loss curves, {n} steps, seed 42: largest per-step difference before vs after {diff_variants:.4f}"
        + (f"; before vs before (round 2, run-to-run) {diff_repeat:.4f}." if diff_repeat is not None else "."),
    ]
    (OUT / "speed.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = list(range(1, n + 1))
    ax.plot(steps, first["before"][:n], marker="o", label="before (round 1)")
    ax.plot(steps, first["after"][:n], marker="x", label="after (round 1)")
    if "before" in second:
        ax.plot(steps, second["before"][:n], linestyle=":", label="before (round 2)")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (InfoNCE)")
    ax.set_title("CPU preset, seed 42: loss per step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "loss_curve.png", dpi=100)
    plt.close(fig)
    run = {
        "command": "python benchmarks/training_speed.py " + " ".join(sys.argv[1:]),
        "git_commit": git_commit(),
        "wall_s": round(wall, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "note": "2 cores shared with other helpers' jobs (load average 10-15 during the run)"},
        "ratios_after_over_before": ratios,
        "loss_max_abs_diff_before_after": diff_variants, "loss_max_abs_diff_before_repeat": diff_repeat,
        "rows": rows,
    }
    (OUT / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
