"""Peak resident memory of training on a streamed irds: source at 10k, 100k and 1M judged pairs.

    python benchmarks/streamed_training_memory.py                     # 10k, 100k, 1M; both modes
    python benchmarks/streamed_training_memory.py --sizes 10000 --in-memory 10000   # and the in-memory path

The collection is the synthetic parallel one registered in ir_datasets (``pyterrier-hybrid-synthetic/SIZE/LANG``:
three languages sharing query and document ids, SIZE judged pairs, one docpair per query; texts generated from the
ids, as mMARCO cannot be downloaded here). Every measurement is a fresh process under ``/usr/bin/time -v`` (the peak
is its "Maximum resident set size"):

- ``train``: the real command, ``python -m pyterrier_hybrid.cli train --train irds:en=...,de=...,fr=...
  --hard-negatives --max-steps 5 --batch-size 32`` on the tests' tiny model (2-layer BERT, built once), which
  registers the synthetic collection when it reads its ids: reading the ids, writing the query texts, five
  training steps (texts fetched per batch), saving the model;
- ``pipeline``: the data pipeline alone, no model: the source is read, its dataset built and 20 global batches of
  32 drawn by the streamed sampler and their texts fetched;
- ``in-memory`` (optional, small sizes): the rows the previous irds source built, every (query language, passage
  language) row with its texts (``ir_datasets_parallel_examples`` + ``build_training_dataset``), for comparison.

Writes benchmarks/results/streamed_training/: memory.md, memory.csv, run.json.
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

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "streamed_training"
MIB = 2**20
LANGS = ("en", "de", "fr")
BATCH = 32
STEPS = 5


def source(size: int) -> str:
    from pyterrier_hybrid.datasets.synthetic import synthetic_id

    return "irds:" + ",".join(f"{lang}={synthetic_id(size, lang)}" for lang in LANGS)


def child_pipeline(size: int) -> None:
    """The data pipeline alone: read the source, build its dataset, draw and read 20 global batches."""
    from pyterrier_hybrid.datasets.synthetic import register_synthetic_collection
    from pyterrier_hybrid.training.batching.streamed import StreamedHybridBatchSampler
    from pyterrier_hybrid.training.sources.streaming import StreamedParallelSource

    register_synthetic_collection()
    data = StreamedParallelSource(source(size), hard_negatives=True)
    rows, _ = data.split(0, seed=42)
    dataset = data.dataset(rows)
    sampler = StreamedHybridBatchSampler(dataset, BATCH, seed=42, rows=rows, alpha=0.5, num_replicas=1)
    for step, batch in enumerate(sampler):
        texts = dataset[batch]
        assert len(texts["anchor"]) == BATCH and all(texts["negative"])
        if step == 19:
            break


def child_in_memory(size: int) -> None:
    """The in-memory irds source: every (query language, passage language) row with its texts."""
    from pyterrier_hybrid.datasets.synthetic import register_synthetic_collection, synthetic_id
    from pyterrier_hybrid.training.batching.pairs import build_training_dataset
    from pyterrier_hybrid.training.sources.data import TrainingData, ir_datasets_parallel_examples

    register_synthetic_collection()
    examples = ir_datasets_parallel_examples({lang: synthetic_id(size, lang) for lang in LANGS})
    build_training_dataset(TrainingData(tuple(examples)), "sentence")


def measure(command: list[str], env: dict) -> tuple[float, float, str]:
    """(peak RSS in MiB, wall seconds, stderr tail) of ``command`` under /usr/bin/time -v."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return peak_kib * 1024 / MIB, wall, result.stderr[-500:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--modes", nargs="+", choices=("train", "pipeline"), default=["train", "pipeline"])
    parser.add_argument("--in-memory", type=int, nargs="*", default=[], metavar="SIZE",
                        help="also measure the in-memory irds rows at these sizes (grows fast: keep them small)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, size = args.child
        {"pipeline": child_pipeline, "in-memory": child_in_memory}[mode](int(size))
        return

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import build_tiny_sentence_transformer

    from pyterrier_hybrid.provenance import git_commit

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_sentence_transformer(Path(tmp) / "tiny")
        plan = [(mode, size) for size in args.sizes for mode in args.modes]
        plan += [("in-memory", size) for size in args.in_memory]
        for mode, size in plan:
            if mode == "train":
                command = [sys.executable, "-m", "pyterrier_hybrid.cli", "train", "--base-model", str(model),
                           "--train", source(size), "--hard-negatives", "--max-steps", str(STEPS),
                           "--batch-size", str(BATCH), "--candidate-text", "sentence", "--max-seq-length", "64",
                           "--eval-fraction", "0", "--save-steps", "1000", "-o", str(Path(tmp) / f"out-{size}")]
            else:
                command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(size)]
            peak, wall, _ = measure(command, env)
            row = {"mode": mode, "judged_pairs": size, "languages": len(LANGS), "peak_rss_mib": round(peak, 1),
                   "wall_s": round(wall, 1)}
            print(row, flush=True)
            rows.append(row)

    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "memory.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| mode | judged pairs | (query, passage) rows the old source built | peak RSS (MiB) | wall (s) |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['judged_pairs']:,} | {r['judged_pairs'] * len(LANGS) ** 2:,} | "
                     f"{r['peak_rss_mib']:,.1f} | {r['wall_s']:,.1f} |")
    for mode in args.modes:
        peaks = [r["peak_rss_mib"] for r in rows if r["mode"] == mode]
        if len(peaks) > 1:
            lines.append("")
            lines.append(f"{mode}: peak RSS spread {max(peaks) - min(peaks):.1f} MiB from "
                         f"{min(args.sizes):,} to {max(args.sizes):,} judged pairs")
    (OUT / "memory.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (OUT / "run.json").write_text(json.dumps({
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "commit": git_commit(),
        "python": platform.python_version(),
        "wall_s": round(time.time() - started, 1),
        "batch_size": BATCH, "steps": STEPS, "languages": list(LANGS),
    }, indent=2) + "\n", encoding="utf-8")
    print((OUT / "memory.md").read_text())


if __name__ == "__main__":
    main()
