"""Hybrid batch training of a sentence-transformers bi-encoder (arXiv 2408.10536).

``train(config)`` fine-tunes ``config.base_model`` on parallel examples with InfoNCE over in-batch negatives
(MultipleNegativesRankingLoss, or its cached variant for large batches), batches drawn by
:class:`~pyterrier_hybrid.training.batching.hybrid.HybridBatchSampler` (or as the run's batching regime says,
:mod:`pyterrier_hybrid.training.regimes`), and writes to ``config.output_dir``:

- the trained model, a normal sentence-transformers folder (``SentenceTransformer(output_dir)`` loads it, prompts
  included);
- ``training_config.json``: the full configuration, the seed and facts of the run (resolved base model, example
  counts, steps, versions);
- ``loss_curve.csv`` / ``loss_curve.png``: training (and validation) loss by step;
- ``README.md``: a short model card;
- ``checkpoints/checkpoint-N``: checkpoints every ``save_steps`` steps; ``train(config, resume=True)`` continues
  the last one and reaches the same weights as an uninterrupted run (the batches are a function of seed, epoch and
  step, and the trainer restores the optimizer, scheduler and random states). A checkpoint whose save was cut off
  (no weights, no ``trainer_state.json``, a temporary file inside) is skipped: the run resumes from the newest
  complete one, with a warning.

The texts given to the trainer are raw; the prompts ("query: " / "passage: ") are added once, by the trainer's data
collator, through the ``prompts`` training argument.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..provenance import versions
from .base_model import DEFAULT_PASSAGE_PROMPT, DEFAULT_QUERY_PROMPT, load_base_model, training_prompts
from .checkpoints import check_output_dir, incomplete_checkpoint_reason
from .config import CONFIG_FILE, HybridTrainingConfig
from .outputs import LOSS_CURVE_CSV, LOSS_CURVE_PNG, write_loss_curve, write_model_card
from .regimes import BatchingRegime, load_regime
from .speed import memory
from .speed.memory import EncoderShape, MemoryPlan, plan_batch_memory, text_sample
from .speed.trainable import (
    add_lora_adapter,
    freeze_lower_layers,
    freeze_word_embeddings,
    lora_resuming_trainer,
    merge_lora_adapter,
    uses_lora,
)
from .trainer_arguments import CHECKPOINT_DIR, training_arguments

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from .sources.data import TrainingData

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_DIR",
    "DEFAULT_PASSAGE_PROMPT",
    "DEFAULT_QUERY_PROMPT",
    "LOSS_CURVE_CSV",
    "LOSS_CURVE_PNG",
    "PreparedTraining",
    "freeze_lower_layers",
    "freeze_word_embeddings",
    "incomplete_checkpoint_reason",
    "plan_memory",
    "prepare_training",
    "train",
    "training_prompts",
    "write_loss_curve",
    "write_model_card",
]

#: The libraries whose versions a training record lists (besides Python and this package).
TRAINING_PACKAGES = ("sentence-transformers", "transformers", "torch", "accelerate")


def plan_memory(
    model: SentenceTransformer, config: HybridTrainingConfig, dataset: Dataset, column_prompts: dict[str, str]
) -> MemoryPlan:
    """The loss and mini-batch this run trains with (see :mod:`pyterrier_hybrid.training.speed.memory`): the memory
    model's estimate of a step's peak for ``config`` against ``config.max_memory_gb`` or the memory available."""
    import torch

    texts = text_sample(dataset, seed=config.seed)  # a streamed dataset's texts are read for a sample only
    columns = [c for c in ("anchor", "positive", "negative") if c in texts]
    lengths = memory.padded_lengths(model, [texts[c] for c in columns], [column_prompts.get(c, "") for c in columns],
                                    seed=config.seed)
    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        resident = torch.cuda.memory_allocated()
        budget = (config.max_memory_gb * memory.GIB if config.max_memory_gb is not None
                  else resident + memory.SAFETY_FRACTION * free)
        source = "--max-memory-gb" if config.max_memory_gb is not None else "GPU memory free"
    else:
        resident = memory.current_resident_bytes()
        budget, source = memory.memory_budget_bytes(config.max_memory_gb, resident)
    return plan_batch_memory(
        EncoderShape.of(model), lengths, config.batch_size, bf16=config.bf16, loss=config.loss,
        mini_batch_size=config.mini_batch_size, resident_bytes=resident, budget_bytes=budget, budget_source=source,
    )


def _callbacks(registry, train_dataset, config: HybridTrainingConfig) -> list:
    from transformers import EarlyStoppingCallback, ProgressCallback, TrainerCallback

    class LossProgressCallback(ProgressCallback):
        """The progress bar (steps/s from tqdm) with the latest training loss and learning rate as postfix,
        instead of one printed dict per logging step."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or self.training_bar is None or not logs:
                return
            if "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs.get('learning_rate', 0):.2e}")
            elif "eval_loss" in logs:
                self.training_bar.write(f"step {state.global_step}: validation loss {logs['eval_loss']:.4f}")

    class SamplerEpochCallback(TrainerCallback):
        """Hands the epoch to the hybrid sampler at every epoch start. The trainer does it too, except when resuming
        under distributed training, where the sampler sits under two wrappers it does not look through."""

        def on_epoch_begin(self, args, state, control, **kwargs):
            sampler = registry.sampler_for(train_dataset)
            if sampler is not None:
                sampler.set_epoch(int(state.epoch or 0))

    callbacks: list = [SamplerEpochCallback()]
    callbacks.append(LossProgressCallback())
    if config.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    return callbacks


