"""The training sources of a run that streams (``irds:`` sources) or mixes several sources (the paper's mixture).

``train --train SRC1 --train SRC2 --mixture proportional|round-robin`` trains on several sources at once: the
trainer gets a ``datasets.DatasetDict`` with one dataset per source, every batch is drawn from one source by
sentence-transformers' ``MultiDatasetBatchSamplers.PROPORTIONAL`` (sources at random, in proportion to their
batches per epoch) or ``ROUND_ROBIN`` (in turn, until the smallest source has given one epoch), and within a source
the batch follows the hybrid rules (monolingual with probability alpha, else cross-lingual). A source is anything
``--train`` takes: LAReQA and JSONL sources in memory (:mod:`pyterrier_hybrid.training.sources.data`), ``irds:``
sources streamed (:mod:`pyterrier_hybrid.training.sources.streaming`). The validation loss of a mixture is the first
source's (its held-out split), so that early stopping watches one number.

:class:`TrainingSources` loads every source before the model is built (a source that cannot fill its batches fails
first); the streamed regime (:mod:`pyterrier_hybrid.training.regimes.streamed`) builds their datasets and registers
each with its sampler.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UserError
from ..config import HybridTrainingConfig
from .streaming import StreamedParallelSource, StreamedRows, is_streamed_source

__all__ = ["MixtureError", "SourcesSummary", "TrainingSources", "uses_training_sources"]


class MixtureError(UserError, ValueError):
    """A mixture of training sources that cannot be trained."""


def uses_training_sources(config: HybridTrainingConfig) -> bool:
    """Whether ``config`` trains through :class:`TrainingSources` (a streamed source or a mixture) rather than the
    single in-memory dataset of :func:`~pyterrier_hybrid.training.batching.pairs.build_training_dataset`."""
    return bool(config.extra_train) or is_streamed_source(config.train)


def source_name(index: int) -> str:
    """The DatasetDict key of the ``index``-th source (its position on the command line, from 0)."""
    return f"source-{index}"


@dataclass
class LoadedSource:
    name: str
    spec: str
    data: Any  # TrainingData or StreamedParallelSource
    train: Any  # TrainingData or StreamedRows
    held_out: Any  # TrainingData, StreamedRows or None

    @property
    def streamed(self) -> bool:
        return isinstance(self.data, StreamedParallelSource)


@dataclass(frozen=True)
class SourcesSummary:
    """What the run's record and model card say of the data (the interface of TrainingData they use)."""

    languages: tuple[str, ...]
    size: int
    num_parallel_ids: int

    def __len__(self) -> int:
        return self.size


class TrainingSources:
    """Every source of ``config`` (``train`` and ``extra_train``), loaded and split; see the module docstring."""

    def __init__(self, config: HybridTrainingConfig, sources: list[LoadedSource]):
        self.config = config
        self.sources = sources

    @classmethod
    def load(cls, config: HybridTrainingConfig) -> TrainingSources:
        from ..batching.rows import ParallelRows, check_feasible, check_streamed_feasible
        from .data import configured_training_data, split_by_article

        specs = (config.train, *config.extra_train)
        if len(set(specs)) < len(specs):
            raise MixtureError(f"a mixture names a source twice: {', '.join(specs)}")
        loaded = []
        for index, spec in enumerate(specs):
            # Only the first source is validated on: the others give all their data to training.
            eval_fraction = config.eval_fraction if index == 0 else 0.0
            if is_streamed_source(spec):
                data = StreamedParallelSource(spec, config.train_langs, max_queries=config.max_queries,
                                              hard_negatives=config.hard_negatives)
                train, held_out = data.split(eval_fraction, config.seed)
                check_streamed_feasible(train, config.alpha, config.batch_size)
            else:
                data = configured_training_data(config, spec)
                train, held_out = split_by_article(data, eval_fraction, config.seed)
                held_out = held_out if len(held_out) else None
                check_feasible(ParallelRows.from_examples(train.examples), config.alpha, config.batch_size)
            loaded.append(LoadedSource(source_name(index), spec, data, train, held_out))
        return cls(config, loaded)

    @property
    def mixed(self) -> bool:
        return len(self.sources) > 1

    def summaries(self) -> tuple[SourcesSummary, SourcesSummary, SourcesSummary]:
        """(all data, training part, held-out part), summed over the sources."""

        def summary(parts) -> SourcesSummary:
            langs, size, ids = set(), 0, 0
            for part in parts:
                if part is None:
                    continue
                if isinstance(part, StreamedRows):
                    langs |= set(part.languages)
                    size += part.num_rows
                    ids += len(np.unique(part.queries))
                else:
                    langs |= set(part.languages)
                    size += len(part)
                    ids += part.num_parallel_ids
            return SourcesSummary(tuple(sorted(langs)), size, ids)

        return (summary(s.data for s in self.sources), summary(s.train for s in self.sources),
                summary(s.held_out for s in self.sources[:1]))

    @property
    def columns(self) -> tuple[str, ...]:
        """The text columns the loss sees."""
        return ("anchor", "positive", "negative") if self.config.hard_negatives else ("anchor", "positive")
