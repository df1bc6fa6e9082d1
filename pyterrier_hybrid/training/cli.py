"""``pyterrier-hybrid train``: hybrid batch training from the command line.

    pyterrier-hybrid train --base-model default --train lareqa/mlqa-r --alpha 0.5 --output-dir runs/e5-hybrid
    pyterrier-hybrid train ... --bf16 --freeze-word-embeddings --max-seq-length 128   # practical on a few CPU cores
    pyterrier-hybrid train ... --resume                                              # continue an interrupted run

Every option maps to a field of :class:`~pyterrier_hybrid.training.config.HybridTrainingConfig` (see its
documentation); defaults are the paper's. Heavy libraries are imported by ``run`` only, so that ``--help`` is fast,
and what can be checked without a model (the configuration, the base model folder, the training source, its
languages and release files) is checked before the base model is loaded or built (:func:`check_request`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

from ..cli_args import add_language_option
from ..errors import UserError
from .config import BATCHINGS, DISTILL_TARGETS, LOSSES, MIXTURES, HybridTrainingConfig
from .recipes import RECIPES, apply_recipe
from .sources.data import IRDS_PREFIX, LAREQA_PREFIX
from .trainer_arguments import parse_trainer_options

__all__ = ["add_arguments", "check_request", "config_from_args", "keep_trainer_options", "run"]

_DEFAULTS = HybridTrainingConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pyterrier-hybrid train``, by group; any other option is read as a sentence-transformers
    training argument (:func:`keep_trainer_options`)."""
    for add_group in (_add_data_options, _add_recipe_options, _add_distillation_options, _add_speed_options,
                      _add_output_options):
        add_group(parser, _DEFAULTS)
    keep_trainer_options(parser)


def _add_data_options(parser: argparse.ArgumentParser, d: HybridTrainingConfig) -> None:
    """The model to start from and the training data."""
    data = parser.add_argument_group("model and data")
    data.add_argument("--base-model", default=None, metavar="MODEL",
                      help="model to fine-tune: 'default' (embedded multilingual-e5-small), a sentence-transformers "
                           "folder or a hub id (default: default)")
    data.add_argument("--train", action="append", default=None, metavar="SOURCE",
                      help="training data: lareqa/mlqa-r, lareqa/xquad-r, a .jsonl file of parallel examples or "
                           "irds:LANG=DATASET_ID,... (streamed); give it several times to mix sources (--mixture) "
                           f"(default: {d.train})")
    add_language_option(data, "--train-langs", default=None,
                        help="languages to keep, 'de en' or 'de,en' (both query and passage in it; default: all)")
    data.add_argument("--candidate-text", choices=("sentence", "sentence+context"), default=d.candidate_text,
                      help=f"passage text: the sentence, or sentence + ' ' + paragraph (default: {d.candidate_text})")
    data.add_argument("--hard-negatives", action="store_true",
                      help="add one hard negative per pair (LAReQA: another sentence of the same paragraph)")
    data.add_argument("--max-queries", type=int, default=None, metavar="N",
                      help="keep the first N judged queries of each irds: source (default: all)")
    data.add_argument("--max-parallel-ids", type=int, default=None, metavar="N",
                      help="keep the examples of N parallel ids of each LAReQA or JSONL source (drawn with a fixed "
                           "seed), every language of them: a quick run on a slice (default: all)")
    data.add_argument("--mixture", choices=MIXTURES, default=d.mixture,
                      help="with several --train sources, each batch comes from one: proportional (at random, in "
                           "proportion to their sizes) or round-robin (in turn) (default: %(default)s)")
    data.add_argument("--query-prompt", default=None, help="query prefix (default: the model's, else 'query: ')")
    data.add_argument("--passage-prompt", default=None,
                      help="passage prefix (default: the model's, else 'passage: ')")
    data.add_argument("--eval-fraction", type=float, default=d.eval_fraction,
                      help="fraction of articles held out for the validation loss, 0 for none "
                           f"(default: {d.eval_fraction})")


