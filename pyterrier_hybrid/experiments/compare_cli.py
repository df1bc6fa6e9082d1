"""``pyterrier-hybrid compare``: the paper's comparison (Table 1, seen/unseen split, significance, alpha sweep),
zero-shot across the LAReQA collections, from a preset (cpu, gpu, demo) with single fields overridden.

    pyterrier-hybrid compare --preset demo --out demo-output            # make demo
    pyterrier-hybrid compare --preset cpu                               # ~1 h on 2 CPU cores
    pyterrier-hybrid compare --preset gpu --system e5-base=intfloat/multilingual-e5-base
    pyterrier-hybrid compare --preset paper-cpu                         # paper recipe, 3 seeds, ~2.5 h, resumes
    pyterrier-hybrid compare --preset cpu --skip-training               # evaluate the saved models again
    pyterrier-hybrid compare --preset cpu --debias mean                 # + a debiased row per dense system

Every option is checked before a model is built or trained; a bad one is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..cli_args import add_answer_paragraphs_option, add_language_option
from ..training.config import BATCHINGS, DISTILL_TARGETS

_SOURCE_ROOT = Path(__file__).resolve().parents[2]
#: Where results go without --out: ``benchmarks/results/paper_comparison/<preset>`` in a source checkout (where the
#: committed results live), else ``results/paper_comparison/<preset>`` in the working directory.
DEFAULT_RESULTS = (_SOURCE_ROOT / "benchmarks" / "results" / "paper_comparison"
                   if (_SOURCE_ROOT / "pyproject.toml").is_file() and (_SOURCE_ROOT / "benchmarks").is_dir()
                   else Path("results") / "paper_comparison")
# kept in step with presets.PRESETS by a test; no import of the presets here
PRESET_NAMES = ("cpu", "demo", "distill-cpu", "gpu", "paper-cpu")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="cpu", metavar="{" + ",".join(PRESET_NAMES) + "}",
                        help="what to run: cpu (about an hour on 2 CPU cores), gpu (the paper's recipe, 3 seeds), "
                             "demo (make demo, ~7 min: two regimes and a distilled system), paper-cpu (the paper's "
                             "recipe sized for 2 CPU cores, 3 seeds, ~150 min per direction on quiet cores, measured), "
                             "distill-cpu (distillation from the frozen base, both directions, 3 seeds); default cpu")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: benchmarks/results/paper_comparison/<preset> in a source "
                             "checkout, else results/paper_comparison/<preset>)")
    parser.add_argument("--base-model", default="default",
                        help="the encoder to train and the 'base' row: default (embedded multilingual-e5-small), a "
                             "sentence-transformers folder or a hub id")
    parser.add_argument("--encoders", nargs="*", default=None, metavar="NAME=SPEC",
                        help="replace the preset's extra systems, evaluated zero-shot (no value: none)")
    parser.add_argument("--system", action="append", default=[], metavar="NAME=SPEC", dest="systems",
                        help="add a system (repeatable): any system spec, e.g. e5-base=intfloat/multilingual-e5-base "
                             "or base+mean=default+debias:mean")
    parser.add_argument("--debias", default=None, metavar="METHOD",
                        help="also evaluate the base and every trained system debiased by METHOD (rows '<system> + "
                             "debias'), e.g. mean or lir:2")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="training seeds (default: the preset's)")
    parser.add_argument("--directions", nargs="+", default=None, metavar="TRAIN:EVAL",
                        help="e.g. mlqa-r:xquad-r (default: the preset's)")
    add_language_option(parser, "--langs", default=None,
                        help="evaluation languages, for every evaluation collection (default: the preset's)")
    _add_training_arguments(parser)
    _add_run_arguments(parser)


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """How the comparison's systems are trained (each overrides the preset's, for every trained system: the paper's
    regimes and a preset's recipe systems, e.g. demo's distilled, alike)."""
    add_language_option(parser, "--train-langs", default=None,
                        help="training languages (default: all of the training collection's)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="training steps of every trained system, a recipe system's included (overrides the "
                             "preset's budget)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch size of every trained system (default: the preset's)")
    parser.add_argument("--learning-rate", type=float, default=None, metavar="LR",
                        help="learning rate of every trained system (default: the preset's)")
    parser.add_argument("--max-parallel-ids", type=int, default=None, metavar="N",
                        help="train every system on the examples of N parallel ids of the training collection "
                             "(train --max-parallel-ids: quick runs; default: all)")
    parser.add_argument("--trained", nargs="+", default=None, metavar="LABEL=ALPHA",
                        help="the trained systems of the table, e.g. X-X-mono=1 hybrid=0.5, all trained with the "
                             "preset's shared training (default: the preset's). Replaces every trained system, the "
                             "preset's own-recipe systems included (demo: distilled): the table holds exactly these")
    parser.add_argument("--distill-base", type=float, default=None, metavar="WEIGHT",
                        help="base distillation weight of every trained system (train --distill-base)")
    parser.add_argument("--distill-parallel", type=float, default=None, metavar="WEIGHT",
                        help="parallel distillation weight of every trained system (train --distill-parallel)")
    parser.add_argument("--distill-target", default=None, choices=DISTILL_TARGETS,
                        help="target of the parallel distillation (train --distill-target)")
    parser.add_argument("--no-contrastive", action="store_true",
                        help="trained systems learn from the parallel distillation batches alone (train "
                             "--no-contrastive); give one --trained system, its alpha then plays no part")
    parser.add_argument("--batching", default=None, choices=BATCHINGS,
                        help="how contrastive batches are drawn (train --batching; default: the preset's)")
    parser.add_argument("--freeze-layers", type=int, default=None, metavar="N",
                        help="train no weight of the lowest N transformer layers (train --freeze-layers)")
    parser.add_argument("--lora-rank", type=int, default=None, metavar="R",
                        help="train LoRA adapters of rank R instead of the weights (train --lora-rank)")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """What else the run does: the alpha sweep, quick subsets, resuming and what is kept."""
    parser.add_argument("--sweep-alphas", nargs="*", type=float, default=None,
                        help="alphas of the sweep, run on the preset's sweep directions or, for a preset without "
                             "a sweep, on every direction (default: the preset's; no value: no sweep)")
    parser.add_argument("--max-queries", type=int, default=None,
                        help="evaluate the questions of this many parallel ids only (quick runs)")
    add_answer_paragraphs_option(parser)
    parser.add_argument("--significance-pairs-per-language", type=int, default=None, metavar="K",
                        help="cross-lingual pairs per query language in the significance test (default: the "
                             "preset's; -1: all pairs)")
    parser.add_argument("--sweep-only", action="store_true",
                        help="after a full run into the same --out: train and evaluate only the sweep's extra alphas, "
                             "read the main alphas' results from that run, write alpha_sweep.md / alpha_sweep_run.json")
    parser.add_argument("--skip-training", action="store_true",
                        help="only evaluate: every model must already be finished in <out>/models/")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep the trainer's checkpoints/ in the model folders (deleted after training by default)")
    parser.add_argument("--per-query", action="store_true", help="also save per_query.csv.gz for every run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def comparison_from_args(args: argparse.Namespace):
    """The :class:`~pyterrier_hybrid.experiments.comparison.Comparison` the options ask for; every value is checked
    here (a :class:`~pyterrier_hybrid.errors.UserError` names the first problem), nothing is built yet."""
    from .comparison import Comparison
    from .presets import Direction, get_preset, override_preset

    preset = get_preset(args.preset)
    directions = None if args.directions is None else [Direction.parse(text) for text in args.directions]
    preset = override_preset(
        preset, encoders=args.encoders, extra_systems=args.systems, debias=args.debias, seeds=args.seeds,
        directions=directions, langs=args.langs, sweep_alphas=args.sweep_alphas, max_queries=args.max_queries,
        answer_paragraphs_only=args.answer_paragraphs_only,
        significance_pairs_per_language=args.significance_pairs_per_language, max_steps=args.max_steps,
        batch_size=args.batch_size, main_systems=parse_trained(args.trained),
        training={name: value for name, value in (
            ("learning_rate", args.learning_rate), ("max_parallel_ids", args.max_parallel_ids),
            ("distill_base_weight", args.distill_base), ("distill_parallel_weight", args.distill_parallel),
            ("distill_target", args.distill_target), ("contrastive", False if args.no_contrastive else None),
            ("batching", args.batching), ("freeze_layers", args.freeze_layers), ("lora_rank", args.lora_rank))
            if value is not None},
    )
    # Relative to the working directory when it can be: the reports name their plots by this path.
    out = args.out if args.out is not None else Path(os.path.relpath(DEFAULT_RESULTS.absolute() / preset.name))
    comparison = Comparison(
        preset, out, base_model=args.base_model, train_langs=args.train_langs or None,
        skip_training=args.skip_training, keep_checkpoints=args.keep_checkpoints, per_query=args.per_query,
        progress=not args.no_progress, sweep_only=args.sweep_only,
    )
    comparison.check_inputs()
    return comparison


def parse_trained(texts: list[str] | None) -> tuple[tuple[str, float], ...] | None:
    """``["X-X-mono=1", "hybrid=0.5"]`` -> (("X-X-mono", 1.0), ("hybrid", 0.5))."""
    from .presets import PresetError

    if texts is None:
        return None
    systems = []
    for text in texts:
        label, sep, alpha = text.partition("=")
        try:
            systems.append((label.strip(), float(alpha)))
        except ValueError:
            sep = ""
        if not sep or not label.strip():
            raise PresetError(f"--trained expects LABEL=ALPHA such as hybrid=0.5, got {text!r}")
    return tuple(systems)


def run(args: argparse.Namespace) -> int:
    comparison = comparison_from_args(args)
    outcome = comparison.run()
    out = comparison.out
    for report in outcome["reports"]:
        print(f"\n{report['direction']}:\n\n{report['table_md']}")
    print(f"\nfull report: {outcome.get('report_path', Path(out) / 'paper_comparison.md')}")
    print(f"plots: {', '.join(str(p) for r in outcome['reports'] for p in r['plots'])}; "
          f"mAP heatmaps under {Path(out)}/<direction>/systems/")
    print(f"wall time: {outcome['wall_time_s'] / 60:.1f} min")
    return 0
