"""The validation batches of a run with a held-out split: as large as the held-out pairs allow (at most the
training batch), the same fixed batches at every evaluation."""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from .hybrid import HybridBatchSampler, SamplerDataError

if TYPE_CHECKING:
    from ..config import HybridTrainingConfig
    from .rows import ParallelRows

logger = logging.getLogger(__name__)

__all__ = ["register_validation_batches", "validation_batch_size", "validation_batches"]


def validation_batch_size(dataset, rows: ParallelRows, config: HybridTrainingConfig, world_size: int) -> int:
    """The largest per-device batch (at most the training one) that fills the fixed validation batches.

    An upper bound comes from counting, per batch type and language, the distinct parallel ids, queries and
    passages; several questions can share one answer sentence, so the bound may still be too large for the
    sampler's rules (distinct ids, queries and passages in a batch). The validation batches are fixed (the eval
    sampler stays at epoch 0 with the training seed), so trying them is exact: lower the size until they draw.
    """
    mono = rows.query_langs == rows.passage_langs
    positives = np.array([keys[0] for keys in rows.passage_keys])
    pools = []
    if config.alpha > 0:
        pools += [mono & (rows.query_langs == lang) for lang in set(rows.query_langs[mono].tolist())]
    if config.alpha < 1:
        pools.append(~mono)
    limits = [
        min(len(np.unique(rows.parallel_ids[p])), len(np.unique(rows.query_keys[p])), len(np.unique(positives[p])))
        for p in pools
    ]
    size = min(config.batch_size, (min(limits) if limits else 0) // world_size)
    while size >= 2:
        sampler = HybridBatchSampler(
            dataset, size, seed=config.seed, rows=rows, alpha=config.alpha, num_replicas=world_size,
            batches_per_epoch=validation_batches(rows, size, world_size, config.max_eval_batches),
        )
        try:
            for _ in sampler:
                pass
            return size
        except SamplerDataError:
            size -= 1
    raise ValueError(
        f"the held-out split ({config.eval_fraction:.0%} of the articles) is too small for validation batches "
        f"of 2 or more pairs for every batch type and language: raise eval_fraction or set it to 0"
    )


def validation_batches(rows: ParallelRows, batch_size: int, world_size: int, cap: int | None = None) -> int:
    """Validation batches per evaluation: about every held-out row once, or ``cap`` if that is fewer."""
    batches = max(1, math.ceil(len(rows) / (batch_size * world_size)))
    return batches if cap is None else min(batches, cap)


def register_validation_batches(factory, dataset, rows: ParallelRows, config: HybridTrainingConfig,
                                world_size: int) -> int:
    """Register the validation batches of ``dataset`` with the sampler factory; returns their per-device size."""
    batch_size = validation_batch_size(dataset, rows, config, world_size)
    # The same fixed validation batches at every evaluation (the eval sampler stays at epoch 0).
    batches = validation_batches(rows, batch_size, world_size, config.max_eval_batches)
    logger.info("validation: %d batches of %d pairs per evaluation (%d held-out pairs)", batches, batch_size,
                len(rows))
    factory.register(dataset, rows, batches_per_epoch=batches)
    return batch_size
