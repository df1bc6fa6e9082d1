"""Hybrid batch training of multilingual bi-encoders on sentence-transformers (arXiv 2408.10536).

- :class:`HybridTrainingConfig` (``config``): every setting of a run, paper defaults;
- :func:`train` (``trainer``): ``train(config) -> Path`` of a sentence-transformers model folder with its
  configuration, loss curve and model card;
- :class:`HybridBatchSampler` / :class:`HybridBatchSamplerFactory` (``sampler``): the batch sampler, usable as
  ``SentenceTransformerTrainingArguments(batch_sampler=...)`` on its own;
- :func:`load_training_data`, :func:`split_by_article` (``data``): LAReQA, JSONL and ir_datasets sources;
- :class:`StreamedParallelSource` (``streaming``) and :class:`StreamedHybridBatchSampler` (``streamed_sampler``):
  ``irds:`` sources read lazily; :class:`TrainingSources` (``mixture``): streamed sources and mixtures of sources.

Names are imported lazily: ``import pyterrier_hybrid.training`` (e.g. for the CLI's ``--help``) does not load
torch or sentence-transformers.
"""
from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "HybridTrainingConfig": ".config",
    "train": ".trainer",
    "prepare_training": ".trainer",
    "PreparedTraining": ".trainer",
    "HybridBatchSampler": ".sampler",
    "HybridBatchSamplerFactory": ".sampler",
    "ParallelRows": ".sampler",
    "SamplerDataError": ".sampler",
    "TrainingData": ".data",
    "Passage": ".data",
    "JsonlFormatError": ".data",
    "load_training_data": ".data",
    "read_jsonl": ".data",
    "ir_datasets_parallel_examples": ".data",
    "split_by_article": ".data",
    "StreamedParallelSource": ".streaming",
    "StreamedHybridBatchSampler": ".streamed_sampler",
    "TrainingSources": ".mixture",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
