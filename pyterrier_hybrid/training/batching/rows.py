"""What the batch samplers know of the training rows, and whether those rows can fill the batches asked for.

:class:`ParallelRows` (the parallel id, languages and text codes of each row), :func:`check_feasible` (hybrid batches
of in-memory pairs), :func:`check_streamed_feasible` (hybrid batches of a streamed source) and the errors they raise.
Why these live apart from the samplers: a training run checks its data with them before it loads a model, and the
samplers' module imports sentence-transformers (their base class), which alone takes about 4 s; kept here, a request
the data cannot satisfy is refused in about 2 s.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...datasets.parallel import ParallelExample
from ...errors import UserError

if TYPE_CHECKING:
    from ..sources.streaming import StreamedRows

__all__ = ["ParallelRows", "PooledDataError", "SamplerDataError", "check_feasible", "check_streamed_feasible",
           "text_codes"]


class SamplerDataError(UserError, ValueError):
    """The training examples cannot satisfy what the sampler was asked for."""


def text_codes(values: Sequence[Hashable]) -> np.ndarray:
    """Integer codes, equal for equal values, assigned in order of first appearance (deterministic across
    processes, unlike ``hash()`` of strings)."""
    index: dict = {}
    return np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))


def check_feasible(rows: ParallelRows, alpha: float, batch_size: int, num_replicas: int = 1) -> None:
    """Raise :class:`SamplerDataError` when ``rows`` cannot fill the batches ``alpha`` asks for: a language with
    fewer distinct parallel ids than a (global) batch, or too few parallel ids with a cross-lingual pair. The
    trainer calls it on the training examples before it loads a model; the sampler again on its dataset."""
    needed = batch_size * num_replicas
    per_rank = f" ({batch_size} per rank x {num_replicas} ranks)" if num_replicas > 1 else ""
    mono = rows.query_langs == rows.passage_langs
    if alpha > 0:
        languages = sorted(set(rows.query_langs[mono].tolist()))
        if not languages:
            raise SamplerDataError(
                f"alpha={alpha} asks for monolingual batches but no training example has its query and "
                "passage in the same language"
            )
        for lang in languages:
            distinct = len(np.unique(rows.parallel_ids[mono & (rows.query_langs == lang)]))
            if distinct < needed:
                raise SamplerDataError(
                    f"language {lang!r} has {distinct} monolingual examples with distinct parallel ids, fewer "
                    f"than one batch of {needed}{per_rank}: lower the batch size or drop the language"
                )
    if alpha < 1:
        cross_ids = np.unique(rows.parallel_ids[~mono])
        if len(cross_ids) == 0:
            langs = sorted(set(rows.query_langs.tolist()) | set(rows.passage_langs.tolist()))
            raise SamplerDataError(
                f"alpha={alpha} asks for cross-lingual batches (probability {1 - alpha:g}) but the "
                f"training examples have no pair with query language != passage language (languages: "
                f"{', '.join(langs)}); use alpha=1 or add languages"
            )
        if len(cross_ids) < needed:
            raise SamplerDataError(
                f"only {len(cross_ids)} parallel ids have a cross-lingual pair, fewer than one "
                f"batch of {needed}{per_rank}: lower the batch size"
            )


@dataclass(frozen=True)
class ParallelRows:
    """What the sampler knows of each dataset row (row i of the dataset = row i here).

    ``passage_keys[i]`` holds codes of every passage text of row i (its positive and its hard negatives, if any):
    two rows whose passages share a text never go into one batch.
    """

    parallel_ids: np.ndarray  # int codes of the parallel ids
    query_langs: np.ndarray  # str
    passage_langs: np.ndarray  # str
    query_keys: np.ndarray  # int codes of the query texts
    passage_keys: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        n = len(self.parallel_ids)
        lengths = {len(self.query_langs), len(self.passage_langs), len(self.query_keys), len(self.passage_keys)}
        if lengths != {n}:
            raise ValueError("ParallelRows: every per-row array must have one entry per row")

    def __len__(self) -> int:
        return len(self.parallel_ids)

    @classmethod
    def from_examples(
        cls,
        examples: Sequence[ParallelExample],
        passage_texts: Sequence[str] | None = None,
        negative_texts: Sequence[str | None] | None = None,
    ) -> ParallelRows:
        """Rows for ``examples``; ``passage_texts`` are the positive texts the loss sees (default: the sentences),
        ``negative_texts`` the hard negative of each row (or None)."""
        if passage_texts is None:
            passage_texts = [e.passage_sentence for e in examples]
        if len(passage_texts) != len(examples) or (negative_texts is not None and len(negative_texts) != len(examples)):
            raise ValueError("passage_texts and negative_texts must have one entry per example")
        texts = list(passage_texts) + [t for t in (negative_texts or []) if t is not None]
        codes = iter(text_codes(texts).tolist())
        positive_codes = [next(codes) for _ in passage_texts]
        passage_keys = []
        for i, positive in enumerate(positive_codes):
            has_negative = negative_texts is not None and negative_texts[i] is not None
            passage_keys.append((positive, next(codes)) if has_negative else (positive,))
        return cls(
            parallel_ids=text_codes([e.parallel_id for e in examples]),
            query_langs=np.array([e.query_lang for e in examples], dtype=object),
            passage_langs=np.array([e.passage_lang for e in examples], dtype=object),
            query_keys=text_codes([e.query for e in examples]),
            passage_keys=tuple(passage_keys),
        )

    def describe(self, row: int) -> tuple[int, str, str]:
        """(parallel id code, query language, passage language) of a row."""
        return int(self.parallel_ids[row]), str(self.query_langs[row]), str(self.passage_langs[row])


def check_streamed_feasible(rows: StreamedRows, alpha: float, batch_size: int, num_replicas: int = 1) -> None:
    """Raise :class:`SamplerDataError` when ``rows`` cannot fill the batches
    asked for: fewer queries than a global batch, or cross-lingual batches from one language."""
    needed = batch_size * num_replicas
    per_rank = f" ({batch_size} per rank x {num_replicas} ranks)" if num_replicas > 1 else ""
    num_queries = len(np.unique(rows.queries))
    if num_queries < needed:
        raise SamplerDataError(f"{num_queries} judged queries are fewer than one batch of {needed}{per_rank}: lower "
                               "the batch size or raise --max-queries")
    if alpha < 1 and len(rows.languages) < 2:
        raise SamplerDataError(
            f"alpha={alpha} asks for cross-lingual batches (probability {1 - alpha:g}) but the source has one "
            f"language ({rows.languages[0]}); use alpha=1 or add languages"
        )


class PooledDataError(UserError, ValueError):
    """The parallel groups cannot fill the pooled batches asked for."""