# --- the run ----------------------------------------------------------------------------------------------------------


@dataclass
class PreparedTraining:
    """A training run ready to start: the sentence-transformers trainer wired with the hybrid sampler, and what it
    was built from. ``run()`` trains and writes the outputs; the parts are exposed for inspection and tests."""

    config: HybridTrainingConfig
    trainer: Any  # SentenceTransformerTrainer
    sampler_factory: Any  # HybridBatchSamplerFactory
    data: TrainingData
    train_data: TrainingData
    eval_data: TrainingData
    train_dataset: Any  # datasets.Dataset
    eval_dataset: Any | None
    base_model: str
    prompts: tuple[str, str]
    checkpoint: Path | None
    world_size: int
    memory_plan: MemoryPlan
    #: undo the training-only changes of the model (fast dropout, length buckets) before it is saved
    restorers: tuple[Callable[[], None], ...] = ()

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def train_sampler(self):
        """The hybrid sampler of the training dataloader (built by the trainer when training starts)."""
        return self.sampler_factory.sampler_for(self.train_dataset)

    @property
    def steps_per_epoch(self) -> int:
        """Optimisation steps of one epoch (of every dataset in turn when the run trains several)."""
        return len(self.trainer.get_train_dataloader()) // self.world_size

    def run(self) -> Path:
        trainer, config, out = self.trainer, self.config, self.output_dir
        try:
            trainer.train(resume_from_checkpoint=str(self.checkpoint) if self.checkpoint is not None else None)
        finally:
            for restore in self.restorers:  # the saved model is the stock architecture
                restore()
        if uses_lora(config):  # the saved model is a plain one: adapters folded into the weights
            merge_lora_adapter(trainer.model)
        if trainer.is_world_process_zero():
            trainer.model.save(str(out))
            loss_rows = write_loss_curve(trainer.state.log_history, out)
            train_losses = [r["loss"] for r in loss_rows if "loss" in r]
            eval_losses = [r["eval_loss"] for r in loss_rows if "eval_loss" in r]
            run = {
                "status": "finished",
                "seed": config.seed,
                "base_model": self.base_model,
                "languages": list(self.data.languages),
                "train_examples": len(self.train_data),
                "train_parallel_ids": self.train_data.num_parallel_ids,
                "eval_examples": len(self.eval_data),
                "eval_batch_size": trainer.args.per_device_eval_batch_size if self.eval_dataset is not None else None,
                "world_size": self.world_size,
                "bf16_autocast": trainer.args.bf16,  # config.bf16 unless the device would emulate it
                "global_steps": trainer.state.global_step,
                "steps_per_epoch": self.steps_per_epoch,
                "resumed_from": str(self.checkpoint) if self.checkpoint is not None else None,
                "query_prompt": self.prompts[0],
                "passage_prompt": self.prompts[1],
                "final_training_loss": train_losses[-1] if train_losses else None,
                "best_validation_loss": min(eval_losses) if eval_losses else None,
                "best_checkpoint": trainer.state.best_model_checkpoint,
                "memory_plan": self.memory_plan.to_dict(),
                "versions": versions(TRAINING_PACKAGES),
            }
            config.save(out / CONFIG_FILE, **run)
            write_model_card(out, config, run)
        trainer.accelerator.wait_for_everyone()
        return out


# --- preparing a run: model, arguments, samplers, loss, trainer ----------------------------------------------

def prepare_model_for_training(model: SentenceTransformer, config: HybridTrainingConfig) -> list[Callable[[], None]]:
    """LoRA adapters (after the teacher's embeddings: the teacher is the model without adapters) and the
    training-only changes of the model; returns what undoes the latter before the model is saved."""
    from .speed.fast_dropout import install_fast_dropout
    from .speed.length_buckets import install_length_buckets

    if uses_lora(config):
        trainable = add_lora_adapter(model, config)
        logger.info("LoRA rank %d on %s: %d trainable weights", config.lora_rank, ",".join(config.lora_targets),
                    trainable)
    restorers = []
    if config.fast_dropout and model.device.type == "cpu":
        restorers.append(install_fast_dropout(model))
    if config.length_buckets > 1:
        restorers.append(install_length_buckets(model, config.length_buckets))
    return restorers


