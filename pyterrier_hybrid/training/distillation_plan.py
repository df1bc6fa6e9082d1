"""How a training run distils: which datasets, losses and samplers the distillation terms add to the trainer.

:class:`DistillationPlan` is decided from the configuration and the training examples before any model is loaded
(so that a source without parallel groups fails early); :meth:`DistillationPlan.build` encodes the teacher table with
the model as loaded and returns :class:`DistillationDatasets`, which gives the trainer its datasets, losses and the
validation metric. Without distillation it hands back the plain contrastive set-up unchanged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from .config import HybridTrainingConfig
from .data import TrainingData
from .distillation import (
    DistillationDataError,
    ParallelGroups,
    TeacherTable,
    parallel_groups,
)

logger = logging.getLogger(__name__)

__all__ = ["CONTRASTIVE_DATASET", "PARALLEL_DATASET", "DistillationDatasets", "DistillationPlan"]

#: Names of the datasets (and losses) of a multi-dataset run; the validation loss of one is ``eval_<name>_loss``.
CONTRASTIVE_DATASET = "pairs"
PARALLEL_DATASET = "parallel"
TEXT_COLUMNS = ("anchor", "positive", "negative")


@dataclass(frozen=True)
class DistillationPlan:
    config: HybridTrainingConfig
    train_groups: ParallelGroups | None = None
    eval_groups: ParallelGroups | None = None

    @classmethod
    def of(cls, config: HybridTrainingConfig, train_data: TrainingData, eval_data: TrainingData) -> DistillationPlan:
        if not config.distill_parallel_weight > 0:
            return cls(config)
        train_groups = parallel_groups(train_data.examples, config.candidate_text)
        eval_groups = None
        if len(eval_data):
            try:
                eval_groups = parallel_groups(eval_data.examples, config.candidate_text)
            except DistillationDataError:
                logger.warning("the held-out articles have no parallel groups: no parallel distillation validation")
        return cls(config, train_groups, eval_groups)

    @property
    def multi_dataset(self) -> bool:
        return self.train_groups is not None

    def build(self, model, prompts: tuple[str, str], train_dataset, eval_dataset) -> DistillationDatasets:
        """Encode the teacher table (the model as it is now is the frozen teacher) and attach its indices to the
        datasets: a ``label`` column of per-text indices on the contrastive sets (base distillation) and the
        parallel distillation sets."""
        config = self.config
        if not config.distills:
            return DistillationDatasets(self, None, train_dataset, eval_dataset)
        query_prompt, passage_prompt = prompts
        prompt_of = {"anchor": query_prompt, "positive": passage_prompt, "negative": passage_prompt}
        pair_sets = [d for d in (train_dataset, eval_dataset) if d is not None] if config.distill_base_weight else []
        texts: list[str] = []
        for dataset in pair_sets:
            for column in TEXT_COLUMNS:
                if column in dataset.column_names:
                    texts += [prompt_of[column] + t for t in dataset[column]]
        for groups in (self.train_groups, self.eval_groups):
            if groups is not None:
                texts += [query_prompt + q for q in groups.questions] + [passage_prompt + p for p in groups.passages]
        table = TeacherTable.encode(model, texts, bf16=config.bf16)
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

        return DistillationDatasets(self, table, with_labels(train_dataset), with_labels(eval_dataset),
                                    parallel_set(self.train_groups), parallel_set(self.eval_groups))


@dataclass
class DistillationDatasets:
    plan: DistillationPlan
    table: TeacherTable | None
    train_dataset: Any
    eval_dataset: Any | None
    parallel_train: Any | None = None
    parallel_eval: Any | None = None

    @property
    def config(self) -> HybridTrainingConfig:
        return self.plan.config

    @property
    def has_eval(self) -> bool:
        return self.eval_dataset is not None or self.parallel_eval is not None

    @property
    def eval_metric(self) -> str:
        """The validation loss that early stopping watches."""
        if not self.plan.multi_dataset:
            return "eval_loss"
        name = CONTRASTIVE_DATASET if self.config.contrastive else PARALLEL_DATASET
        return f"eval_{name}_loss"

    def register(self, factory, world_size: int, max_eval_batches: int | None, args) -> None:
        """Tell the batch-sampler factory how to batch the parallel sets (seeded shuffles, one step at a time)."""
        from .batching import ShuffledBatchSampler

        if self.parallel_train is not None:
            factory.register_sampler(self.parallel_train, ShuffledBatchSampler, num_replicas=world_size)
        if self.parallel_eval is not None and self.eval_dataset is None:
            # The parallel held-out set is the only validation: batches as large as the training ones allow.
            args.per_device_eval_batch_size = max(1, min(self.config.batch_size, len(self.parallel_eval) // world_size))
            factory.register_sampler(self.parallel_eval, ShuffledBatchSampler, num_replicas=world_size,
                                     batches_per_epoch=max_eval_batches)

    def contrastive_loss(self, model, memory_plan, **kwargs):
        """InfoNCE as the memory plan chose it (plain or cached), with the base distillation term when asked."""
        from sentence_transformers.sentence_transformer.losses import (
            CachedMultipleNegativesRankingLoss,
            MultipleNegativesRankingLoss,
        )

        from .distillation import DistilledCachedMNRL, DistilledMNRL

        cached = memory_plan.loss == "cached-mnrl"
        if cached:
            kwargs["mini_batch_size"] = memory_plan.mini_batch_size
        if self.config.distill_base_weight:
            cls = DistilledCachedMNRL if cached else DistilledMNRL
            return cls(model, self.table, self.config.distill_base_weight, **kwargs)
        cls = CachedMultipleNegativesRankingLoss if cached else MultipleNegativesRankingLoss
        return cls(model, **kwargs)

    def trainer_inputs(self, model, train_dataset, eval_dataset, contrastive_loss, args,
                       world_size: int) -> tuple[Any, Any, Any]:
        """(train dataset, eval dataset, loss) for the sentence-transformers trainer: the contrastive ones given, or
        dictionaries by dataset name with the round-robin sampler over whole steps when parallel distillation takes
        part."""
        if not self.plan.multi_dataset:
            return train_dataset, eval_dataset, contrastive_loss
        from datasets import DatasetDict

        from .batching import StepRoundRobinBatchSampler
        from .distillation import ParallelDistillationLoss

        config = self.config
        parallel_loss = ParallelDistillationLoss(model, self.table, config.distill_parallel_weight,
                                                 config.distill_base_weight)
        train, losses = {}, {}
        if config.contrastive:
            train[CONTRASTIVE_DATASET], losses[CONTRASTIVE_DATASET] = self.train_dataset, contrastive_loss
        train[PARALLEL_DATASET], losses[PARALLEL_DATASET] = self.parallel_train, parallel_loss
        evaluation = None
        if self.eval_dataset is not None:
            evaluation = DatasetDict({CONTRASTIVE_DATASET: self.eval_dataset})
        elif self.parallel_eval is not None:
            evaluation = DatasetDict({PARALLEL_DATASET: self.parallel_eval})
        args.multi_dataset_batch_sampler = partial(StepRoundRobinBatchSampler, num_replicas=world_size)
        return DatasetDict(train), evaluation, losses


def without_distillation(config: HybridTrainingConfig) -> HybridTrainingConfig:
    """The same run with every distillation term off."""
    return replace(config, distill_base_weight=0.0, distill_parallel_weight=0.0, contrastive=True)
