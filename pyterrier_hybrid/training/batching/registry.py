"""The registry of every batch sampler of a run: which sampler batches which dataset.

sentence-transformers builds the batch sampler of the training *and* the evaluation dataloaders through one
``batch_sampler`` training argument, passing only the dataset (a multi-dataset run asks once per dataset). So each
dataset given to the trainer is registered here, by identity, with its sampler class and arguments; the registry is
that argument. The name is the one it has always had: it began as the hybrid sampler's factory.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .hybrid import HybridBatchSampler, ParallelRows

if TYPE_CHECKING:
    from sentence_transformers.base.sampler import DefaultBatchSampler

__all__ = ["HybridBatchSamplerFactory"]


class HybridBatchSamplerFactory:
    """The callable to give as ``SentenceTransformerTrainingArguments(batch_sampler=...)``.

    sentence-transformers builds the batch sampler of the training *and* the evaluation dataloader through the same
    ``batch_sampler`` argument, passing only the dataset: each dataset is registered here with its rows (and, for
    an evaluation set, usually an explicit number of batches), and looked up by identity when the trainer asks.
    """

    def __init__(self, alpha: float = 0.5, num_replicas: int | None = None):
        self.alpha = alpha
        self.num_replicas = num_replicas
        self._registered: dict[int, tuple[object, ParallelRows, type, dict]] = {}
        self._other: dict[int, tuple[object, type, dict]] = {}  # datasets batched without ParallelRows
        self.samplers: dict[int, DefaultBatchSampler] = {}

    def __repr__(self) -> str:
        return f"HybridBatchSamplerFactory(alpha={self.alpha}, datasets={len(self._registered)})"

    def __deepcopy__(self, memo):
        # transformers deep-copies its training arguments (TrainingArguments.to_dict, for logs and model cards);
        # copying the registered datasets along would cost memory and time for nothing: the factory is shared.
        return self

    def __getstate__(self) -> dict:
        # transformers pickles its training arguments into every checkpoint (training_args.bin): keep the settings
        # only, not the registered datasets and rows (megabytes per checkpoint, and a memory peak while saving).
        # Registrations are process-local: a resumed run registers its datasets again.
        return {"alpha": self.alpha, "num_replicas": self.num_replicas}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def register(self, dataset, rows: ParallelRows, sampler_class: type | None = None, **sampler_kwargs) -> None:
        """Use ``rows`` for ``dataset``; ``sampler_kwargs`` (alpha, batches_per_epoch, num_replicas) override.
        ``sampler_class`` (default :class:`HybridBatchSampler`) is the sampler built for it: a streamed dataset
        registers its :class:`~pyterrier_hybrid.training.batching.streamed.StreamedHybridBatchSampler` and rows."""
        if len(dataset) != len(rows):
            raise ValueError(f"dataset has {len(dataset)} rows, ParallelRows has {len(rows)}")
        self._registered[id(dataset)] = (dataset, rows, sampler_class or HybridBatchSampler, sampler_kwargs)

    def __call__(
        self,
        dataset,
        batch_size: int,
        drop_last: bool = False,
        valid_label_columns: list[str] | None = None,
        generator=None,
        seed: int = 0,
    ) -> DefaultBatchSampler:
        if id(dataset) in self._other:
            _, sampler_class, kwargs = self._other[id(dataset)]
            return sampler_class(dataset, batch_size, seed=seed, **kwargs)
        if id(dataset) not in self._registered:
            raise KeyError(
                "HybridBatchSamplerFactory was asked for a batch sampler over a dataset it does not know: register "
                "every dataset given to the trainer (train and eval) with its ParallelRows first"
            )
        _, rows, sampler_class, overrides = self._registered[id(dataset)]
        kwargs = {"alpha": self.alpha, "num_replicas": self.num_replicas, **overrides}
        sampler = sampler_class(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
            rows=rows,
            **kwargs,
        )
        self.samplers[id(dataset)] = sampler
        return sampler

    def register_sampler(self, dataset, sampler_class: type, **sampler_kwargs) -> None:
        """Batch ``dataset`` with ``sampler_class(dataset, batch_size, seed=..., **sampler_kwargs)``: a dataset without
        languages to mix, e.g. parallel distillation rows
        (:class:`~pyterrier_hybrid.training.batching.shuffled.ShuffledBatchSampler`) or pooled groups
        (:class:`~pyterrier_hybrid.training.batching.pooled.PooledBatchSampler`)."""
        self._other[id(dataset)] = (dataset, sampler_class, sampler_kwargs)

    def sampler_for(self, dataset) -> DefaultBatchSampler | None:
        """The last sampler built for ``dataset`` (None if the trainer has not asked yet)."""
        return self.samplers.get(id(dataset))
