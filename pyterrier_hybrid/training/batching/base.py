"""What every batch sampler of a run shares: the arguments sentence-transformers passes to a ``batch_sampler``, the
ranks, and batches that are a function of (seed, epoch) alone.

accelerate (used by the transformers Trainer) gives consecutive batches of a sampler to the ranks in turn (batch i to
rank ``i % world_size``). So each sampler draws one *global* batch of ``batch_size * num_replicas`` rows per step
and yields it as ``num_replicas`` consecutive per-rank batches; every rank builds the same sampler from the same
seed, so all ranks agree without communicating, and a resumed run that skips the first k batches of an epoch sees
the batches an uninterrupted run saw after them. ``generator`` is therefore ignored.

- :class:`SeededBatchSampler`: those arguments and checks, and the length of an epoch;
- :class:`HybridRulesBatchSampler`: a sampler of the hybrid rules (monolingual batches with probability ``alpha``),
  with the per-row metadata (``rows``) of its dataset.
"""
from __future__ import annotations

from sentence_transformers.base.sampler import DefaultBatchSampler

__all__ = ["HybridRulesBatchSampler", "SeededBatchSampler", "distributed_world_size"]


def distributed_world_size() -> int:
    """Number of ranks of the initialised torch.distributed process group (1 when not distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class SeededBatchSampler(DefaultBatchSampler):
    """The signature sentence-transformers passes to a ``batch_sampler`` (dataset, batch_size, drop_last,
    valid_label_columns, generator, seed) plus keyword-only ``num_replicas`` (ranks; default: the torch.distributed
    world size). A subclass sets ``batches_per_epoch`` (global steps per epoch)."""

    batches_per_epoch: int

    def __init__(self, dataset, batch_size: int, drop_last: bool = False, valid_label_columns: list[str] | None = None,
                 generator=None, seed: int = 0, *, num_replicas: int | None = None) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=valid_label_columns,
                         generator=generator, seed=seed)
        self.num_replicas = int(num_replicas) if num_replicas is not None else distributed_world_size()
        if self.num_replicas < 1:
            raise ValueError(f"num_replicas must be at least 1, got {num_replicas}")
        self.global_batch_size = batch_size * self.num_replicas
        self.seed = int(seed) if seed is not None else 0

    def __len__(self) -> int:
        """Per-rank batches of one epoch times the number of ranks (what accelerate's sharding expects)."""
        return self.batches_per_epoch * self.num_replicas


class HybridRulesBatchSampler(SeededBatchSampler):
    """A sampler of the hybrid rules: keyword-only ``rows`` (what the sampler knows of each dataset row, one entry
    per row), ``alpha`` (probability of a monolingual batch) and ``batches_per_epoch`` (global steps per epoch; None:
    the subclass's default) besides :class:`SeededBatchSampler`'s arguments. ``drop_last`` is ignored: every batch
    is full. A subclass indexes its rows in :meth:`_index_rows`."""

    def __init__(self, dataset, batch_size: int, drop_last: bool = False, valid_label_columns: list[str] | None = None,
                 generator=None, seed: int = 0, *, rows, alpha: float = 0.5, num_replicas: int | None = None,
                 batches_per_epoch: int | None = None) -> None:
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed,
                         num_replicas=num_replicas)
        if len(dataset) != len(rows):
            raise ValueError(
                f"the dataset has {len(dataset)} rows but the sampler's {type(rows).__name__} describe {len(rows)}: "
                "they must be built from the same examples, in the same order"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha is the probability of a monolingual batch and must be in [0, 1], got {alpha}")
        self.rows = rows
        self.alpha = float(alpha)
        self.batches_per_epoch = self._index_rows(batches_per_epoch)

    def _index_rows(self, batches_per_epoch: int | None) -> int:
        """Index ``self.rows`` for drawing batches and check that they can fill them; returns the global steps per
        epoch (``batches_per_epoch``, or the sampler's default when None)."""
        raise NotImplementedError