def _add_recipe_options(parser: argparse.ArgumentParser, d: HybridTrainingConfig) -> None:
    """The recipe: batches, optimiser, loss."""
    recipe = parser.add_argument_group("training recipe")
    recipe.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                        help="start from a named recipe (paper-cpu: batch 100 triplets with a same-paragraph hard "
                             "negative, bf16, early stopping, sized for 2 CPU cores; distill-cpu: parallel "
                             "distillation towards each group's mean, 60 batches); options given explicitly win")
    recipe.add_argument("--batching", choices=BATCHINGS, default=d.batching,
                        help="hybrid: pairs drawn with --alpha; pooled: whole parallel groups per batch, every "
                             f"translation of the answer a positive (default: {d.batching})")
    for options, field, kind, text in (
        (("--alpha",), "alpha", float, "probability of a monolingual batch, else cross-lingual"),
        (("--batch-size",), "batch_size", int, "pairs per batch per device"),
        (("--lr", "--learning-rate"), "learning_rate", float, "AdamW learning rate"),
        (("--weight-decay",), "weight_decay", float, "AdamW weight decay"),
        (("--warmup",), "warmup", float, "linear warmup: fraction of the steps if < 1, else steps"),
    ):
        _add_defaulted_option(recipe, d, options, field, kind, text)
    recipe.add_argument("--max-steps", type=int, default=None, help="optimisation steps (overrides --epochs)")
    _add_defaulted_option(recipe, d, ("--epochs",), "epochs", float, "epochs")
    _add_defaulted_option(recipe, d, ("--seed",), "seed", int, "random seed")
    recipe.add_argument("--loss", choices=LOSSES, default=d.loss,
                        help="mnrl: MultipleNegativesRankingLoss; cached-mnrl: the same computed in mini-batches "
                             f"for batches larger than memory allows (default: {d.loss})")
    _add_defaulted_option(recipe, d, ("--mini-batch-size",), "mini_batch_size", int, "mini-batch size of cached-mnrl")
    _add_defaulted_option(recipe, d, ("--scale",), "scale", float, "softmax scale over cosine similarities")
    recipe.add_argument("--early-stopping-patience", type=int, default=None, metavar="EVALUATIONS",
                        help="stop after this many validations without improvement and keep the best checkpoint")
    recipe.add_argument("--gather-across-devices", action="store_true",
                        help="with several devices, use the other devices' passages as negatives too")


def _add_defaulted_option(group, d: HybridTrainingConfig, options: tuple[str, ...], field: str, kind: type,
                          text: str) -> None:
    """An option that sets configuration field ``field``, its default the configuration's, named in its help."""
    default = getattr(d, field)
    group.add_argument(*options, dest=field, type=kind, default=default, help=f"{text} (default: {default})")


def _add_distillation_options(parser: argparse.ArgumentParser, d: HybridTrainingConfig) -> None:
    """Distillation from the starting model."""
    distill = parser.add_argument_group("distillation from the starting model (frozen teacher)")
    distill.add_argument("--distill-base", dest="distill_base_weight", type=float, default=d.distill_base_weight,
                         metavar="WEIGHT", help="weight of the cosine distance between the student's and the starting "
                         "model's embedding of every text of a batch (default: 0, off)")
    distill.add_argument("--distill-parallel", dest="distill_parallel_weight", type=float,
                         default=d.distill_parallel_weight, metavar="WEIGHT",
                         help="weight of parallel distillation batches, taking turns with the contrastive ones: every "
                         "translation of a question and of its answer pulled to one target of its group (default: 0)")
    distill.add_argument("--distill-target", choices=DISTILL_TARGETS, default=d.distill_target,
                         help="target of --distill-parallel: the starting model's embedding of the group's English "
                         f"text (the group mean where none) or the mean over the group (default: {d.distill_target})")
    distill.add_argument("--no-contrastive", dest="contrastive", action="store_false",
                         help="train the parallel distillation batches alone (no InfoNCE batches)")


