"""Cost of the hybrid batch sampler: training steps/s with it vs sentence-transformers' own samplers, same data,
model and settings; peak memory; and the sampler's own time per batch.

Each training measurement runs in a fresh subprocess (so that peak resident memory is that run's), variants
interleaved over ``--repeats`` rounds to spread machine noise; steps/s is timed between the end of step
``--warmup`` and the end of the last step (model loading, data preparation and the first steps excluded).

    python benchmarks/training_overhead.py --model tiny --steps 60 --batch-size 16 --repeats 3
    python benchmarks/training_overhead.py --model default --steps 6 --batch-size 16 --max-seq-length 128 \
        --bf16 --freeze-word-embeddings --repeats 1 --tag default

Writes benchmarks/results/training_overhead[-TAG].json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SAMPLERS = ("hybrid", "st-default", "st-no-duplicates")
NOTE = (
    "Steps/s are wall-clock rates between the end of the warm-up steps and the last step, one fresh proce"
    "ss per run; on a shared machine their spread (the runs column) is the noise level. The sampler's own"
    " cost is the last column: time to draw one batch, without training."
)


def tiny_model(cache: Path) -> Path:
    """The tests' tiny random 2-layer BERT (built once into ``cache``)."""
    path = cache / "benchmark-tiny-model"
    if not (path / "modules.json").is_file():
        sys.path.insert(0, str(REPO / "tests"))
        from conftest import build_tiny_sentence_transformer

        build_tiny_sentence_transformer(path)
    return path


