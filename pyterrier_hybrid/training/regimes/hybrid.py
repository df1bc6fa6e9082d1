"""Hybrid batches of in-memory pairs (arXiv 2408.10536): each batch monolingual with probability ``alpha``, else
cross-lingual; alpha 1 gives the X-X-mono batches, alpha 0 the X-Y ones. The examples come from a LAReQA or JSONL
source, split by article; the batches are drawn by
:class:`~pyterrier_hybrid.training.batching.hybrid.HybridBatchSampler`, the loss is InfoNCE over in-batch negatives,
and the held-out articles give fixed validation batches (:mod:`pyterrier_hybrid.training.batching.validation`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .base import BatchingRegime, column_prompts, in_memory_examples, infonce_loss

if TYPE_CHECKING:
    from ..config import HybridTrainingConfig
    from ..speed.memory import MemoryPlan

__all__ = ["HybridRegime"]


class HybridRegime(BatchingRegime):
    """Hybrid batches of pairs held in memory (see the module docstring)."""

    @classmethod
    def load(cls, config: HybridTrainingConfig, regimes: Mapping[str, type[BatchingRegime]]) -> HybridRegime:
        from ..batching.rows import ParallelRows, check_feasible

        data, train_data, eval_data = in_memory_examples(config)
        if config.contrastive:  # training that has no contrastive batches has no batches of pairs to fill
            check_feasible(ParallelRows.from_examples(train_data.examples), config.alpha, config.batch_size)
        return cls(config, data, train_data, eval_data)

    def build_datasets(self, model, prompts: tuple[str, str]) -> None:
        from ..batching.pairs import build_training_dataset

        config = self.config
        self.train_dataset, self.train_rows = build_training_dataset(self.train_data, config.candidate_text, prompts)
        self.column_prompts = column_prompts(self.train_dataset.column_names, prompts)
        self.eval_rows = None
        if len(self.eval_data) > 0 and config.contrastive:
            self.eval_dataset, self.eval_rows = build_training_dataset(self.eval_data, config.candidate_text, prompts)

    def register_samplers(self, registry, args, world_size: int) -> None:
        from ..batching.validation import register_validation_batches

        registry.register(self.train_dataset, self.train_rows)
        if self.eval_dataset is not None:
            args.per_device_eval_batch_size = register_validation_batches(
                registry, self.eval_dataset, self.eval_rows, self.config, world_size)

    def loss(self, model, memory_plan: MemoryPlan):
        return infonce_loss(self.config, model, memory_plan)