def _add_speed_options(parser: argparse.ArgumentParser, d: HybridTrainingConfig) -> None:
    """What makes a step faster or smaller without changing what it learns (mostly)."""
    speed = parser.add_argument_group("speed and memory")
    speed.add_argument("--max-seq-length", type=int, default=None, help="token limit (default: the model's)")
    speed.add_argument("--bf16", action="store_true",
                       help="bfloat16 autocast (fast on recent CPUs and GPUs; float32, with a warning, where the "
                            "processor has no native bfloat16 instructions)")
    speed.add_argument("--freeze-word-embeddings", action="store_true",
                       help="do not train the word-embedding matrix (less memory and time on CPU)")
    speed.add_argument("--freeze-layers", type=int, default=d.freeze_layers, metavar="N",
                       help="do not train the embeddings and the lowest N transformer layers (default: 0)")
    speed.add_argument("--lora-rank", type=int, default=d.lora_rank, metavar="R",
                       help="train LoRA adapters of rank R instead of the weights, merged into them on save "
                            "(needs peft; default: 0, no adapters)")
    speed.add_argument("--lora-alpha", type=float, default=d.lora_alpha, metavar="A",
                       help="LoRA scaling numerator, the update scaled by A/R (default: twice the rank)")
    speed.add_argument("--lora-targets", default=",".join(d.lora_targets), metavar="NAMES",
                       help="comma-separated names of the linear layers to adapt "
                            f"(default: {','.join(d.lora_targets)})")
    speed.add_argument("--no-fast-dropout", dest="fast_dropout", action="store_false",
                       help="torch's own dropout and attention on CPU (the default draws dropout masks 15 bits at a "
                            "time: same rate, another random stream, a faster step)")
    speed.add_argument("--length-buckets", type=int, default=d.length_buckets, metavar="N",
                       help="run each column of a training batch as N groups of similar length, each padded to its "
                            f"own longest text (same loss; 1: one padded block; default: {d.length_buckets})")
    speed.add_argument("--max-memory-gb", type=float, default=None, metavar="GIB",
                       help="memory the run may use (default: 80%% of what is available); a batch estimated not to "
                            "fit trains with cached-mnrl (same gradients) in mini-batches that fit")


def _add_output_options(parser: argparse.ArgumentParser, d: HybridTrainingConfig) -> None:
    """Outputs, checkpoints, validation and logging."""
    output = parser.add_argument_group("output and checkpoints")
    output.add_argument("--output-dir", "-o", default=d.output_dir,
                        help=f"output folder: model, training_config.json, loss curve, README.md, checkpoints/ "
                             f"(default: {d.output_dir})")
    output.add_argument("--save-steps", type=int, default=d.save_steps,
                        help=f"checkpoint every N steps (default: {d.save_steps})")
    output.add_argument("--save-total-limit", type=int, default=d.save_total_limit,
                        help=f"checkpoints kept (default: {d.save_total_limit})")
    output.add_argument("--eval-steps", type=int, default=d.eval_steps,
                        help=f"validation every N steps (default: {d.eval_steps})")
    output.add_argument("--max-eval-batches", type=int, default=d.max_eval_batches,
                        help="at most N validation batches per evaluation (default: about every held-out pair once; "
                             "held-out pairs grow with the square of the languages)")
    output.add_argument("--logging-steps", type=int, default=d.logging_steps,
                        help=f"record the loss every N steps (default: {d.logging_steps})")
    output.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output-dir from its last checkpoint")


def keep_trainer_options(parser: argparse.ArgumentParser) -> None:
    """Let ``parser`` keep the options it does not declare in ``args.trainer_options`` instead of refusing them:
    :func:`config_from_args` reads them as sentence-transformers training arguments (with transformers'
    HfArgumentParser, which is too slow to import for ``--help``) and refuses the unknown ones, as argparse would."""
    parser.add_argument_group(  # for --help only
        "sentence-transformers training arguments",
        "any other option of SentenceTransformerTrainingArguments, e.g. --gradient_accumulation_steps 2 or "
        "--max-grad-norm 0.5, goes to the trainer as given and is recorded in training_config.json; those set by "
        "the options above or by the run itself (output folder, batch sampler, prompts, validation) are refused")
    parser.set_defaults(trainer_options=[])
    parse_declared = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        namespace, undeclared = parse_declared(args, namespace)
        namespace.trainer_options = [*namespace.trainer_options, *undeclared]
        namespace.given_options = _given_options(parser, sys.argv[1:] if args is None else list(args))
        return namespace, []

    parser.parse_known_args = parse_known_args


