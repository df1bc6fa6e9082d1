"""``pyterrier-hybrid robustness`` (being moved here from benchmarks/robustness.py)."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise SystemExit("not yet")
