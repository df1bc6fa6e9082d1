"""Batching regimes: how a run's batches are made, each one object that gives the trainer its datasets, their
samplers and the loss (the interface: :mod:`pyterrier_hybrid.training.regimes.base`).

- ``hybrid`` (:mod:`.hybrid`): in-memory pairs, each batch monolingual with probability alpha, else cross-lingual
  (alpha 1: X-X-mono, alpha 0: X-Y);
- ``pooled`` (:mod:`.pooled`): whole parallel groups per batch, every translation of the answer a positive;
- ``streamed`` (:mod:`.streamed`): ``irds:`` sources read lazily, and mixtures of several sources;
- ``distillation`` (:mod:`.distillation`): the distillation terms around the ``hybrid`` or ``pooled`` batches.

:data:`REGIMES` is the table of regimes by name and :func:`pick_regime` names the one a configuration trains with;
:func:`load_regime` builds it. Adding a regime is one module (a subclass of
:class:`~pyterrier_hybrid.training.regimes.base.BatchingRegime`) and one entry in the table.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..sources.mixture import uses_training_sources
from .base import BatchingRegime
from .distillation import DistillationRegime
from .hybrid import HybridRegime
from .pooled import PooledRegime
from .streamed import StreamedSourcesRegime

if TYPE_CHECKING:
    from ..config import HybridTrainingConfig

__all__ = ["REGIMES", "BatchingRegime", "load_regime", "pick_regime"]

#: Every batching regime, by name. ``config.batching`` names the regime of the contrastive batches.
REGIMES: dict[str, type[BatchingRegime]] = {
    "hybrid": HybridRegime,
    "pooled": PooledRegime,
    "streamed": StreamedSourcesRegime,
    "distillation": DistillationRegime,
}


def pick_regime(config: HybridTrainingConfig) -> str:
    """The name of the regime ``config`` trains with: ``streamed`` for an ``irds:`` source or a mixture of sources,
    ``distillation`` when a distillation term is on (around the regime ``config.batching`` names), else
    ``config.batching``."""
    if uses_training_sources(config):
        return "streamed"
    if config.distills:
        return "distillation"
    return config.batching


def load_regime(config: HybridTrainingConfig, name: str | None = None) -> BatchingRegime:
    """The regime ``name`` of :data:`REGIMES` (default: the one :func:`pick_regime` names), built for ``config`` with
    its examples loaded and checked."""
    name = pick_regime(config) if name is None else name
    if name not in REGIMES:
        raise KeyError(f"no batching regime {name!r}; the regimes are {', '.join(REGIMES)}")
    return REGIMES[name].load(config, REGIMES)
