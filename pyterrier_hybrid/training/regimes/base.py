"""What a batching regime is: how a run's batches are made, from its data to its loss.

A regime is one object, built once from the configuration by :meth:`BatchingRegime.load` (before any model, so
that data that cannot fill the batches asked for fails first). The trainer then asks it, in this order:

1. :meth:`~BatchingRegime.build_datasets` (the model as loaded, the prompts): the trainer's datasets of raw texts
   and the prompt of each text column (:attr:`~BatchingRegime.column_prompts`); a regime that encodes texts with
   the starting model (distillation's teacher) does it here, before any training-only change of the model;
2. :attr:`~BatchingRegime.evaluates` and :attr:`~BatchingRegime.eval_metric`, for the training arguments;
3. :meth:`~BatchingRegime.register_samplers`: every dataset it gives the trainer registered with its sampler in the
   run's sampler registry, and the training arguments the samplers need (validation batch size, multi-dataset
   sampler);
4. :meth:`~BatchingRegime.loss` (the model, the memory plan) and :meth:`~BatchingRegime.trainer_datasets`: what
   the sentence-transformers trainer gets.

:attr:`~BatchingRegime.train_dataset` is the dataset of the contrastive batches (the one the memory plan samples
texts from and whose sampler the run reports). The regimes, and how one is picked for a configuration, are listed in
:mod:`pyterrier_hybrid.training.regimes`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import HybridTrainingConfig
    from ..sources.data import TrainingData
    from ..speed.memory import MemoryPlan

__all__ = ["BatchingRegime", "column_prompts", "in_memory_examples", "infonce_loss"]

#: The text columns of the trainer's datasets, in the order the loss reads them.
TEXT_COLUMNS = ("anchor", "positive", "negative")


def column_prompts(columns, prompts: tuple[str, str]) -> dict[str, str]:
    """The prompt the collator prepends to each text column among ``columns`` (the dataset texts carry none)."""
    query_prompt, passage_prompt = prompts
    return {
        column: prompt
        for column, prompt in (("anchor", query_prompt), ("positive", passage_prompt), ("negative", passage_prompt))
        if prompt and column in columns
    }


def in_memory_examples(config: HybridTrainingConfig) -> tuple[TrainingData, TrainingData, TrainingData]:
    """(all, training, held-out) examples of a LAReQA or JSONL source, the held-out articles drawn with the seed."""
    from ..sources.data import configured_training_data, split_by_article

    data = configured_training_data(config)
    train_data, eval_data = split_by_article(data, config.eval_fraction, config.seed)
    return data, train_data, eval_data


def infonce_loss(config: HybridTrainingConfig, model, memory_plan: MemoryPlan):
    """InfoNCE over in-batch negatives as the memory plan chose it: MultipleNegativesRankingLoss, or its cached
    variant in the plan's mini-batches (same loss and gradients)."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    kwargs = {"scale": config.scale, "gather_across_devices": config.gather_across_devices}
    if memory_plan.loss == "cached-mnrl":
        return CachedMultipleNegativesRankingLoss(model, mini_batch_size=memory_plan.mini_batch_size, **kwargs)
    return MultipleNegativesRankingLoss(model, **kwargs)


class BatchingRegime:
    """How the batches of a run are made (see the module docstring). ``data``, ``train_data`` and ``eval_data``
    describe the examples for the run's record (their languages, sizes and parallel ids)."""

    #: The validation loss early stopping watches.
    eval_metric: str = "eval_loss"

    def __init__(self, config: HybridTrainingConfig, data, train_data, eval_data):
        self.config = config
        self.data, self.train_data, self.eval_data = data, train_data, eval_data
        self.train_dataset: Any = None
        self.eval_dataset: Any = None
        self.column_prompts: dict[str, str] = {}

    @classmethod
    def load(cls, config: HybridTrainingConfig, regimes: Mapping[str, type[BatchingRegime]]) -> BatchingRegime:
        """The regime of ``config`` with its examples loaded and checked. ``regimes`` is the table it was picked
        from, for a regime built around another one."""
        raise NotImplementedError

    def build_datasets(self, model, prompts: tuple[str, str]) -> None:
        """Build the trainer's datasets of raw texts and set :attr:`column_prompts`."""
        raise NotImplementedError

    @property
    def evaluates(self) -> bool:
        """Whether the run has a validation set."""
        return self.eval_dataset is not None

    def with_columns(self, add: Callable[[Any], Any]) -> None:
        """Replace each dataset of the contrastive batches by ``add(dataset)``: the same rows with more columns
        (distillation's teacher indices), before the samplers are registered."""
        self.train_dataset = add(self.train_dataset)
        self.eval_dataset = add(self.eval_dataset)

    def register_samplers(self, registry, args, world_size: int) -> None:
        """Register every dataset the trainer gets with its sampler in ``registry`` (the run's
        :class:`~pyterrier_hybrid.training.batching.registry.HybridBatchSamplerFactory`) and set the training
        arguments the samplers need."""
        raise NotImplementedError

    def loss(self, model, memory_plan: MemoryPlan):
        """The loss the trainer gets (a dictionary by dataset name for several datasets)."""
        raise NotImplementedError

    def trainer_datasets(self) -> tuple[Any, Any]:
        """(train, eval or None) datasets the trainer gets."""
        return self.train_dataset, self.eval_dataset