def step_clock(times: list[float]):
    """A trainer callback appending ``time.perf_counter()`` at the end of every optimisation step to ``times``
    (also used by benchmarks/training_speed.py)."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def on_step_end(self, *_, **__):
            times.append(time.perf_counter())

    return StepClock()


def steps_per_second(times: list[float], warmup: int) -> float:
    """Steps/s between the end of step ``warmup`` and the end of the last step."""
    timed = times[warmup - 1:]
    return (len(timed) - 1) / (timed[-1] - timed[0])


def worker(args: argparse.Namespace) -> None:
    """One training run with sampler ``args.worker``; prints a JSON line with steps/s and peak memory."""
    import torch
    from sentence_transformers.base.sampler import BatchSamplers

    from pyterrier_hybrid.training.config import HybridTrainingConfig
    from pyterrier_hybrid.training.trainer import prepare_training

    if args.threads:
        torch.set_num_threads(args.threads)
    times: list[float] = []

    with tempfile.TemporaryDirectory() as out:
        config = HybridTrainingConfig(
            base_model=args.model_path, train=args.train, train_langs=tuple(args.langs) if args.langs else None,
            alpha=0.5, batch_size=args.batch_size, max_steps=args.steps, candidate_text=args.candidate_text,
            max_seq_length=args.max_seq_length, bf16=args.bf16, freeze_word_embeddings=args.freeze_word_embeddings,
            eval_fraction=0.0, save_steps=10**6, logging_steps=10**6, output_dir=out, seed=1,
        )
        prepared = prepare_training(config, callbacks=[step_clock(times)])
        if args.worker == "st-default":
            prepared.trainer.args.batch_sampler = BatchSamplers.BATCH_SAMPLER
        elif args.worker == "st-no-duplicates":
            prepared.trainer.args.batch_sampler = BatchSamplers.NO_DUPLICATES
        prepared.trainer.train()
    result = {
        "sampler": args.worker,
        "steps_per_s": steps_per_second(times, args.warmup),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if torch.cuda.is_available():
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(result), flush=True)


def sampler_time_per_batch(args: argparse.Namespace) -> dict[str, float]:
    """Milliseconds per batch to draw one epoch of batches (sampler alone, no training)."""
    from datasets import Dataset
    from sentence_transformers.base.sampler import DefaultBatchSampler, NoDuplicatesBatchSampler
    from torch.utils.data import RandomSampler

    from pyterrier_hybrid.training.batching.hybrid import HybridBatchSampler, ParallelRows
    from pyterrier_hybrid.training.sources.data import candidate_text, load_training_data

    data = load_training_data(args.train, args.langs)
    positives = [candidate_text(e.passage_sentence, e.passage_context, args.candidate_text) for e in data.examples]
    dataset = Dataset.from_dict({"anchor": [e.query for e in data.examples], "positive": positives})
    rows = ParallelRows.from_examples(data.examples, positives)
    samplers = {
        "hybrid": HybridBatchSampler(dataset, args.batch_size, rows=rows, alpha=0.5),
        "st-default": DefaultBatchSampler(RandomSampler(dataset), batch_size=args.batch_size, drop_last=False),
        "st-no-duplicates": NoDuplicatesBatchSampler(dataset, batch_size=args.batch_size, drop_last=False),
    }
    timings = {}
    for name, sampler in samplers.items():
        start = time.perf_counter()
        count = sum(1 for _ in sampler)
        timings[name] = 1000 * (time.perf_counter() - start) / count
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="'tiny', 'default' or a model path")
    parser.add_argument("--train", default="lareqa/mlqa-r")
    parser.add_argument("--langs", nargs="*", default=None)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3, help="steps excluded from the timing")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--candidate-text", default="sentence+context")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--freeze-word-embeddings", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samplers", nargs="*", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--worker", choices=SAMPLERS, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        worker(args)
        return

    from pyterrier_hybrid.provenance import shown_path

    cache = Path(os.environ.get("PYTERRIER_HYBRID_CACHE", Path.home() / ".cache" / "pyterrier_hybrid"))
    if args.model == "tiny":
        model_path = tiny_model(cache)
    else:
        from pyterrier_hybrid.models import resolve_model

        model_path = resolve_model(None if args.model == "default" else args.model)

    passthrough = [a for a in sys.argv[1:]]
    runs: dict[str, list[dict]] = {name: [] for name in args.samplers}
    for round_number in range(args.repeats):
        order = args.samplers if round_number % 2 == 0 else list(reversed(args.samplers))
        for name in order:
            command = [sys.executable, __file__, *passthrough, "--worker", name, "--model-path", str(model_path)]
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
            lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                raise SystemExit(f"{name} run failed:\n{done.stderr[-4000:]}")
            runs[name].append(json.loads(lines[-1][len("RESULT "):]))
            print(name, runs[name][-1], flush=True)

    summary = {}
    for name, results in runs.items():
        rates = [r["steps_per_s"] for r in results]
        summary[name] = {
            "steps_per_s_median": statistics.median(rates),
            "steps_per_s_runs": rates,
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in results),
        }
    reference = summary.get("st-default", {}).get("steps_per_s_median")
    if reference:
        for name in summary:
            summary[name]["overhead_vs_st_default_pct"] = 100 * (reference / summary[name]["steps_per_s_median"] - 1)
    per_batch = sampler_time_per_batch(args)
    report = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "model_path")},
        "model_path": shown_path(model_path),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "training": summary,
        "sampler_ms_per_batch": per_batch,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / ("training_overhead" + (f"-{args.tag}" if args.tag else ""))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Training overhead of the hybrid sampler ({args.model}, {args.train}, batch {args.batch_size}, "
        f"{args.steps} steps, max_seq_length {args.max_seq_length}{', bf16' if args.bf16 else ''}"
        f"{', frozen embeddings' if args.freeze_word_embeddings else ''})",
        "",
        f"Command: `python benchmarks/training_overhead.py {' '.join(passthrough)}`",
        "",
        "| sampler | steps/s (median) | runs | overhead vs ST default | peak RSS (MiB) | sampler ms/batch |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        overhead = s.get("overhead_vs_st_default_pct")
        lines.append(
            f"| {name} | {s['steps_per_s_median']:.3f} | {', '.join(f'{r:.3f}' for r in s['steps_per_s_runs'])} | "
            f"{'' if overhead is None else f'{overhead:+.1f}%'} | {s['peak_rss_mib_max']:.0f} | "
            f"{per_batch[name]:.3f} |"
        )
    lines += ["", NOTE]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
