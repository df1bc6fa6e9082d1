"""Pooled multi-positive batches: train for the multilingual pool itself.

In the multilingual setting a question's answer exists in every language of the pool and all of them must rank above
every other sentence. Hybrid batches show one positive per question, in one language. A pooled batch instead holds
whole parallel groups (one row per language: the question and its answer sentence in that language,
:mod:`pyterrier_hybrid.training.sources.parallel_groups`), drawn by
:class:`~pyterrier_hybrid.training.batching.pooled.PooledBatchSampler`; every translation of the answer is a positive
of every translation of the question, and every sentence of the other groups, in every language, is a negative
(:mod:`pyterrier_hybrid.training.losses.multi_positive`). The datasets have one row per (parallel group, language)
and the group's code as ``label``.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .base import BatchingRegime, column_prompts, in_memory_examples

if TYPE_CHECKING:
    from ..config import HybridTrainingConfig
    from ..sources.parallel_groups import ParallelGroups
    from ..speed.memory import MemoryPlan

__all__ = ["PooledRegime"]


def pooled_dataset(groups: ParallelGroups):
    """One row per (parallel group, language): the question, its answer passage, the group's code as ``label``."""
    from datasets import Dataset

    from ..batching.rows import text_codes

    return Dataset.from_dict({"anchor": list(groups.questions), "positive": list(groups.passages),
                              "label": text_codes(groups.parallel_ids).tolist()})


class PooledRegime(BatchingRegime):
    """Batches of whole parallel groups (see the module docstring)."""

    def __init__(self, config: HybridTrainingConfig, data, train_data, eval_data, train_groups: ParallelGroups,
                 eval_groups: ParallelGroups | None):
        super().__init__(config, data, train_data, eval_data)
        self.train_groups, self.eval_groups = train_groups, eval_groups

    @classmethod
    def load(cls, config: HybridTrainingConfig, regimes: Mapping[str, type[BatchingRegime]]) -> PooledRegime:
        """Raises :class:`~pyterrier_hybrid.training.batching.rows.PooledDataError` when the training examples
        have no parallel groups or a group has more rows (languages) than a batch."""
        from ..batching.rows import PooledDataError
        from ..sources.parallel_groups import DistillationDataError, parallel_groups

        data, train_data, eval_data = in_memory_examples(config)
        try:
            train_groups = parallel_groups(train_data.examples, config.candidate_text)
        except DistillationDataError as e:
            raise PooledDataError(str(e).replace("parallel distillation", "pooled batching")) from None
        largest = max(Counter(train_groups.parallel_ids).values())
        if largest > config.batch_size:
            raise PooledDataError(f"a parallel group has {largest} rows (languages) but a pooled batch holds "
                                  f"{config.batch_size}: raise the batch size to at least {largest}")
        eval_groups = None
        if len(eval_data):
            try:
                eval_groups = parallel_groups(eval_data.examples, config.candidate_text)
            except DistillationDataError:
                eval_groups = None
        return cls(config, data, train_data, eval_data, train_groups, eval_groups)

    def build_datasets(self, model, prompts: tuple[str, str]) -> None:
        self.train_dataset = pooled_dataset(self.train_groups)
        self.column_prompts = column_prompts(self.train_dataset.column_names, prompts)
        if self.eval_groups is not None and self.config.contrastive:
            self.eval_dataset = pooled_dataset(self.eval_groups)

    def register_samplers(self, registry, args, world_size: int) -> None:
        self._register(registry, self.train_dataset, self.train_groups, world_size)
        if self.eval_dataset is not None:
            args.per_device_eval_batch_size = self.config.batch_size
            self._register(registry, self.eval_dataset, self.eval_groups, world_size,
                           batches_per_epoch=self.config.max_eval_batches)

    @staticmethod
    def _register(registry, dataset, groups: ParallelGroups, world_size: int, **kwargs) -> None:
        from ..batching.pooled import PooledBatchSampler
        from ..batching.rows import text_codes

        registry.register_sampler(dataset, PooledBatchSampler, groups=dataset["label"],
                                  passage_keys=text_codes(groups.passages), num_replicas=world_size, **kwargs)

    def loss(self, model, memory_plan: MemoryPlan):
        """The multi-positive loss, or its cached variant in the memory plan's mini-batches."""
        from ..losses.multi_positive import CachedMultiPositiveRankingLoss, MultiPositiveRankingLoss

        if memory_plan.loss == "mnrl":
            return MultiPositiveRankingLoss(model, scale=self.config.scale)
        return CachedMultiPositiveRankingLoss(model, scale=self.config.scale,
                                              mini_batch_size=memory_plan.mini_batch_size)
