"""The paper's comparison (arXiv 2408.10536, Table 1), zero-shot across LAReQA collections: a thin driver of
``pyterrier-hybrid compare`` (the logic is :mod:`pyterrier_hybrid.experiments`), kept so that the commands in
benchmarks/README.md keep working. Same options::

    python benchmarks/paper_comparison.py --preset demo                  # = pyterrier-hybrid compare --preset demo
    python benchmarks/paper_comparison.py --preset cpu --skip-training

Results go to ``benchmarks/results/paper_comparison/<preset>/`` unless ``--out`` says otherwise.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

from pyterrier_hybrid.cli import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(["compare", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
