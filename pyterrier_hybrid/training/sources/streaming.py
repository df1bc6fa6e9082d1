"""Streamed parallel training data from ir_datasets collections that share query and document ids (mMARCO style).

``irds:LANG=DATASET_ID,...`` sources are trained from here: building every (query language, passage language) row
in memory costs languages^2 rows of text per judged pair (mMARCO's 532,761 training qrels in 7 languages: 26M rows).
Instead:

- :class:`StreamedParallelSource` reads the ids once, in chunks
  (:mod:`pyterrier_hybrid.training.sources.streamed_reading`): the judged (query id, relevant doc id) pairs of the
  first language's qrels (the first ``max_queries`` queries), one hard negative per query (``doc_id_b`` of a docpair
  of the query, from the first language whose dataset has docpairs; the docpairs are shared by the translations),
  and each language's query texts, written to a file on disk and read back by offset (:class:`QueryTexts`). Ids are
  kept as numpy byte strings: a few dozen bytes per judged pair, no Python object per pair.
- The dataset given to the trainer (:meth:`StreamedParallelSource.dataset`) has one row per (judged pair, language
  pair) but holds only two small integer columns, ``row`` and ``pair``, made of one shared ``row`` array and a
  constant ``pair`` chunk per language pair; the texts of a batch (query in the query language, passage and hard
  negative in the passage language, documents through ``docs_store()``) are fetched when the batch is read, by the
  dataset's transform. The collator sees the usual anchor / positive[ / negative] columns.
- :class:`~pyterrier_hybrid.training.batching.streamed.StreamedHybridBatchSampler` decides the languages of each
  batch and so picks the keys: the hybrid rules of :mod:`pyterrier_hybrid.training.batching.hybrid` (monolingual
  with probability alpha, one language drawn uniformly; else cross-lingual, query language != passage language per
  row; no two rows sharing a parallel id, i.e. a query, or a document). The batch of global step s of epoch e is a
  function of (seed, e, s) and an epoch's permutation of the queries, so every rank (each reads the ids itself)
  computes the same global batch without communicating, and a resumed run sees the batches an uninterrupted one
  would have.

A query or document missing from a language is handled so: queries missing from any language are dropped (logged;
none in common is an error), a document missing from a docs_store when its batch is read is an error naming it.
"""
from __future__ import annotations

import logging
import math
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import IRDS_PREFIX, parse_irds_source, record_text
from .streamed_reading import QueryTexts, StreamedSourceError, first_docpair_negatives, judged_pairs

logger = logging.getLogger(__name__)

__all__ = [
    "QueryTexts",
    "StreamedParallelSource",
    "StreamedRows",
    "StreamedSourceError",
    "check_irds_source",
    "is_streamed_source",
]

def is_streamed_source(source: str) -> bool:
    return str(source).startswith(IRDS_PREFIX)


def _load(dataset_id: str, lang: str):
    from ...datasets.irds import load_irds_dataset

    try:
        return load_irds_dataset(dataset_id)
    except KeyError as e:
        raise StreamedSourceError(f"unknown ir_datasets id {dataset_id!r} (language {lang})") from e


def _languages(source: str, langs: Sequence[str] | None) -> dict[str, str]:
    try:
        mapping = parse_irds_source(source)
    except ValueError as e:
        raise StreamedSourceError(str(e)) from None
    if langs:
        unknown = sorted(set(langs) - set(mapping))
        if unknown:
            raise StreamedSourceError(f"language(s) {', '.join(unknown)} have no ir_datasets id in {source!r}")
        mapping = {lang: dataset_id for lang, dataset_id in mapping.items() if lang in set(langs)}
    return mapping


def check_irds_source(source: str, langs: Sequence[str] | None = None, hard_negatives: bool = False) -> None:
    """What can be checked without reading the collection: the spec, the ids, the parts each dataset provides."""
    mapping = _languages(source, langs)
    datasets = {lang: _load(dataset_id, lang) for lang, dataset_id in mapping.items()}
    first = next(iter(mapping))
    if not datasets[first].has_qrels():
        raise StreamedSourceError(f"ir_datasets {mapping[first]!r} has no qrels to take the relevant pairs from")
    for lang, dataset in datasets.items():
        if not dataset.has_queries() or not dataset.has_docs():
            raise StreamedSourceError(f"ir_datasets {mapping[lang]!r} ({lang}) must provide queries and docs")
    if hard_negatives and not any(d.has_docpairs() for d in datasets.values()):
        raise StreamedSourceError(
            f"--hard-negatives takes the negatives of an ir_datasets source from its docpairs, but none of "
            f"{', '.join(repr(i) for i in mapping.values())} has docpairs (training triples): drop --hard-negatives "
            "or use a training split with docpairs"
        )


_SOURCES: weakref.WeakValueDictionary[int, StreamedParallelSource] = weakref.WeakValueDictionary()


def _fetcher_of(key: int) -> _TextFetcher:
    return _TextFetcher(_SOURCES[key])


