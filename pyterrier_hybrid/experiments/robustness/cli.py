"""``pyterrier-hybrid robustness``: every system on clean and perturbed queries on LAReQA, or with ``--domain-shift``
in-collection against cross-collection training on held-out articles (:mod:`.study`, :mod:`.domain_shift`).

    pyterrier-hybrid robustness --systems bm25 tiny=/tmp/tiny --langs de,en,zh --kinds typo,adversarial \\
        --edits 1 2 3 --out results/robustness
    pyterrier-hybrid robustness --domain-shift --collection lareqa/xquad-r --langs ar de en th zh \\
        --in-collection hybrid=runs/xquad-hybrid --cross hybrid=runs/mlqa-hybrid --out results/domain-shift

Every option is checked before a model is built; a bad one is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ...cli_args import add_answer_paragraphs_option, add_language_option

ROBUSTNESS_PRESETS = ("cpu", "full")  # kept in step with config.PRESETS by a test; no heavy import here
KIND_NAMES = ("typo", "keyboard", "diacritics", "romanize", "traditional", "codeswitch", "adversarial")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--systems", nargs="+", default=["bm25"], metavar="NAME=MODEL",
                        help="bm25, default, or a sentence-transformers folder / hub id, optionally named NAME=MODEL")
    parser.add_argument("--collection", default="lareqa/xquad-r", help="lareqa/xquad-r or lareqa/mlqa-r")
    add_language_option(parser, "--langs", default=None, help="languages (default: all of the collection)")
    parser.add_argument("--preset", default="cpu", metavar="{" + ",".join(ROBUSTNESS_PRESETS) + "}",
                        help="subsample sizes: cpu = 50 questions per language (20 for adversarial), full = all "
                             "(100 for adversarial); --max-queries-per-lang and --adversarial-max-queries-per-lang "
                             "override it")
    parser.add_argument("--max-queries-per-lang", type=int, default=None,
                        help="at most N questions per language, the same parallel questions in every language "
                             "(deterministic given --seed); 0 = all")
    parser.add_argument("--adversarial-max-queries-per-lang", type=int, default=None,
                        help="subsample of the adversarial runs (the white-box search is expensive); 0 = all")
    add_answer_paragraphs_option(parser, "--max-queries-per-lang")
    parser.add_argument("--kinds", default=",".join(KIND_NAMES), help=f"comma-separated, among {','.join(KIND_NAMES)}")
    parser.add_argument("--edits", nargs="+", type=int, default=[1, 2, 3], help="strengths of typo kinds")
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.5, 1.0],
                        help="strengths of the word-level kinds (fraction of the changeable words)")
    parser.add_argument("--codeswitch-to", default="en",
                        help="language(s) code-switched into, comma-separated; 'all' = every evaluated language")
    parser.add_argument("--adversarial-candidates", type=int, default=32,
                        help="candidate edits scored per query and step of the adversarial search")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations and of the subsample")
    parser.add_argument("--candidate-text", choices=["sentence", "sentence+context"], default="sentence+context")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("results") / "robustness", help="output folder")
    shift = parser.add_argument_group("domain shift")
    shift.add_argument("--domain-shift", action="store_true", help="compare cross- and in-collection training")
    shift.add_argument("--cross", action="append", default=[], metavar="NAME=MODEL",
                       help="model trained on the other collection (repeatable)")
    shift.add_argument("--in-collection", action="append", default=[], metavar="NAME=MODEL",
                       help="model trained on the evaluated collection with a held-out split (repeatable)")
    shift.add_argument("--held-out-articles", type=Path, default=None,
                       help="file with one held-out article per line (default: reproduced from each in-collection "
                            "model's training_config.json)")


def _subsample(value: int | None, preset_value: int | None) -> int | None:
    """An option's subsample size: the preset's when not given, None (all) for 0."""
    if value is None:
        return preset_value
    return None if value == 0 else value


def config_from_args(args: argparse.Namespace):
    """The :class:`~.config.RobustnessConfig` or :class:`~.domain_shift.DomainShiftConfig` the options ask for,
    checked (a :class:`~pyterrier_hybrid.errors.UserError` names the first problem); nothing is built yet."""
    from .config import PRESETS, RobustnessConfig, RobustnessError
    from .domain_shift import DomainShiftConfig, read_articles

    if args.preset not in PRESETS:
        raise RobustnessError(f"unknown preset {args.preset!r}; expected one of {', '.join(sorted(PRESETS))}")
    preset = PRESETS[args.preset]
    max_queries = _subsample(args.max_queries_per_lang, preset["max_queries_per_lang"])
    if args.domain_shift:
        config = DomainShiftConfig(
            in_collection=tuple(args.in_collection), cross=tuple(args.cross), collection=args.collection,
            langs=args.langs, max_queries_per_lang=max_queries, answer_paragraphs_only=args.answer_paragraphs_only,
            held_out_articles=None if args.held_out_articles is None else read_articles(args.held_out_articles),
            seed=args.seed, candidate_text=args.candidate_text, precision=args.precision,
            batch_size=args.batch_size, preset=args.preset,
        )
    else:
        config = RobustnessConfig(
            systems=tuple(args.systems), collection=args.collection, langs=args.langs,
            max_queries_per_lang=max_queries, answer_paragraphs_only=args.answer_paragraphs_only,
            adversarial_max_queries_per_lang=_subsample(args.adversarial_max_queries_per_lang,
                                                        preset["adversarial_max_queries_per_lang"]),
            kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()), edits=tuple(args.edits),
            fractions=tuple(args.fractions), codeswitch_to=args.codeswitch_to,
            adversarial_candidates=args.adversarial_candidates, seed=args.seed, candidate_text=args.candidate_text,
            precision=args.precision, batch_size=args.batch_size, preset=args.preset,
        )
    config.check()
    return config


def run(args: argparse.Namespace) -> int:
    import warnings

    from .domain_shift import DomainShiftConfig, run_domain_shift
    from .study import run_robustness

    config = config_from_args(args)
    with warnings.catch_warnings():
        # Subsampled settings may hold questions whose answer is not in a candidate language: expected, not news.
        warnings.filterwarnings("ignore", message=".*queries without a relevant candidate.*")
        if isinstance(config, DomainShiftConfig):
            outcome = run_domain_shift(config, args.out)
        else:
            outcome = run_robustness(config, args.out)
    print(outcome["markdown"])
    print(f"results in {args.out}")
    return 0
