"""Hybrid batch training of multilingual bi-encoders on sentence-transformers (arXiv 2408.10536).

- :class:`HybridTrainingConfig` (``config``): every setting of a run, paper defaults;
- :func:`train` (``trainer``): ``train(config) -> Path`` of a sentence-transformers model folder with its
  configuration, loss curve and model card;
- :class:`HybridBatchSampler` (``batching.hybrid``) and :class:`HybridBatchSamplerFactory` (``batching.registry``,
  the registry of a run's samplers): the batch sampler, usable as
  ``SentenceTransformerTrainingArguments(batch_sampler=...)`` on its own;
- :func:`load_training_data`, :func:`split_by_article` (``sources.data``): LAReQA, JSONL and ir_datasets sources;
- :class:`StreamedParallelSource` (``sources.streaming``) and :class:`StreamedHybridBatchSampler`
  (``batching.streamed``): ``irds:`` sources read lazily; :class:`TrainingSources` (``sources.mixture``): streamed
  sources and mixtures of sources.

The package is a few rooms by role: ``sources/`` (the data), ``batching/`` (the samplers and their registry),
``losses/``, ``speed/`` (memory, fast dropout, length buckets, which weights train), ``regimes/`` (each batching
regime: its datasets, samplers and loss) and, at the top, the run (configuration, recipes, trainer arguments,
base model, trainer, checkpoints, outputs, command line).

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
    "HybridBatchSampler": ".batching.hybrid",
    "HybridBatchSamplerFactory": ".batching.registry",
    "ParallelRows": ".batching.hybrid",
    "SamplerDataError": ".batching.hybrid",
    "TrainingData": ".sources.data",
    "Passage": ".sources.data",
    "JsonlFormatError": ".sources.data",
    "load_training_data": ".sources.data",
    "read_jsonl": ".sources.data",
    "ir_datasets_parallel_examples": ".sources.data",
    "split_by_article": ".sources.data",
    "StreamedParallelSource": ".sources.streaming",
    "StreamedHybridBatchSampler": ".batching.streamed",
    "TrainingSources": ".sources.mixture",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
