"""The ``pyterrier-hybrid`` command: one subcommand per part of the package.

Each subcommand lives beside the code it drives, as a module with ``add_arguments(parser)`` and ``run(args)``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "datasets": ("pyterrier_hybrid.datasets.cli", "list the LAReQA ids with their numbers of queries, candidates, qrels"),
    "evaluate": ("pyterrier_hybrid.evaluation.cli", "score retrievers in every LAReQA setting (the main job)"),
    "train": ("pyterrier_hybrid.training.cli", "fine-tune a bi-encoder with hybrid (mono/cross-lingual) batches"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyterrier-hybrid", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        # The subcommand modules import torch and friends only inside run(), so building the parser stays fast.
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return importlib.import_module(args._module).run(args)


if __name__ == "__main__":
    sys.exit(main())
