"""Robustness of retrievers to perturbed queries on LAReQA (and, with --domain-shift, the cost of a collection
shift): a thin driver of ``pyterrier-hybrid robustness`` (the logic is :mod:`pyterrier_hybrid.experiments.robustness`,
its study and its domain shift), kept so that the commands in benchmarks/README.md keep working. Same options; results
go to ``benchmarks/results/robustness`` unless ``--out`` says otherwise::

    python benchmarks/robustness.py --systems bm25 tiny=/tmp/tiny --collection lareqa/xquad-r --langs de en zh \\
        --max-queries-per-lang 50 --kinds typo,adversarial --edits 1 2 3 --out benchmarks/results/robustness-smoke
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_LAREQA = REPO_ROOT.parent / "shared" / "datasets" / "lareqa"


def main(argv: Sequence[str] | None = None) -> int:
    # Offline data beside the checkout, as `make` sets it up.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if SHARED_LAREQA.is_dir():
        os.environ.setdefault("PYTERRIER_HYBRID_LAREQA_DIR", str(SHARED_LAREQA))
    os.environ.setdefault("IR_DATASETS_HOME", str(REPO_ROOT / ".cache" / "ir_datasets"))
    from pyterrier_hybrid.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        argv += ["--out", str(REPO_ROOT / "benchmarks" / "results" / "robustness")]
    return cli_main(["robustness", *argv])


if __name__ == "__main__":
    sys.exit(main())
