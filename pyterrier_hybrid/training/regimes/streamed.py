"""Hybrid batches from streamed ``irds:`` sources and from mixtures of sources
(:mod:`pyterrier_hybrid.training.sources.mixture`).

Every source of ``--train`` is loaded before the model (a source that cannot fill its batches fails first); the
datasets are built when the samplers are registered, which need the number of ranks: a streamed source's dataset
holds keys whose texts are read when a batch is (:mod:`pyterrier_hybrid.training.sources.streaming`), batched by
:class:`~pyterrier_hybrid.training.batching.streamed.StreamedHybridBatchSampler`; a LAReQA or JSONL source's by the
in-memory :class:`~pyterrier_hybrid.training.batching.hybrid.HybridBatchSampler`. A mixture gives the trainer a
``DatasetDict`` with one dataset per source and sentence-transformers' proportional or round-robin sampler over
them. The validation loss is the first source's. The loss is InfoNCE over in-batch negatives.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..config import TrainingConfigError
from ..sources.mixture import MixtureError, TrainingSources
from .base import BatchingRegime, column_prompts, infonce_loss

if TYPE_CHECKING:
    from ..config import HybridTrainingConfig
    from ..speed.memory import MemoryPlan

logger = logging.getLogger(__name__)

__all__ = ["StreamedSourcesRegime"]


class StreamedSourcesRegime(BatchingRegime):
    """Hybrid batches of streamed sources and of mixtures (see the module docstring)."""

    def __init__(self, config: HybridTrainingConfig, sources: TrainingSources):
        super().__init__(config, *sources.summaries())
        self.sources = sources

    @classmethod
    def load(cls, config: HybridTrainingConfig,
             regimes: Mapping[str, type[BatchingRegime]]) -> StreamedSourcesRegime:
        if config.distills or not config.contrastive or config.batching == "pooled":
            raise TrainingConfigError(
                "distillation and pooled batches train on the parallel groups of a LAReQA or JSONL source; a streamed "
                "irds: source or a mixture of sources has none: drop those options or train on lareqa/... or a .jsonl "
                "file")
        return cls(config, TrainingSources.load(config))

    def build_datasets(self, model, prompts: tuple[str, str]) -> None:
        # The datasets are built with the samplers (register_samplers), which need the number of ranks.
        self.prompts = prompts
        self.column_prompts = column_prompts(self.sources.columns, prompts)

    @property
    def evaluates(self) -> bool:
        return len(self.eval_data) > 0

    def register_samplers(self, registry, args, world_size: int) -> None:
        if self.sources.mixed and world_size > 1:
            # sentence-transformers' mixture samplers hand consecutive batches to different ranks, which would
            # split one source's global batch across sources.
            raise MixtureError("a mixture of training sources trains on one device only (several were given)")
        self.train_dataset = self._train_dataset(registry)
        eval_batch_size = self._register_validation(registry, world_size)
        if self.eval_dataset is not None:
            args.per_device_eval_batch_size = eval_batch_size
        if self.sources.mixed:
            args.multi_dataset_batch_sampler = self._multi_dataset_batch_sampler()

    def _train_dataset(self, registry):
        """Each source's training dataset registered with its sampler; a mixture's is a DatasetDict of them."""
        from ..batching.pairs import build_training_dataset
        from ..batching.streamed import StreamedHybridBatchSampler

        train_parts = {}
        for source in self.sources.sources:
            if source.streamed:
                dataset = source.data.dataset(source.train)
                registry.register(dataset, source.train, sampler_class=StreamedHybridBatchSampler)
            else:
                dataset, rows = build_training_dataset(source.train, self.config.candidate_text, self.prompts)
                registry.register(dataset, rows)
            train_parts[source.name] = dataset
        if not self.sources.mixed:
            return next(iter(train_parts.values()))
        from datasets import DatasetDict

        return DatasetDict(train_parts)

    def _register_validation(self, registry, world_size: int) -> int | None:
        """Set :attr:`eval_dataset` to the first source's held-out split, registered with its fixed validation
        batches; returns their per-device size (None without a held-out split)."""
        from ..batching.pairs import build_training_dataset
        from ..batching.streamed import StreamedHybridBatchSampler
        from ..batching.validation import validation_batch_size, validation_batches

        config, first = self.config, self.sources.sources[0]
        if first.held_out is None:
            return None
        if first.streamed:
            rows = first.held_out
            queries = len(np.unique(rows.queries))
            size = min(config.batch_size, queries // world_size)
            if size < 2:
                raise MixtureError(f"the held-out split ({config.eval_fraction:.0%} of the queries of {first.spec}: "
                                   f"{queries}) is too small for validation batches of 2 or more pairs: raise "
                                   "--eval-fraction or set it to 0")
            batches = max(1, queries // (size * world_size))
            if config.max_eval_batches is not None:
                batches = min(batches, config.max_eval_batches)
            eval_dataset = first.data.dataset(rows)
            registry.register(eval_dataset, rows, sampler_class=StreamedHybridBatchSampler, batches_per_epoch=batches)
        else:
            eval_dataset, rows = build_training_dataset(first.held_out, config.candidate_text, self.prompts)
            size = validation_batch_size(eval_dataset, rows, config, world_size)
            batches = validation_batches(rows, size, world_size, config.max_eval_batches)
            registry.register(eval_dataset, rows, batches_per_epoch=batches)
        logger.info("validation on %s: %d batches of %d pairs per evaluation", first.spec, batches, size)
        self.eval_dataset = eval_dataset
        return size

    def _multi_dataset_batch_sampler(self):
        """The sentence-transformers enum of ``config.mixture``."""
        from sentence_transformers.base.sampler import MultiDatasetBatchSamplers

        return {"proportional": MultiDatasetBatchSamplers.PROPORTIONAL,
                "round-robin": MultiDatasetBatchSamplers.ROUND_ROBIN}[self.config.mixture]

    def loss(self, model, memory_plan: MemoryPlan):
        return infonce_loss(self.config, model, memory_plan)
