"""Peak resident memory of training runs beside the memory model's estimate (pyterrier_hybrid.training.speed.memory),
and the calibration of that model.

    python benchmarks/training_memory.py                 # the default recipe (batch 100, sentence + context,
                                                         # float32) for 3 steps, plus the CPU preset
    python benchmarks/training_memory.py --calibrate     # measured step peaks -> activation coefficients

A run is the real command, ``/usr/bin/time -v pyterrier-hybrid train ... --max-steps N``, in a fresh process: the
peak is time's "Maximum resident set size", the estimate is the one the trainer recorded in training_config.json
(run.memory_plan). A calibration point is one MNRL step of multilingual-e5-small on synthetic token ids (batch x
length, both columns the same length) in a fresh process: its peak minus the resident memory before the step minus
the exact parameter term (gradients and AdamW moments) is the activation memory the model's coefficients are fitted to.

Writes benchmarks/results/training_memory/: memory.md / memory.csv / memory.png (runs), calibration.csv /
calibration.json (points and fitted coefficients), run.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyterrier_hybrid.provenance import git_commit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "training_memory"
GIB = 2**30

RUNS = {
    # name: (description, extra CLI arguments)
    "default": ("the defaults: batch 100, sentence + context (512 tokens), float32, all weights trained", []),
    "cpu-preset": ("CPU preset: batch 32, sentence, 128 tokens, bf16, frozen word embeddings",
                   ["--batch-size", "32", "--candidate-text", "sentence", "--max-seq-length", "128", "--bf16",
                    "--freeze-word-embeddings"]),
}
CALIBRATION_POINTS = [  # batch, length, precision, word embeddings
    (4, 512, "fp32", "trained"), (8, 256, "fp32", "trained"), (16, 128, "fp32", "frozen"), (8, 512, "fp32", "frozen"),
    (4, 512, "bf16", "frozen"), (8, 256, "bf16", "frozen"), (16, 128, "bf16", "trained"), (8, 512, "bf16", "frozen"),
]


def calibration_point(batch: int, length: int, precision: str, embeddings: str) -> dict:
    """One MNRL step on synthetic ids in this process; prints and returns the measurements."""
    import resource

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from pyterrier_hybrid.models import resolve_model
    from pyterrier_hybrid.training.speed.memory import EncoderShape, current_resident_bytes

    model = SentenceTransformer(str(resolve_model(None)), device="cpu")
    model.max_seq_length = 512
    model.train()
    if embeddings == "frozen":
        model[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-5)
    generator = torch.Generator().manual_seed(0)

    def features():
        ids = torch.randint(5, 200_000, (batch, length), generator=generator)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    loss_fn = MultipleNegativesRankingLoss(model)
    columns = [features(), features()]
    before = current_resident_bytes()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = loss_fn(columns, None)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    optimizer.zero_grad()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    shape = EncoderShape.of(model)
    result = {
        "batch": batch, "length": length, "precision": precision, "embeddings": embeddings, "sequences": 2 * batch,
        "rss_before_gib": before / GIB, "peak_gib": peak / GIB, "trainable": shape.trainable_parameters,
    }
    result["activation_bytes"] = activation_of_point(result)
    print("RESULT " + json.dumps(result), flush=True)
    return result


def activation_of_point(point: dict) -> float:
    """A point's peak minus the resident memory before the step minus the gradients (4 bytes per trainable weight).
    AdamW's two moments are created by the first ``optimizer.step()``, after the activations are freed, so a one-step
    peak does not hold them; in a run they are there from the second step on, and the model adds them (8 bytes per
    trainable weight) beside the activations."""
    return (point["peak_gib"] - point["rss_before_gib"]) * GIB - 4 * point["trainable"]


def calibrate(args) -> dict:
    points = []
    for batch, length, precision, embeddings in CALIBRATION_POINTS:
        command = [sys.executable, __file__, "--point", str(batch), str(length), precision, embeddings]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"calibration point {batch}x{length} {precision} failed:\n{done.stderr[-3000:]}")
        points.append(json.loads(lines[-1][len("RESULT "):]))
        print(points[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "calibration.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(points[0]))
        writer.writeheader()
        writer.writerows(points)
    return fit(points)


def fit(points: list[dict] | None = None) -> dict:
    """Coefficients per precision from the points (default: calibration.csv): least squares, then scaled up so that
    no measured point is under-estimated (the trainer must not plan a batch that is then killed)."""
    from pyterrier_hybrid.training.speed.memory import (
        ACTIVATION_COEFFICIENTS,
        ActivationCoefficients,
        EncoderShape,
        activation_bytes,
        fit_coefficients,
    )

    if points is None:
        with (OUT / "calibration.csv").open() as f:
            points = [{k: (v if k in ("precision", "embeddings") else float(v)) for k, v in row.items()}
                      for row in csv.DictReader(f)]
    encoder = EncoderShape(layers=12, hidden_size=384, heads=12, trainable_parameters=0)
    fitted = {}
    for p in points:
        p["activation_bytes"] = activation_of_point(p)
    for precision in ("fp32", "bf16"):
        subset = [p for p in points if p["precision"] == precision]
        if len(subset) < 2:
            fitted[precision] = {"measured": False, "note": "fewer than 2 points: the fp32 coefficients are used"}
            continue
        c = fit_coefficients(subset, encoder)
        coefficients = {precision: c}
        worst = max(p["activation_bytes"] / activation_bytes(encoder, int(p["sequences"]), int(p["length"]), precision,
                                                             coefficients) for p in subset)
        scale = max(1.0, worst)
        fitted[precision] = {"measured": True, "per_hidden": round(c.per_hidden * scale, 1),
                             "per_attention": round(c.per_attention * scale, 2), "scale_up": round(scale, 3),
                             "points": len(subset)}
    usable = {k: ActivationCoefficients(v["per_hidden"], v["per_attention"])
              for k, v in fitted.items() if v["measured"]}
    for p in points:
        key = p["precision"] if p["precision"] in usable else "fp32"
        p["fitted_activation_bytes"] = activation_bytes(encoder, int(p["sequences"]), int(p["length"]), key, usable)
        p["in_use_activation_bytes"] = activation_bytes(encoder, int(p["sequences"]), int(p["length"]), p["precision"])
    report = {"fitted": fitted, "in_use": {k: vars(v) for k, v in ACTIVATION_COEFFICIENTS.items()}, "points": points}
    (OUT / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    print("fitted coefficients:", json.dumps(fitted))
    return report


def peak_of_run(name: str, extra: list[str], steps: int, train: str) -> dict:
    """``pyterrier-hybrid train`` under /usr/bin/time -v: peak RSS, wall time and the recorded memory plan."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = ["/usr/bin/time", "-v", str(Path(sys.executable).with_name("pyterrier-hybrid")), "train",
                   "--train", train, "--max-steps", str(steps), "--output-dir", str(out), *extra]
        start = time.time()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.time() - start
        peak_kib = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        plan = None
        config_file = out / "training_config.json"
        if config_file.is_file():
            plan = json.loads(config_file.read_text())["run"].get("memory_plan")
        switched = [l for l in done.stderr.splitlines() if "cached-mnrl" in l and "memory" in l.lower()]
        return {
            "run": name, "command": " ".join(["pyterrier-hybrid", *command[3:]]).replace(str(out), "OUT"),
            "exit_status": done.returncode, "wall_s": round(wall, 1),
            "peak_rss_gib": round(int(peak_kib.group(1)) / 2**20, 2) if peak_kib else None,
            "estimated_peak_gib": plan["estimated_peak_gib"] if plan else None,
            "budget_gib": plan["budget_gib"] if plan else None,
            "loss": plan["loss"] if plan else None, "mini_batch_size": plan["mini_batch_size"] if plan else None,
            "column_lengths": plan["column_lengths"] if plan else None,
            "message": switched[-1].strip() if switched else "",
            "stderr_tail": done.stderr[-1500:] if done.returncode else "",
        }