def _given_options(parser: argparse.ArgumentParser, argv: list[str]) -> frozenset[str]:
    """The destinations of the options written on the command line, whatever their value: with ``--recipe`` they
    win over the recipe even where they equal the configuration's default (``--recipe paper-cpu --loss mnrl``)."""
    words = {word.split("=", 1)[0] for word in argv if word.startswith("-")}
    return frozenset(action.dest for action in parser._actions if words & set(action.option_strings))


def config_from_args(args: argparse.Namespace) -> HybridTrainingConfig:
    """The configuration ``args`` ask for: an option whose name is a configuration field gives that field (the
    others keep their defaults), a few in another form; the undeclared options are trainer arguments."""
    values = {f.name: getattr(args, f.name) for f in fields(HybridTrainingConfig) if hasattr(args, f.name)}
    values.update(
        base_model=args.base_model if args.base_model not in (None, "default") else None,
        train=args.train[0] if args.train else _DEFAULTS.train,
        extra_train=tuple(args.train[1:]) if args.train else (),
        train_langs=tuple(args.train_langs) if args.train_langs else None,
        lora_targets=tuple(name.strip() for name in args.lora_targets.split(",") if name.strip()),
        trainer_arguments=parse_trainer_options(args.trainer_options),
    )
    config = HybridTrainingConfig(**values)
    if getattr(args, "recipe", None):
        return apply_recipe(args.recipe, config, given=getattr(args, "given_options", ()))
    return config


def check_request(args: argparse.Namespace) -> HybridTrainingConfig:
    """The configuration ``args`` ask for, after checking what needs no model: the training source and its
    languages (LAReQA: also the release files' checksums) first, since an unknown language is the real problem even
    where it makes other settings inconsistent; then the configuration and the base model folder. Raises
    :class:`~pyterrier_hybrid.errors.UserError` naming the problem, before the base model is loaded (or the
    embedded default built)."""
    from ..datasets import ReleaseFiles

    parse_trainer_options(args.trainer_options)  # a bad option first, as argparse reports its own
    sources = [str(s) for s in (args.train or [_DEFAULTS.train])]
    mixed = len(sources) > 1
    for source in sources:
        in_mixture = " in the mixture" if mixed else ""
        if source.startswith(LAREQA_PREFIX):
            ReleaseFiles().verify(source[len(LAREQA_PREFIX):], args.train_langs)
        elif source.startswith(IRDS_PREFIX):
            from .sources.streaming import check_irds_source

            check_irds_source(source, args.train_langs, args.hard_negatives)
        elif not Path(source).is_file():
            raise UserError(f"training source {source!r}{in_mixture} is neither lareqa/mlqa-r, lareqa/xquad-r, an "
                            "existing .jsonl file nor irds:LANG=DATASET_ID,...")
    config = config_from_args(args)
    if config.max_queries is not None and not any(s.startswith(IRDS_PREFIX) for s in sources):
        raise UserError("--max-queries caps irds: training sources, and no --train source is one")
    if config.max_parallel_ids is not None and all(s.startswith(IRDS_PREFIX) for s in sources):
        raise UserError("--max-parallel-ids cuts LAReQA and JSONL training sources, and no --train source is one "
                        "(--max-queries caps irds: sources)")
    if config.base_model is not None:
        from ..models import resolve_model

        resolve_model(config.base_model)  # a local folder must exist and hold a model
    return config


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` say; prints the output folder and returns 0. A bad configuration or unusable data raises
    :class:`~pyterrier_hybrid.errors.UserError` (the command prints it as one line and exits 2)."""
    config = check_request(args)

    from .trainer import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = train(config, resume=args.resume)
    except UserError:
        raise
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        # Problems of the data found while loading it (the sampler's SamplerDataError is a ValueError), or of the
        # output folder (checkpoints of another run, nothing to resume).
        raise UserError(str(e)) from e
    print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m pyterrier_hybrid.training.cli``)."""
    parser = argparse.ArgumentParser(prog="pyterrier-hybrid train", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UserError as e:
        print(f"{parser.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
