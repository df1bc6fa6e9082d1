"""The ``pyterrier-hybrid`` command: one subcommand per part of the package.

Each subcommand lives beside the code it drives, as a module with ``add_arguments(parser)`` and ``run(args)``.
``run`` checks what the user asked for before it loads a model or data it does not need, and raises
:class:`~pyterrier_hybrid.errors.UserError` for a bad request; :func:`main` prints that as one line,
``pyterrier-hybrid <command>: error: <message>``, and exits with status 2, as it does for a bad flag.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError, error_line

SUBCOMMANDS = {
    "datasets": ("pyterrier_hybrid.datasets.cli",
                 "list the LAReQA ids with their numbers of queries, candidates, qrels"),
    "evaluate": ("pyterrier_hybrid.evaluation.cli", "score retrievers in every LAReQA setting (the main job)"),
    "train": ("pyterrier_hybrid.training.cli", "fine-tune a bi-encoder with hybrid (mono/cross-lingual) batches"),
    "compare": ("pyterrier_hybrid.experiments.compare_cli",
                "the paper's comparison: train alphas, evaluate zero-shot across collections, significance, sweep"),
    "robustness": ("pyterrier_hybrid.experiments.robustness.cli",
                   "every system on clean vs perturbed queries, or (--domain-shift) in- vs cross-collection training"),
    "index": ("pyterrier_hybrid.retrieval.sharded",
              "encode a collection into a FlexIndex on disk (sharded under torchrun)"),
}


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit 2), like the user errors of ``run``: argparse
    would print the whole usage first."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="pyterrier-hybrid", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        # The subcommand modules import torch and friends only inside run(), so building the parser stays fast.
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return importlib.import_module(args._module).run(args)
    except UserError as e:
        print(error_line(f"pyterrier-hybrid {args.command}", e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