class _TextFetcher:
    """The transform of a streamed dataset. It pickles as a reference to its source in this process: datasets
    hashes a transform by pickling it (for the fingerprint), which would otherwise serialise the whole source (ids,
    query tables: tens of MB, and a memory peak) on every ``set_transform``. Forked DataLoader workers inherit the
    registry; a spawned process cannot use the reference."""

    def __init__(self, source: StreamedParallelSource):
        self.source = source
        _SOURCES[id(source)] = source

    def __call__(self, batch):
        return self.source.fetch_texts(batch)

    def __reduce__(self):
        return _fetcher_of, (id(self.source),)


@dataclass(frozen=True)
class StreamedRows:
    """What the sampler knows of a streamed dataset: its judged rows (indices into the source's arrays, each row's
    query and positive / negative doc ids) and the languages. Key ``pair * len(rows) + i`` of the dataset is row
    ``rows[i]`` in language pair ``pair`` = (query language ``pair // L``, passage language ``pair % L``)."""

    rows: np.ndarray  # int64 indices into the source's row arrays
    queries: np.ndarray  # int32 query index (the parallel id) of each row
    docs: np.ndarray  # bytes: the positive doc id of each row
    negatives: np.ndarray | None  # bytes: the hard negative doc id of each row
    languages: tuple[str, ...]

    def __len__(self) -> int:
        """The number of keys of the dataset (rows x language pairs), which the sampler factory checks."""
        return len(self.rows) * len(self.languages) ** 2

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    def key(self, index: np.ndarray, query_lang: np.ndarray, passage_lang: np.ndarray) -> np.ndarray:
        pair = query_lang * len(self.languages) + passage_lang
        return pair * len(self.rows) + index

    def decode(self, key: int) -> tuple[int, str, str]:
        """(row of the source, query language, passage language) of a key."""
        pair, index = divmod(int(key), len(self.rows))
        q, p = divmod(pair, len(self.languages))
        return int(self.rows[index]), self.languages[q], self.languages[p]


