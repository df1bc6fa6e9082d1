"""The sentence-transformers training arguments of a run, built in one place: which configuration fields they come
from (:data:`CONFIG_ARGUMENTS`: the fields of :class:`~pyterrier_hybrid.training.config.HybridTrainingConfig` that
are trainer arguments, with the few whose name or form differs: ``warmup`` is ``warmup_steps``, ``epochs`` is
``num_train_epochs``, ``fused_optimizer`` picks ``optim``, ...), and which ones the run wires to its own parts
(:data:`RUN_ARGUMENTS`: the hybrid batch sampler, the prompts, the checkpoint folder, validation and early stopping).
:func:`training_arguments` builds them. Nothing here imports transformers until it is needed.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from .config import HybridTrainingConfig

__all__ = ["CHECKPOINT_DIR", "CONFIG_ARGUMENTS", "RUN_ARGUMENTS", "TRAINER_DEFAULTS", "training_arguments"]

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

#: Training arguments the run sets from its own parts -> why.
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

#: Training arguments the run chooses.
TRAINER_DEFAULTS: dict[str, Any] = {"lr_scheduler_type": "linear", "report_to": "none"}


def training_arguments(
    config: HybridTrainingConfig, *, evaluates: bool, eval_metric: str, prompts: dict[str, str]
) -> SentenceTransformerTrainingArguments:
    """The trainer's arguments for ``config``: the run's defaults, then the configuration fields of
    :data:`CONFIG_ARGUMENTS` and the run's own wiring (the batch sampler is registered
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
    return SentenceTransformerTrainingArguments(**{**TRAINER_DEFAULTS, **from_config, **wired})
