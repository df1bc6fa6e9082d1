"""Distillation from the frozen starting model: keep what the base model knows while training on a small collection.

Two terms, both a cosine distance between the student's embedding of a text and a fixed target computed by the
frozen starting model (the *teacher*, :mod:`pyterrier_hybrid.training.losses.teacher`):

- **base distillation** (``distill_base_weight``): every text of every contrastive batch is pulled towards the
  teacher's embedding of the same text (a self-anchor against forgetting,
  :mod:`pyterrier_hybrid.training.losses.distilled_mnrl`);
- **parallel distillation** (``distill_parallel_weight``, Reimers & Gurevych 2020, arXiv 2004.09813:
  student(translation) -> teacher(source)): each translation of a question and of its answer passage is pulled
  towards one language-agnostic target of its parallel group, the teacher's embedding of the English text
  (``distill_target="english"``; the group's mean where it has no English text) or the mean of the teacher's
  embeddings of the whole group (``"mean"``). These batches come from a second dataset of the training collection's
  parallel groups (:mod:`pyterrier_hybrid.training.sources.parallel_groups`), trained by sentence-transformers'
  multi-dataset training (one dataset per step, in turn with the contrastive batches,
  :class:`~pyterrier_hybrid.training.batching.shuffled.StepRoundRobinBatchSampler`), with
  :class:`~pyterrier_hybrid.training.losses.parallel_distillation.ParallelDistillationLoss`.

:class:`DistillationRegime` is built around the regime of the run's contrastive batches (hybrid or pooled): it loads
the parallel groups after that regime's examples (so that a source without groups fails before any model is
loaded), encodes the teacher table with the model as loaded, adds the teacher's indices to the contrastive datasets
(a ``label`` column) and gives the trainer both datasets and both losses. With ``contrastive=False`` the parallel
distillation batches train alone.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ..sources.parallel_groups import DistillationDataError, ParallelGroups, parallel_groups
from .base import TEXT_COLUMNS, BatchingRegime

if TYPE_CHECKING:
    from ..config import HybridTrainingConfig
    from ..losses.teacher import TeacherTable
    from ..speed.memory import MemoryPlan

logger = logging.getLogger(__name__)

__all__ = ["CONTRASTIVE_DATASET", "PARALLEL_DATASET", "DistillationRegime"]

#: Names of the datasets (and losses) of a multi-dataset run; the validation loss of one is ``eval_<name>_loss``.
CONTRASTIVE_DATASET = "pairs"
PARALLEL_DATASET = "parallel"


class DistillationRegime(BatchingRegime):
    """The distillation terms around the regime of the contrastive batches (see the module docstring)."""

    def __init__(self, config: HybridTrainingConfig, contrastive: BatchingRegime,
                 train_groups: ParallelGroups | None = None, eval_groups: ParallelGroups | None = None):
        super().__init__(config, contrastive.data, contrastive.train_data, contrastive.eval_data)
        self.contrastive = contrastive
        self.train_groups, self.eval_groups = train_groups, eval_groups
        self.table: TeacherTable | None = None
        self.parallel_train: Any = None
        self.parallel_eval: Any = None

    @classmethod
    def load(cls, config: HybridTrainingConfig,
             regimes: Mapping[str, type[BatchingRegime]]) -> DistillationRegime:
        """The contrastive regime ``config.batching`` names, then the parallel groups (parallel distillation)."""
        contrastive = regimes[config.batching].load(config, regimes)
        if not config.distill_parallel_weight > 0:
            return cls(config, contrastive)
        train_groups = parallel_groups(contrastive.train_data.examples, config.candidate_text)
        eval_groups = None
        if len(contrastive.eval_data):
            try:
                eval_groups = parallel_groups(contrastive.eval_data.examples, config.candidate_text)
            except DistillationDataError:
                logger.warning("the held-out articles have no parallel groups: no parallel distillation validation")
        return cls(config, contrastive, train_groups, eval_groups)

    @property
    def multi_dataset(self) -> bool:
        """Whether the parallel distillation batches take part (a dataset of their own)."""
        return self.train_groups is not None

    def build_datasets(self, model, prompts: tuple[str, str]) -> None:
        """The contrastive datasets, then the teacher table (the model as it is now is the frozen teacher) and its
        indices: a ``label`` column of per-text indices on the contrastive sets (base distillation) and the parallel
        distillation sets."""
        from ..losses.teacher import TeacherTable

        contrastive, config = self.contrastive, self.config
        contrastive.build_datasets(model, prompts)
        self.column_prompts = contrastive.column_prompts
        query_prompt, passage_prompt = prompts
        prompt_of = {"anchor": query_prompt, "positive": passage_prompt, "negative": passage_prompt}
        pair_sets = ([d for d in (contrastive.train_dataset, contrastive.eval_dataset) if d is not None]
                     if config.distill_base_weight else [])
        texts: list[str] = []
        for dataset in pair_sets:
            for column in TEXT_COLUMNS:
                if column in dataset.column_names:
                    texts += [prompt_of[column] + t for t in dataset[column]]
        for groups in (self.train_groups, self.eval_groups):
            if groups is not None:
                texts += [query_prompt + q for q in groups.questions] + [passage_prompt + p for p in groups.passages]
        table = self.table = TeacherTable.encode(model, texts, bf16=config.bf16)
        logger.info("teacher table: %d distinct texts", len(table))

        def with_labels(dataset):
            if dataset is None or not config.distill_base_weight:
                return dataset
            columns = [c for c in TEXT_COLUMNS if c in dataset.column_names]
            indices = np.stack([table.index([prompt_of[c] + t for t in dataset[c]]) for c in columns], axis=1)
            return dataset.add_column("label", indices.tolist())

        def parallel_set(groups: ParallelGroups | None):
            if groups is None:
                return None
            from datasets import Dataset

            own_q = table.index([query_prompt + q for q in groups.questions])
            own_p = table.index([passage_prompt + p for p in groups.passages])
            target_q, target_p = groups.target_rows(own_q, own_p, table, config.distill_target)
            labels = np.stack([target_q, target_p, own_q, own_p], axis=1)
            return Dataset.from_dict({"anchor": list(groups.questions), "positive": list(groups.passages),
                                      "label": labels.tolist()})

        contrastive.with_columns(with_labels)
        self.train_dataset, self.eval_dataset = contrastive.train_dataset, contrastive.eval_dataset
        self.parallel_train, self.parallel_eval = parallel_set(self.train_groups), parallel_set(self.eval_groups)

    @property
    def evaluates(self) -> bool:
        return self.eval_dataset is not None or self.parallel_eval is not None

    @property
    def eval_metric(self) -> str:
        """The validation loss that early stopping watches."""
        if not self.multi_dataset:
            return "eval_loss"
        name = CONTRASTIVE_DATASET if self.config.contrastive else PARALLEL_DATASET
        return f"eval_{name}_loss"

    def register_samplers(self, registry, args, world_size: int) -> None:
        """The contrastive regime's samplers; the parallel sets in seeded shuffles, one step at a time."""
        from ..batching.shuffled import ShuffledBatchSampler, StepRoundRobinBatchSampler

        self.contrastive.register_samplers(registry, args, world_size)
        if self.parallel_train is not None:
            registry.register_sampler(self.parallel_train, ShuffledBatchSampler, num_replicas=world_size)
        if self.parallel_eval is not None and self.eval_dataset is None:
            # The parallel held-out set is the only validation: batches as large as the training ones allow.
            args.per_device_eval_batch_size = max(1, min(self.config.batch_size, len(self.parallel_eval) // world_size))
            registry.register_sampler(self.parallel_eval, ShuffledBatchSampler, num_replicas=world_size,
                                      batches_per_epoch=self.config.max_eval_batches)
        if self.multi_dataset:
            args.multi_dataset_batch_sampler = partial(StepRoundRobinBatchSampler, num_replicas=world_size)

    def contrastive_loss(self, model, memory_plan: MemoryPlan):
        """The contrastive regime's loss, with the base distillation term when asked (InfoNCE as the memory plan
        chose it, plain or cached)."""
        config = self.config
        if not config.distill_base_weight:
            return self.contrastive.loss(model, memory_plan)
        from ..losses.distilled_mnrl import DistilledCachedMNRL, DistilledMNRL

        kwargs = {"scale": config.scale, "gather_across_devices": config.gather_across_devices}
        if memory_plan.loss == "cached-mnrl":
            return DistilledCachedMNRL(model, self.table, config.distill_base_weight,
                                       mini_batch_size=memory_plan.mini_batch_size, **kwargs)
        return DistilledMNRL(model, self.table, config.distill_base_weight, **kwargs)

    def loss(self, model, memory_plan: MemoryPlan):
        """The contrastive loss, or a dictionary by dataset name with the parallel distillation loss."""
        contrastive_loss = self.contrastive_loss(model, memory_plan)
        if not self.multi_dataset:
            return contrastive_loss
        from ..losses.parallel_distillation import ParallelDistillationLoss

        config = self.config
        parallel_loss = ParallelDistillationLoss(model, self.table, config.distill_parallel_weight,
                                                 config.distill_base_weight)
        losses = {CONTRASTIVE_DATASET: contrastive_loss} if config.contrastive else {}
        return {**losses, PARALLEL_DATASET: parallel_loss}

    def trainer_datasets(self) -> tuple[Any, Any]:
        """The contrastive datasets, or dictionaries by dataset name when parallel distillation takes part."""
        if not self.multi_dataset:
            return self.train_dataset, self.eval_dataset
        from datasets import DatasetDict

        train = {CONTRASTIVE_DATASET: self.train_dataset} if self.config.contrastive else {}
        train[PARALLEL_DATASET] = self.parallel_train
        evaluation = None
        if self.eval_dataset is not None:
            evaluation = DatasetDict({CONTRASTIVE_DATASET: self.eval_dataset})
        elif self.parallel_eval is not None:
            evaluation = DatasetDict({PARALLEL_DATASET: self.parallel_eval})
        return DatasetDict(train), evaluation