def register_batch_samplers(config: HybridTrainingConfig, regime: BatchingRegime, args):
    """One sampler registry for every dataset the regime gives the trainer, handed to ``args``; returns it."""
    from .batching.registry import HybridBatchSamplerFactory

    world_size = max(1, args.world_size)
    registry = HybridBatchSamplerFactory(alpha=config.alpha, num_replicas=world_size)
    regime.register_samplers(registry, args, world_size)
    args.batch_sampler = registry
    return registry


def build_trainer(config: HybridTrainingConfig, model: SentenceTransformer, args, regime: BatchingRegime, registry,
                  loss, callbacks: Sequence[Any]):
    """The sentence-transformers trainer (resuming LoRA adapters where there are any) with the run's callbacks."""
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from transformers import ProgressCallback

    trainer_train, trainer_eval = regime.trainer_datasets()
    trainer_class = SentenceTransformerTrainer
    if uses_lora(config):
        trainer_class = lora_resuming_trainer(trainer_class)
    trainer = trainer_class(
        model=model, args=args, train_dataset=trainer_train, eval_dataset=trainer_eval, loss=loss
    )
    trainer.remove_callback(ProgressCallback)
    for callback in _callbacks(registry, regime.train_dataset, config) + list(callbacks):
        trainer.add_callback(callback)
    return trainer


def autocast_as_supported(config: HybridTrainingConfig) -> HybridTrainingConfig:
    """``config`` with ``bf16`` off where the training device has no native bfloat16 matrix products.

    A setting, not a recipe change: bfloat16 autocast is asked for speed, and an emulated one is far slower than
    float32 (see :mod:`pyterrier_hybrid.precision`). The saved configuration keeps what was asked; the run record
    says what was done (``bf16_autocast``).
    """
    from ..precision import native_bf16_available, training_device

    device = training_device()
    if not config.bf16 or native_bf16_available(device):
        return config
    logger.warning("bf16 autocast asked, but this %s has no native bfloat16 matrix instructions (AVX512-BF16 or "
                   "AMX), where it is far slower than float32: training in float32", device.type.upper())
    return replace(config, bf16=False)


def prepare_training(
    config: HybridTrainingConfig, *, resume: bool = False, callbacks: Sequence[Any] = (), regime: str | None = None
) -> PreparedTraining:
    """Load the data and the model and build the trainer for ``config`` (see :func:`train`). ``regime`` names the
    batching regime of :data:`~pyterrier_hybrid.training.regimes.REGIMES` to train with (default: the one
    :func:`~pyterrier_hybrid.training.regimes.pick_regime` picks for ``config``)."""
    out = Path(config.output_dir)
    checkpoint = check_output_dir(out, config, resume)
    requested, config = config, autocast_as_supported(config)
    batching = load_regime(config, regime)  # the data first: it fails before a model is built or loaded
    base_model, model = load_base_model(config)
    prompts = training_prompts(model, config)
    batching.build_datasets(model, prompts)  # before the training-only changes: a teacher encodes with the model
    restorers = prepare_model_for_training(model, config)
    args = training_arguments(config, evaluates=batching.evaluates, eval_metric=batching.eval_metric,
                              prompts=batching.column_prompts)
    registry = register_batch_samplers(config, batching, args)
    if args.process_index == 0:
        out.mkdir(parents=True, exist_ok=True)
    memory_plan = plan_memory(model, config, batching.train_dataset, batching.column_prompts)
    if memory_plan.switched:
        logger.warning("memory: %s", memory_plan.reason)
    else:
        logger.info("memory: %s", memory_plan.reason)
    if args.process_index == 0 and checkpoint is None:
        requested.save(out / CONFIG_FILE, status="started", seed=config.seed, base_model=base_model,
                       bf16_autocast=config.bf16, memory_plan=memory_plan.to_dict())
    loss = batching.loss(model, memory_plan)
    trainer = build_trainer(config, model, args, batching, registry, loss, callbacks)
    return PreparedTraining(
        config=requested, trainer=trainer, sampler_factory=registry, data=batching.data,
        train_data=batching.train_data, eval_data=batching.eval_data, train_dataset=batching.train_dataset,
        eval_dataset=batching.eval_dataset, base_model=base_model, prompts=prompts, checkpoint=checkpoint,
        world_size=max(1, args.world_size), memory_plan=memory_plan, restorers=tuple(restorers),
    )


def train(config: HybridTrainingConfig, *, resume: bool = False, callbacks: Sequence[Any] = ()) -> Path:
    """Train a bi-encoder as ``config`` says and return the output folder (see the module docstring).

    ``resume`` continues from the last checkpoint in ``output_dir/checkpoints`` (the configuration must be the same);
    ``callbacks`` are extra ``transformers.TrainerCallback`` objects.
    """
    return prepare_training(config, resume=resume, callbacks=callbacks).run()