class StreamedParallelSource:
    """The ids of an ``irds:LANG=ID,...`` source, read once, and the texts on demand (see the module docstring).

    ``max_queries`` keeps the first judged queries in qrels order; ``hard_negatives`` keeps the queries that have a
    docpair and gives each row its ``doc_id_b`` (in the passage language). The query texts go to files in
    ``work_dir`` (default: a temporary folder removed with the object).
    """

    def __init__(
        self,
        source: str,
        langs: Sequence[str] | None = None,
        *,
        max_queries: int | None = None,
        hard_negatives: bool = False,
        work_dir: str | Path | None = None,
    ):
        if max_queries is not None and max_queries < 1:
            raise StreamedSourceError(f"max_queries must be a positive integer, got {max_queries}")
        check_irds_source(source, langs, hard_negatives)
        self.source = source
        self.mapping = _languages(source, langs)
        self.languages: tuple[str, ...] = tuple(self.mapping)
        self.hard_negatives = hard_negatives
        self._datasets = {lang: _load(i, lang) for lang, i in self.mapping.items()}
        self._stores: dict[str, object] = {}
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pyterrier-hybrid-stream-")
            work_dir = self._tmp.name
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)

        first = self.languages[0]
        row_query_ids, row_docs = judged_pairs(self._datasets[first], self.mapping[first], max_queries)
        query_ids, row_query = np.unique(row_query_ids, return_inverse=True)
        del row_query_ids
        present = self._write_query_texts(query_ids)
        keep = present[row_query]
        negatives = None
        if hard_negatives:
            negatives = self._hard_negatives(query_ids, present)[row_query]
            usable = keep & (negatives != b"") & (negatives != row_docs)
            dropped = int(keep.sum() - usable.sum())
            if dropped:
                logger.info("%s: dropped %d judged pairs without a usable docpair", source, dropped)
            keep = usable
        self.query_ids = query_ids
        self.row_query = row_query[keep].astype(np.int32 if len(query_ids) < 2**31 else np.int64)
        self.row_docs = row_docs[keep]
        self.row_negatives = negatives[keep] if negatives is not None else None
        logger.info("%s: %d judged pairs of %d queries in %d languages (streamed)", source, len(self.row_query),
                    len(np.unique(self.row_query)), len(self.languages))

    def _write_query_texts(self, query_ids: np.ndarray) -> np.ndarray:
        """Every language's texts of the judged queries, to ``work_dir``; returns which queries every language has
        (only those are kept)."""
        first = self.languages[0]
        self._query_texts: dict[str, QueryTexts] = {}
        present = np.ones(len(query_ids), dtype=bool)
        for lang in self.languages:
            store, in_lang = QueryTexts.write(self._datasets[lang], query_ids, self.work_dir / f"queries-{lang}")
            self._query_texts[lang] = store
            if not in_lang.any():
                raise StreamedSourceError(
                    f"ir_datasets {self.mapping[lang]!r} ({lang}) has none of the {len(query_ids)} judged queries "
                    f"of {self.mapping[first]!r} ({first}): the languages of an irds: source must share query ids "
                    "(translations of one collection)"
                )
            present &= in_lang
        if not present.any():
            raise StreamedSourceError(f"no judged query of {self.mapping[first]!r} exists in every language of "
                                      f"{self.source!r}: the languages must share query ids")
        if not present.all():
            logger.info("%s: dropped %d judged queries missing from some language", self.source,
                        int((~present).sum()))
        return present

    def _hard_negatives(self, query_ids: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Per query, the ``doc_id_b`` of its first docpair (b"" when none), from the first language with
        docpairs: the translations share them."""
        docpairs_lang = next(lang for lang in self.languages if self._datasets[lang].has_docpairs())
        per_query = first_docpair_negatives(self._datasets[docpairs_lang], query_ids)
        if not (per_query != b"")[present].any():
            raise StreamedSourceError(f"no judged query of {self.source!r} has a docpair: no hard negative to train "
                                      "with")
        return per_query

    # TrainingData's interface, for the run's record
    def __len__(self) -> int:
        return len(self.row_query)

    @property
    def num_parallel_ids(self) -> int:
        return len(np.unique(self.row_query))

    def split(self, eval_fraction: float, seed: int) -> tuple[StreamedRows, StreamedRows | None]:
        """(training rows, held-out rows or None): ``ceil(eval_fraction * queries)`` queries drawn with ``seed``
        held out whole (every query is its own group, as for the in-memory irds source)."""
        rows = np.arange(len(self.row_query))
        if eval_fraction <= 0:  # every row: the source's own arrays, not copies
            return StreamedRows(rows, self.row_query, self.row_docs, self.row_negatives, self.languages), None
        queries = np.unique(self.row_query)
        if len(queries) < 2:
            raise StreamedSourceError(f"cannot hold out queries: {self.source!r} has {len(queries)} judged query")
        count = min(len(queries) - 1, math.ceil(eval_fraction * len(queries)))
        held_out = np.zeros(len(self.query_ids), dtype=bool)
        held_out[np.random.default_rng(seed).choice(queries, size=count, replace=False)] = True
        mask = held_out[self.row_query]
        return self.rows(rows[~mask]), self.rows(rows[mask])

    def rows(self, rows: np.ndarray) -> StreamedRows:
        return StreamedRows(
            rows=rows,
            queries=self.row_query[rows],
            docs=self.row_docs[rows],
            negatives=self.row_negatives[rows] if self.row_negatives is not None else None,
            languages=self.languages,
        )

    def dataset(self, rows: StreamedRows):
        """The ``datasets.Dataset`` of ``rows``: keys as in :class:`StreamedRows`, texts fetched by its transform."""
        import pyarrow as pa
        from datasets import Dataset, concatenate_datasets

        # One shared ``row`` array and a constant int8 ``pair`` chunk per language pair: 1 byte per key, not a
        # text, and no copy of the rows per language pair (Arrow concatenation keeps the chunks).
        from datasets.table import InMemoryTable

        row_array = pa.array(rows.rows)
        pairs = len(self.languages) ** 2
        pair_type = np.min_scalar_type(pairs - 1)
        parts = [
            Dataset(InMemoryTable(pa.table({"row": row_array, "pair": np.full(len(rows.rows), p, dtype=pair_type)})))
            for p in range(pairs)
        ]
        dataset = concatenate_datasets(parts) if pairs > 1 else parts[0]
        dataset.set_transform(_TextFetcher(self))
        return dataset

    def fetch_texts(self, batch: Mapping[str, list]) -> dict[str, list[str]]:
        """The transform of :meth:`dataset`: row and language-pair codes -> anchor, positive[, negative] texts."""
        rows = np.asarray(batch["row"], dtype=np.int64)
        pairs = np.asarray(batch["pair"], dtype=np.int64)
        num_langs = len(self.languages)
        query_langs, passage_langs = pairs // num_langs, pairs % num_langs
        anchors: list[str] = [""] * len(rows)
        positives: list[str] = [""] * len(rows)
        negatives: list[str] = [""] * len(rows)
        for q in np.unique(query_langs):
            lang = self.languages[int(q)]
            where = np.flatnonzero(query_langs == q)
            texts = self._query_texts[lang].get(self.row_query[rows[where]])
            for i, text in zip(where, texts):
                anchors[i] = text
        for p in np.unique(passage_langs):
            lang = self.languages[int(p)]
            where = np.flatnonzero(passage_langs == p)
            for i, text in zip(where, self._documents(lang, self.row_docs[rows[where]])):
                positives[i] = text
            if self.row_negatives is not None:
                for i, text in zip(where, self._documents(lang, self.row_negatives[rows[where]])):
                    negatives[i] = text
        out = {"anchor": anchors, "positive": positives}
        if self.row_negatives is not None:
            out["negative"] = negatives
        return out

    def _documents(self, lang: str, doc_ids: np.ndarray) -> list[str]:
        store = self._stores.get(lang)
        if store is None:
            store = self._stores[lang] = self._datasets[lang].docs_store()
        ids = [d.decode() for d in doc_ids]
        found = store.get_many(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise StreamedSourceError(f"document {missing[0]!r} is missing from {self.mapping[lang]!r} ({lang}): every "
                                      "language of an irds: source must have every judged document")
        # The document's text as the collection gives it: --candidate-text has no paragraph to add to a passage.
        return [record_text(found[i]) for i in ids]
