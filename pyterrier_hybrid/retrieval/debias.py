"""Training-free removal of language directions from multilingual embeddings, at retrieval time.

A multilingual encoder puts a strong language signal into every vector: in a pool of many languages a query's
nearest candidates are in its own language before they are about its question (LAReQA's "weak alignment").
Subtracting what the vectors of one language share removes much of that signal without training:

- ``mean``: per-language mean centering. Each vector minus the mean vector of its language (queries and passages
  apart when query statistics are given, else the passages' means on both sides), then renormalised;
- ``lir:K``: LIR (Yang et al. 2021, arXiv 2109.04727): the top K singular vectors of each language's (uncentred)
  vectors span its "language identity" subspace; each vector loses its projection onto its language's subspace.
  As in the paper the SVD is uncentred, so the first direction is close to the language's mean direction;
- ``global:K``: needs no language labels. The pool's mean is subtracted and the top K principal directions of the
  pooled, centred vectors are projected out. On a multilingual pool the leading principal directions of a
  multilingual encoder are dominated by language identity (the languages form separate clusters, whose spread is
  the largest variance there is), so they are the label-free estimate of the language subspace; the benchmark
  (``benchmarks/debias.py``) reports the share of each direction's variance that language identity explains.

A language seen at transform time but absent from the fitted data (e.g. a query language that no candidate has)
gets the pooled statistics of its side: the pool's mean (``mean``), the pool's top uncentred directions (``lir``);
``unseen_language="error"`` raises instead. Query-side lookups go query statistics -> passage statistics of the
same language -> pooled.

Usage with pyterrier-dr (the transformer rewrites the ``query_vec`` / ``doc_vec`` columns an encoder adds)::

    debias = LanguageDebias.fit(encoder, candidates, method="mean")           # candidates: docno, text, lang
    (encoder >> debias >> index.indexer(mode="overwrite")).index(candidates.to_dict("records"))
    retriever = encoder >> debias >> index.np_retriever()                     # topics: qid, query[, lang]
    debias.save(index.index_path / "debias")                                  # and LanguageDebias.load(...)

Topics without a ``lang`` column have their language identified (``detector``, see :mod:`.debias_langid`).
For evaluation, :class:`~.debias_factory.DebiasedRetrieverFactory` wraps a :class:`~.dense.DenseRetrieverFactory`:
it fits on the pool it is asked for, reuses the base factory's cached vectors (encode once, debias many) and returns
an exact retriever over the debiased vectors.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyterrier as pt

from pyterrier_hybrid.errors import UserError

from .debias_langid import LanguageIdentifier

METHODS: tuple[str, ...] = ("mean", "lir", "global")
UNSEEN_OPTIONS: tuple[str, ...] = ("pool", "error")
STATE_JSON = "debias.json"
STATE_NPZ = "debias.npz"
FORMAT_VERSION = 1
QUERY, PASSAGE = "query", "passage"


class DebiasError(UserError, ValueError):
    """Bad debiasing input: unknown method, missing languages, a language the fit never saw (with "error")."""


@dataclass(frozen=True)
class DebiasConfig:
    """What to remove.

    Attributes:
        method: "mean", "lir" or "global" (see the module documentation).
        k: directions removed per language (``lir``) or from the pool (``global``); unused by ``mean``.
        normalise: rescale every output vector to unit length (the encoders' vectors are unit length, and dot
            product is their similarity).
        unseen_language: "pool" (pooled statistics for a language absent from the fit) or "error".
    """

    method: str = "mean"
    k: int = 1
    normalise: bool = True
    unseen_language: str = "pool"

    def __post_init__(self):
        if self.method not in METHODS:
            raise DebiasError(f"unknown debiasing method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise DebiasError(f"k must be a positive integer, got {self.k!r}")
        if self.unseen_language not in UNSEEN_OPTIONS:
            raise DebiasError(f"unseen_language must be one of {UNSEEN_OPTIONS}, got {self.unseen_language!r}")

    @classmethod
    def parse(cls, text: str, **overrides) -> "DebiasConfig":
        """``mean``, ``lir`` / ``lir:K``, ``global`` / ``global:K``."""
        method, _, k = str(text).strip().partition(":")
        if k:
            try:
                overrides["k"] = int(k)
            except ValueError:
                raise DebiasError(f"expected METHOD or METHOD:K with an integer K, got {text!r}") from None
        if method == "mean" and k:
            raise DebiasError(f"the mean method takes no K, got {text!r}")
        return cls(method=method, **overrides)

    @property
    def label(self) -> str:
        """``mean``, ``lir:K`` or ``global:K`` (what :meth:`parse` reads)."""
        return self.method if self.method == "mean" else f"{self.method}:{self.k}"


@dataclass
class SideStatistics:
    """Fitted statistics of one side (queries or passages).

    ``means`` [L, d] and ``components`` [L, k, d] (``lir``) per language of ``langs``; ``pool_mean`` [d] and
    ``pool_components`` [k, d] of all the side's vectors (``lir``: uncentred; ``global``: centred principal
    directions); ``counts`` vectors per language.
    """

    langs: tuple[str, ...]
    counts: tuple[int, ...]
    means: np.ndarray
    pool_mean: np.ndarray
    components: np.ndarray | None = None
    pool_components: np.ndarray | None = None
    _row: dict = field(init=False, repr=False)

    def __post_init__(self):
        self._row = {lang: i for i, lang in enumerate(self.langs)}

    def has(self, lang) -> bool:
        return lang in self._row


def _top_directions(vectors: np.ndarray, k: int) -> np.ndarray:
    """The top ``k`` right singular vectors [k, d] of ``vectors`` (fewer rows than k: zero-padded; a zero
    direction removes nothing). Signs are fixed (largest coordinate positive) so that fits are reproducible."""
    vectors = np.asarray(vectors, dtype=np.float64)
    dim = vectors.shape[1]
    out = np.zeros((k, dim), dtype=np.float64)
    if vectors.shape[0] == 0:
        return out.astype(np.float32)
    _, singular, vt = np.linalg.svd(vectors, full_matrices=False)
    keep = min(k, int((singular > singular[0] * 1e-6).sum()) if singular.size and singular[0] > 0 else 0)
    directions = vt[:keep]
    signs = np.sign(directions[np.arange(keep), np.argmax(np.abs(directions), axis=1)])
    out[:keep] = directions * signs[:, None]
    return out.astype(np.float32)


def _fit_side(vectors: np.ndarray, langs: np.ndarray | None, config: DebiasConfig) -> SideStatistics:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise DebiasError(f"fitting needs a non-empty [n, dim] array of vectors, got shape {vectors.shape}")
    pool_mean = vectors.astype(np.float64).mean(axis=0).astype(np.float32)
    if config.method == "global":
        return SideStatistics(langs=(), counts=(), means=np.zeros((0, vectors.shape[1]), np.float32),
                              pool_mean=pool_mean, pool_components=_top_directions(vectors - pool_mean, config.k))
    if langs is None:
        raise DebiasError(f"the {config.method!r} method needs the language of every fitted vector (a 'lang' "
                          "column); the 'global' method needs none")
    langs = np.asarray(langs, dtype=object)
    if len(langs) != len(vectors):
        raise DebiasError(f"{len(langs)} languages for {len(vectors)} vectors")
    if pd.isna(langs).any():
        raise DebiasError("some fitted vectors have no language (missing 'lang' values)")
    names = tuple(sorted({str(lang) for lang in langs}))
    groups = [vectors[langs == lang] for lang in names]
    means = np.stack([g.astype(np.float64).mean(axis=0) for g in groups]).astype(np.float32)
    stats = SideStatistics(langs=names, counts=tuple(len(g) for g in groups), means=means, pool_mean=pool_mean)
    if config.method == "lir":
        stats.components = np.stack([_top_directions(g, config.k) for g in groups])
        stats.pool_components = _top_directions(vectors, config.k)
    return stats


class LanguageDebias(pt.Transformer):
    """Removes language directions from the ``query_vec`` and ``doc_vec`` columns (whichever are present).

    Input: ``query_vec`` and/or ``doc_vec`` (+ any columns). The language of each row is read from ``query_lang``
    (queries) / ``doc_lang`` (passages) or ``lang``; without such a column it is identified from ``query`` /
    ``text`` by the ``detector`` (methods "mean" and "lir"; "global" needs no language). Output: the same frame with
    the vectors debiased (float32, unit length unless ``normalise=False``).

    Build one with :meth:`fit` (encodes candidates) or :meth:`fit_vectors`; persist it with :meth:`save` /
    :meth:`load`. :meth:`transform_vectors` is the array-level operation.
    """

    def __init__(self, config: DebiasConfig, passages: SideStatistics, queries: SideStatistics | None = None,
                 detector: LanguageIdentifier | None = None):
        self.config = config
        self.passages = passages
        self.queries = queries
        self.detector = detector
        self._warned: set = set()

    def __repr__(self) -> str:
        langs = ",".join(self.passages.langs) or "label-free"
        return (f"LanguageDebias({self.config.label!r}, passages: {langs}"
                f"{', query statistics: ' + ','.join(self.queries.langs) if self.queries else ''})")

    # --- fitting ---------------------------------------------------------------------------------------------

    @classmethod
    def fit_vectors(cls, passage_vectors: np.ndarray, passage_langs: Sequence[str] | None = None, *,
                    query_vectors: np.ndarray | None = None, query_langs: Sequence[str] | None = None,
                    method: str | DebiasConfig = "mean", k: int | None = None,
                    detector: LanguageIdentifier | None = None, **options) -> "LanguageDebias":
        """Fit on passage vectors (and optionally query vectors, for query-side statistics) with their languages."""
        config = _config(method, k, options)
        passages = _fit_side(passage_vectors, None if passage_langs is None else np.asarray(passage_langs, object),
                             config)
        queries = None
        if query_vectors is not None:
            queries = _fit_side(query_vectors, None if query_langs is None else np.asarray(query_langs, object),
                                config)
        return cls(config, passages, queries, detector)

    @classmethod
    def fit(cls, encoder, candidates: pd.DataFrame, method: str | DebiasConfig = "mean", *, k: int | None = None,
            queries: pd.DataFrame | None = None, detector: LanguageIdentifier | str | None = None,
            **options) -> "LanguageDebias":
        """Encode ``candidates`` (``docno``, ``text`` [, ``context``], ``lang``) with ``encoder`` and fit on them.

        Args:
            encoder: a :class:`~.biencoder.SentenceTransformerBiEncoder` (or any pyterrier-dr ``BiEncoder``).
            candidates: the pool (or a sample); ``lang`` is needed unless ``method`` is "global" or a detector
                is given (then it is identified from ``text``).
            method: "mean", "lir", "global" (or "lir:K" / "global:K"), or a :class:`DebiasConfig`.
            queries: optional questions (``query`` [, ``lang``]) for query-side statistics, e.g. another
                collection's questions. Never fit on the questions you evaluate unless you mean to (transductive).
            detector: a :class:`~.debias_langid.LanguageIdentifier` (or a backend name, "py3langid" / "lingua")
                for rows without a language, at fit and transform time.
        """
        config = _config(method, k, options)
        if isinstance(detector, str):
            detector = LanguageIdentifier(_known_languages(candidates, queries), backend=detector)
        pt.validate.columns(candidates, includes=["text"])
        if hasattr(encoder, "encode_candidates"):
            passage_vectors = encoder.encode_candidates(candidates)
        else:
            passage_vectors = encoder.encode_docs(candidates["text"].astype(str).tolist())
        passage_langs = row_languages(candidates, ("doc_lang", "lang"), "text", detector, config)
        query_vectors = query_langs = None
        if queries is not None:
            pt.validate.columns(queries, includes=["query"])
            query_vectors = encoder.encode_queries(queries["query"].astype(str).tolist())
            query_langs = row_languages(queries, ("query_lang", "lang"), "query", detector, config)
        return cls.fit_vectors(passage_vectors, passage_langs, query_vectors=query_vectors, query_langs=query_langs,
                               method=config, detector=detector)

    # --- transforming ----------------------------------------------------------------------------------------

    def transform_vectors(self, vectors: np.ndarray, langs: Sequence[str] | None, side: str = PASSAGE) -> np.ndarray:
        """Debiased copies of ``vectors`` [n, d] whose languages are ``langs`` (ignored by "global");
        ``side`` is "passage" or "query"."""
        if side not in (QUERY, PASSAGE):
            raise ValueError(f"side must be 'query' or 'passage', got {side!r}")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.passages.pool_mean.shape[0]:
            raise DebiasError(f"expected vectors of shape [n, {self.passages.pool_mean.shape[0]}], "
                              f"got {vectors.shape}")
        own = self.queries if side == QUERY and self.queries is not None else self.passages
        if self.config.method == "global":
            directions = self.passages.pool_components  # one label-free subspace for both sides
            out = vectors - own.pool_mean
            out = out - (out @ directions.T) @ directions
            return self._finish(out)
        if langs is None:
            raise DebiasError(f"the {self.config.method!r} method needs the vectors' languages")
        langs = np.asarray(langs, dtype=object)
        if len(langs) != len(vectors):
            raise DebiasError(f"{len(langs)} languages for {len(vectors)} vectors")
        out = np.empty_like(vectors)
        for lang in pd.unique(langs):
            rows = langs == lang
            stats, row = self._statistics(lang, side)
            block = vectors[rows]
            if self.config.method == "mean":
                out[rows] = block - (stats.means[row] if row is not None else stats.pool_mean)
            else:  # lir
                directions = stats.components[row] if row is not None else stats.pool_components
                out[rows] = block - (block @ directions.T) @ directions
        return self._finish(out)

    def _statistics(self, lang, side: str) -> tuple[SideStatistics, int | None]:
        """The statistics for ``lang`` on ``side``: (side statistics, row of the language or None for pooled)."""
        sides = [self.queries, self.passages] if side == QUERY and self.queries is not None else [self.passages]
        for stats in sides:
            if stats.has(lang):
                return stats, stats._row[lang]
        if self.config.unseen_language == "error" or lang is None or (isinstance(lang, float) and np.isnan(lang)):
            known = ", ".join(self.passages.langs)
            raise DebiasError(f"no {side} statistics for the language {lang!r} (fitted on: {known}); fit on data "
                              "in that language or use unseen_language='pool'")
        if (side, lang) not in self._warned:
            self._warned.add((side, lang))
            warnings.warn(f"language {lang!r} was not seen when fitting the debiasing: its {side} vectors get the "
                          "pooled statistics", stacklevel=4)
        return sides[0], None

    def _finish(self, vectors: np.ndarray) -> np.ndarray:
        if self.config.normalise:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, np.finfo(np.float32).tiny)
        return vectors.astype(np.float32, copy=False)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        sides = [(c, s, cols, text) for c, s, cols, text in (
            ("query_vec", QUERY, ("query_lang", "lang"), "query"),
            ("doc_vec", PASSAGE, ("doc_lang", "lang"), "text"),
        ) if c in inp.columns]
        if not sides:
            raise DebiasError(f"LanguageDebias needs a 'query_vec' or 'doc_vec' column (an encoder's output); got "
                              f"columns {list(inp.columns)}")
        out = inp.copy()
        for column, side, lang_columns, text_column in sides:
            if len(out) == 0:
                continue
            vectors = np.stack(out[column].to_numpy())
            langs = row_languages(out, lang_columns, text_column, self.detector, self.config)
            out[column] = list(self.transform_vectors(vectors, langs, side))
        return out

    # --- persistence -----------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write ``debias.json`` (config, languages, detector) and ``debias.npz`` (arrays) into the folder
        ``path`` (created; e.g. ``index.index_path / "debias"`` to keep it with a FlexIndex)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays, meta = {}, {"format_version": FORMAT_VERSION, "config": asdict(self.config),
                            "detector": self.detector.to_dict() if self.detector else None, "sides": {}}
        for name, stats in ((PASSAGE, self.passages), (QUERY, self.queries)):
            if stats is None:
                continue
            meta["sides"][name] = {"langs": list(stats.langs), "counts": list(stats.counts)}
            for key in ("means", "pool_mean", "components", "pool_components"):
                value = getattr(stats, key)
                if value is not None:
                    arrays[f"{name}.{key}"] = value
        np.savez(path / STATE_NPZ, **arrays)
        (path / STATE_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LanguageDebias":
        path = Path(path)
        if not (path / STATE_JSON).is_file() or not (path / STATE_NPZ).is_file():
            raise DebiasError(f"{path} holds no saved debiasing ({STATE_JSON} and {STATE_NPZ})")
        meta = json.loads((path / STATE_JSON).read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise DebiasError(f"{path}: unsupported debiasing format {meta.get('format_version')!r}")
        with np.load(path / STATE_NPZ) as data:
            arrays = {key: data[key] for key in data.files}
        sides = {}
        for name, info in meta["sides"].items():
            sides[name] = SideStatistics(
                langs=tuple(info["langs"]), counts=tuple(info["counts"]), means=arrays[f"{name}.means"],
                pool_mean=arrays[f"{name}.pool_mean"], components=arrays.get(f"{name}.components"),
                pool_components=arrays.get(f"{name}.pool_components"))
        detector = LanguageIdentifier.from_dict(meta["detector"]) if meta.get("detector") else None
        return cls(DebiasConfig(**meta["config"]), sides[PASSAGE], sides.get(QUERY), detector)


def _config(method, k, options) -> DebiasConfig:
    if isinstance(method, DebiasConfig):
        if k is not None or options:
            raise DebiasError("pass either a DebiasConfig or method/k/options, not both")
        return method
    config = DebiasConfig.parse(method, **options)
    if k is not None:
        config = DebiasConfig(config.method, k, config.normalise, config.unseen_language)
    return config


def _known_languages(*frames) -> list[str] | None:
    langs = set()
    for frame in frames:
        if frame is not None and "lang" in frame.columns:
            langs.update(frame["lang"].dropna().astype(str))
    return sorted(langs) or None


def row_languages(frame: pd.DataFrame, columns: Sequence[str], text_column: str, detector, config: DebiasConfig):
    """The language of every row: the first of ``columns`` present, else identified from ``text_column`` by
    ``detector``; ``None`` for the label-free "global" method (the fit and the evaluation's factory both ask)."""
    if config.method == "global":
        return None
    for column in columns:
        if column in frame.columns:
            return frame[column].to_numpy(dtype=object)
    if detector is None:
        raise DebiasError(f"the rows have no language column ({' or '.join(columns)}) and no language detector was "
                          "given: add a 'lang' column, pass detector='py3langid', or use the label-free 'global' "
                          "method")
    if text_column not in frame.columns:
        raise DebiasError(f"cannot identify languages: no {text_column!r} column")
    return np.asarray(detector(frame[text_column].astype(str).tolist()), dtype=object)


__all__ = [
    "DebiasConfig",
    "DebiasError",
    "LanguageDebias",
    "METHODS",
    "SideStatistics",
    "row_languages",
]