def write_results(rows: list[dict], args, wall: float) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    fields = ["run", "exit_status", "loss", "mini_batch_size", "column_lengths", "estimated_peak_gib",
              "peak_rss_gib", "budget_gib", "wall_s", "command", "message"]
    with (OUT / "memory.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"# Training memory: measured peak RSS vs the memory model ({args.steps} steps, 2 shared CPU cores)", "",
        "| run | exit | loss used | mini-batch | padded lengths | estimated peak (GiB) | measured peak RSS (GiB) "
        "| budget (GiB) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lengths = "/".join(map(str, r["column_lengths"] or []))
        lines.append(f"| {r['run']} | {r['exit_status']} | {r['loss']} | {r['mini_batch_size'] or ''} | {lengths} | "
                     f"{r['estimated_peak_gib']} | {r['peak_rss_gib']} | {r['budget_gib']} | {r['wall_s']} |")
    lines += ["", "Commands:", ""] + [f"- {r['run']}: `{r['command']}`" for r in rows]
    lines += ["", "Messages:", ""] + [f"- {r['run']}: {r['message']}" for r in rows if r["message"]]
    (OUT / "memory.md").write_text("\n".join(lines) + "\n")

    plot(rows)
    run = {
        "command": "python benchmarks/training_memory.py " + " ".join(sys.argv[1:]),
        "git_commit": git_commit(),
        "wall_s": round(wall, 1), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                              "note": "2 cores shared with other jobs"},
        "runs": rows,
    }
    (OUT / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    print("\n".join(lines))


def plot(rows: list[dict]) -> None:
    """memory.png: estimate and measured peak per run, the 10 GiB target, the legend under the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["estimated_peak_gib"] or 0 for r in rows], width=0.4, label="estimate")
    ax.bar([x + 0.2 for x in xs], [r["peak_rss_gib"] or 0 for r in rows], width=0.4, label="measured peak RSS")
    ax.axhline(10, color="grey", linestyle="--", linewidth=1, label="target 10 GiB")
    ax.set_xticks(list(xs), [r["run"] for r in rows])
    ax.set_ylabel("GiB")
    ax.set_title("Training memory: estimate vs measured")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(OUT / "memory.png", dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibrate", action="store_true", help="measure calibration points and fit the coefficients")
    parser.add_argument("--fit", action="store_true", help="fit the coefficients to calibration.csv again")
    parser.add_argument("--plot", action="store_true", help="redraw memory.png from run.json")
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--train", default="lareqa/mlqa-r")
    parser.add_argument("--point", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.point:
        batch, length, precision, embeddings = args.point
        calibration_point(int(batch), int(length), precision, embeddings)
        return
    if args.calibrate:
        calibrate(args)
        return
    if args.fit:
        fit()
        return
    if args.plot:
        plot(json.loads((OUT / "run.json").read_text())["runs"])
        return
    start = time.time()
    rows = []
    for name in args.runs:
        rows.append(peak_of_run(name, RUNS[name][1], args.steps, args.train))
        print(rows[-1], flush=True)
    write_results(rows, args, time.time() - start)


if __name__ == "__main__":
    main()
