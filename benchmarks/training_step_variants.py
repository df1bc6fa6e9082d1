"""Two candidate speed-ups of the training step, measured before building them: bf16 weights instead of bf16
autocast, and ``torch.compile`` of the encoder (the "next" ideas of benchmarks/README.md (e)).

    python benchmarks/training_step_variants.py --batches 6 --rounds 2

Times the forward and backward pass of the CPU preset's loss (batch 32 MLQA-R pairs, answer sentences, 128 tokens,
frozen word embeddings, with today's fast dropout and length buckets: ``prepare_training`` of
``training_speed.cpu_preset``) on the same ``--batches`` batches, in one process, interleaved by round:

- ``autocast``: today's step, float32 weights under bf16 autocast;
- ``bf16 weights``: the model cast to bfloat16, no autocast (no float32/bf16 copies; a real version would keep
  float32 master weights for AdamW, whose cost is not included here, so this is an upper bound on the gain);
- ``compiled``: today's step with ``torch.compile(encoder, dynamic=True)`` (inductor, C++ backend), after it.

The optimizer step is not timed (the same in all three). The median drops the first batch of each variant (and, for
``compiled``, the compilation, reported separately). Writes benchmarks/results/training_speed/step_variants.md and
step_variants.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyterrier_hybrid.provenance import git_commit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_speed import bf16_matmul_gflops, cpu_preset  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "training_speed"


def forward_backward_times(trainer, batches: list, autocast: bool) -> list[float]:
    import torch

    times = []
    for batch in batches:
        inputs = trainer._prepare_inputs(dict(batch))
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        times.append(time.perf_counter() - start)
        trainer.model.zero_grad(set_to_none=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of autocast, bf16 weights")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from pyterrier_hybrid.training.trainer import prepare_training

    with tempfile.TemporaryDirectory() as tmp:
        trainer = prepare_training(cpu_preset(10, tmp)).trainer
        batches = []
        for batch in trainer.get_train_dataloader():
            batches.append(batch)
            if len(batches) >= args.batches:
                break
        model = trainer.model
        model.train()
        # Casting to bf16 and back rounds the weights: each autocast segment starts from the exact float32 ones.
        float_weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        rows = []
        for round_number in range(1, args.rounds + 1):
            for variant in ("autocast", "bf16 weights"):
                if variant == "bf16 weights":
                    model.to(torch.bfloat16)
                else:
                    model.to(torch.float32).load_state_dict(float_weights)
                matmul = bf16_matmul_gflops()
                times = forward_backward_times(trainer, batches, autocast=variant == "autocast")
                rows.append({"variant": variant, "round": round_number, "times_s": times,
                             "median_s": statistics.median(times[1:]), "bf16_matmul_gflops": matmul})
                print(rows[-1], flush=True)
        model.to(torch.float32).load_state_dict(float_weights)
        auto = model[0].auto_model
        auto.encoder = torch.compile(auto.encoder, dynamic=True)
        matmul = bf16_matmul_gflops()
        times = forward_backward_times(trainer, batches, autocast=True)
        rows.append({"variant": "compiled", "round": 1, "times_s": times, "median_s": statistics.median(times[1:]),
                     "bf16_matmul_gflops": matmul, "first_batch_with_compilation_s": times[0]})
        print(rows[-1], flush=True)

    baseline = {r["round"]: r["median_s"] for r in rows if r["variant"] == "autocast"}
    lines = ["# Candidate step speed-ups: forward + backward of the CPU preset's loss", "",
             f"Command: `python benchmarks/training_step_variants.py {' '.join(sys.argv[1:])}`; "
             f"{args.batches} batches of 32 pairs, the same in every variant; median without the first batch.", "",
             "| variant | round | median s (fwd+bwd) | autocast / variant (same round; compiled: round 1) | "
             "bf16 matmul GFLOP/s (same moment) | per batch (s) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        speedup = baseline.get(r["round"], baseline[1]) / r["median_s"]
        lines.append(f"| {r['variant']} | {r['round']} | {r['median_s']:.3f} | {speedup:.2f}x | "
                     f"{r['bf16_matmul_gflops']:.0f} | {' '.join(f'{t:.2f}' for t in r['times_s'])} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "step_variants.md").write_text("\n".join(lines) + "\n")
    (OUT / "step_variants.json").write_text(json.dumps(
        {"command": "python benchmarks/training_step_variants.py " + " ".join(sys.argv[1:]),
         "git_commit": git_commit(), "threads": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
