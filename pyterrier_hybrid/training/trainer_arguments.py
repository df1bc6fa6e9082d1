"""The sentence-transformers training arguments of a run: which configuration fields they come from, which ones the
run sets itself, and every other option of ``SentenceTransformerTrainingArguments`` passed through as it is given.

- :data:`CONFIG_ARGUMENTS`: the fields of :class:`~pyterrier_hybrid.training.config.HybridTrainingConfig` that are
  trainer arguments, with the few whose name or form differs (``warmup`` is ``warmup_steps``, ``epochs`` is
  ``num_train_epochs``, ``fused_optimizer`` picks ``optim``, ...);
- :data:`RUN_ARGUMENTS`: the arguments the run wires to its own parts (the hybrid batch sampler, the prompts, the
  checkpoint folder, validation and early stopping), with the reason;
- ``config.trainer_arguments``: any other argument (``gradient_accumulation_steps``, ``max_grad_norm``,
  ``lr_scheduler_type``, ...), so that a new option of transformers needs no copy here. Those of the two tables are
  refused (:func:`trainer_argument_problems`); on the command line they are read by ``transformers.HfArgumentParser``
  (:func:`parse_trainer_options`).

:func:`training_arguments` builds the arguments from the three. Nothing here imports transformers until it is needed,
so that the configuration and the command's ``--help`` stay fast.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from .config import HybridTrainingConfig

__all__ = ["CHECKPOINT_DIR", "CONFIG_ARGUMENTS", "RUN_ARGUMENTS", "TRAINER_DEFAULTS", "parse_trainer_options",
           "trainer_argument_names", "trainer_argument_problems", "training_arguments"]

#: The trainer's own output folder (checkpoints), below the run's output folder.
CHECKPOINT_DIR = "checkpoints"

#: Configuration field -> (training argument, how its value is given; None: as it is).
CONFIG_ARGUMENTS: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    "batch_size": ("per_device_train_batch_size", None),
    "learning_rate": ("learning_rate", None),
    "weight_decay": ("weight_decay", None),
    "fused_optimizer": ("optim", lambda fused: "adamw_torch_fused" if fused else "adamw_torch"),
    "warmup": ("warmup_steps", None),  # transformers reads a value below 1 as a fraction of the steps
    "max_steps": ("max_steps", lambda steps: -1 if steps is None else steps),
    "epochs": ("num_train_epochs", None),
    "seed": ("seed", None),
    "bf16": ("bf16", None),
    "logging_steps": ("logging_steps", None),
    "save_steps": ("save_steps", None),
    "save_total_limit": ("save_total_limit", None),
}

#: Training arguments the run sets from its own parts -> why they cannot be passed through.
RUN_ARGUMENTS: dict[str, str] = {
    "output_dir": f"checkpoints go to output_dir/{CHECKPOINT_DIR}",
    "batch_sampler": "the hybrid batch sampler draws the batches (batching, alpha)",
    "multi_dataset_batch_sampler": "the run picks it for a mixture of sources (mixture) or distillation batches",
    "prompts": "set from query_prompt / passage_prompt",
    "eval_strategy": "validation runs every eval_steps when eval_fraction > 0",
    "eval_steps": "set from eval_steps when there is a validation split",
    "per_device_eval_batch_size": "the validation batches are sized to the held-out split",
    "load_best_model_at_end": "set from early_stopping_patience",
    "metric_for_best_model": "early stopping watches the validation loss",
    "greater_is_better": "early stopping watches the validation loss",
    "save_strategy": "checkpoints are saved every save_steps",
    "use_cpu": "the run trains on the GPU when there is one, else on the CPU",
    "disable_tqdm": "the progress bar shows the latest loss",
    "resume_from_checkpoint": "resume=True (--resume) continues the last complete checkpoint",
    "warmup_ratio": "warmup takes a fraction of the steps (below 1) as well as a number of steps",
}

#: Training arguments the run chooses that ``trainer_arguments`` may change.
TRAINER_DEFAULTS: dict[str, Any] = {"lr_scheduler_type": "linear", "report_to": "none"}


def _set_by_the_run() -> dict[str, str]:
    """Every training argument the run sets itself -> why it cannot be passed through."""
    from_config = {argument: f"set from {field}" for field, (argument, _) in CONFIG_ARGUMENTS.items()}
    return {**from_config, **RUN_ARGUMENTS}


def trainer_argument_names() -> frozenset[str]:
    """The options of ``SentenceTransformerTrainingArguments`` (imports transformers)."""
    import dataclasses

    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    return frozenset(f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init)


def trainer_argument_problems(arguments: Mapping[str, Any]) -> list[str]:
    """What is wrong with passing ``arguments`` through to the trainer: an unknown name, one the run sets itself, a
    value that cannot be saved in training_config.json."""
    if not arguments:
        return []
    try:
        json.dumps(dict(arguments))
    except (TypeError, ValueError):
        return ["trainer_arguments must be a mapping of names to JSON values (saved in training_config.json)"]
    known, set_by_the_run = trainer_argument_names(), _set_by_the_run()
    problems = []
    for name in arguments:
        if name in set_by_the_run:
            problems.append(f"trainer argument {name} is set by the run ({set_by_the_run[name]})")
        elif name not in known:
            problems.append(f"unknown trainer argument {name!r}: not an option of sentence-transformers' "
                            "SentenceTransformerTrainingArguments")
    return problems


def parse_trainer_options(options: list[str]) -> dict[str, Any]:
    """The training arguments given on the command line (``--gradient_accumulation_steps 2`` or
    ``--gradient-accumulation-steps 2``), read by ``transformers.HfArgumentParser``: only those given, by name.
    An option it does not know, a bad value or an argument the run sets itself raises
    :class:`~pyterrier_hybrid.errors.UserError`."""
    if not options:
        return {}
    import dataclasses

    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from transformers import HfArgumentParser

    class TrainerOptionParser(HfArgumentParser):
        def error(self, message: str):
            raise UserError(f"trainer option: {message}")

    parser = TrainerOptionParser(SentenceTransformerTrainingArguments, add_help=False, allow_abbrev=False)
    # Every option starts out "not given", so that only the options given are recorded.
    not_given = object()
    names = [f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments)]
    given, unknown = parser.parse_known_args(options, argparse.Namespace(**dict.fromkeys(names, not_given)))
    if unknown:
        raise UserError(f"unrecognized arguments: {' '.join(unknown)} (neither an option of this command nor of "
                        "sentence-transformers' SentenceTransformerTrainingArguments)")
    arguments = {name: value for name, value in vars(given).items() if value is not not_given}
    problems = trainer_argument_problems(arguments)
    if problems:
        raise UserError("; ".join(problems))
    return arguments


def training_arguments(
    config: HybridTrainingConfig, *, evaluates: bool, eval_metric: str, prompts: dict[str, str]
) -> SentenceTransformerTrainingArguments:
    """The trainer's arguments for ``config``: the run's defaults, ``config.trainer_arguments`` over them, then the
    configuration fields of :data:`CONFIG_ARGUMENTS` and the run's own wiring (the batch sampler is registered
    later, when the datasets are built). ``evaluates``: there is a validation set; ``eval_metric``: the validation
    loss early stopping watches; ``prompts``: the prompt of each text column."""
    import torch
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from_config = {argument: getattr(config, field) if convert is None else convert(getattr(config, field))
                   for field, (argument, convert) in CONFIG_ARGUMENTS.items()}
    early_stopping = config.early_stopping_patience is not None
    wired = {
        "output_dir": str(Path(config.output_dir) / CHECKPOINT_DIR),
        "use_cpu": not torch.cuda.is_available(),
        "save_strategy": "steps",
        "eval_strategy": "steps" if evaluates else "no",
        "eval_steps": config.eval_steps if evaluates else None,
        "load_best_model_at_end": early_stopping,
        "metric_for_best_model": eval_metric if early_stopping else None,
        "greater_is_better": False if early_stopping else None,
        "prompts": prompts or None,
        "disable_tqdm": False,
    }
    return SentenceTransformerTrainingArguments(**{**TRAINER_DEFAULTS, **config.trainer_arguments, **from_config,
                                                   **wired})
