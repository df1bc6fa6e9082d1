"""Dense retrieval over collections that do not fit in memory: streamed indexing into pyterrier-dr FlexIndexes.

Documents stream from any iterable of dicts (an ir_datasets ``docs_iter()``, a generator) in chunks through a
bi-encoder into one or more pyterrier-dr :class:`~pyterrier_dr.FlexIndex` shards on disk; neither all texts nor all
vectors are ever held in memory (pyterrier's indexing pipeline ``encoder >> index.indexer()`` pulls ``chunk_size``
documents at a time, and FlexIndex appends each vector to ``vecs.f4`` as it comes)::

    encoder = SentenceTransformerBiEncoder("default", candidate_text="sentence")
    index = ShardedIndex("mmarco-de.index")
    index.build(encoder, irds_documents(dataset), identity=index_identity("mmarco/v2/de", encoder))
    pipeline = encoder.query_encoder() >> index.retriever(RetrieverConfig("faiss-hnsw", num_results=100))

Layout of an index folder: ``build.json`` (what it was built from, its shards and their sizes; written last, so a
folder without it is an unfinished build) and one FlexIndex per shard, ``shard-00-of-02``, ``shard-01-of-02`` (one
shard, ``shard-00-of-01``, when one process built it). Under ``torchrun`` each rank writes its own shard (see
:mod:`pyterrier_hybrid.retrieval.sharded`); retrieval searches every shard and fuses their top k by score.

An existing index is reused when it was built from the same dataset, model, candidate text and token limit
(:func:`index_identity`), and never overwritten unless asked (``overwrite=True``, ``--overwrite-index``): any other
existing folder is an :class:`IndexMismatchError`.

Retrievers and the memory each needs (n documents of d float32 dimensions; "vectors" = n x d x 4 bytes, the size of
``vecs.f4``):

- ``exact``: pyterrier-dr's numpy retriever; scans the memory-mapped ``vecs.f4`` in blocks of ``exact_batch_size``
  vectors: O(queries x block) working memory, the vectors stay in the page cache (reclaimable), exact scores;
- ``faiss-flat``: FAISS brute force; loads all vectors into memory (vectors); exact scores, faster per query;
- ``faiss-hnsw``: FAISS HNSW graph over the flat vectors: vectors + the graph (about n x hnsw_neighbours x 8 bytes;
  both cached beside the shard as ``hnsw-full_*.faiss``); approximate, recall set by ``hnsw_ef_search``;
- ``faiss-ivf``: FAISS inverted file (IVF-Flat): vectors (copied into the lists, cached as ``ivf_*.faiss``) + the
  centroids; approximate, recall set by ``ivf_n_probe`` of ``ivf_n_list`` lists.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import pyterrier as pt

from pyterrier_hybrid.errors import UserError

MANIFEST_NAME = "build.json"
MANIFEST_FORMAT = "pyterrier-hybrid/sharded-flex"
RETRIEVER_OPTIONS: tuple[str, ...] = ("exact", "faiss-flat", "faiss-hnsw", "faiss-ivf")


class IndexMismatchError(UserError):
    """An index folder exists but was not built from what is asked now (or its build did not finish)."""


class DamagedIndexError(IndexMismatchError):
    """A finished index whose files do not match its ``build.json`` (cut short by a full disk or an interrupted
    copy, or a file missing)."""


@dataclass(frozen=True)
class RetrieverConfig:
    """Which retriever searches a :class:`ShardedIndex`, with its parameters (memory: see the module documentation).

    Attributes:
        kind: ``exact`` (chunked numpy over the memory-mapped vectors), ``faiss-flat``, ``faiss-hnsw``, ``faiss-ivf``.
        num_results: results per query (over all shards together).
        exact_batch_size: vectors scored at once by ``exact`` (working memory: queries x this many floats).
        hnsw_neighbours: HNSW graph degree (FAISS' M; level 0 keeps 2M neighbours per vector).
        hnsw_ef_construction: HNSW candidate list while building (faiss' default 40 made a graph whose recall@100
            stayed below 0.88 on 300k synthetic passages whatever the ef_search; 200 reached 0.95 at ef_search 512,
            benchmarks/README.md (g)).
        hnsw_ef_search: HNSW candidate list while searching (higher: better recall, slower); at least num_results
            is sensible, since FAISS returns at most ef_search results per query.
        ivf_n_list: IVF lists (``None``: pyterrier-dr's default, sqrt(n) rounded up to a power of two).
        ivf_n_probe: IVF lists searched per query (higher: better recall, slower); 64 of 1,024 lists gave
            recall@100 0.957 of exact on 300k synthetic passages (benchmarks/README.md (g)).
        query_batch_size: queries searched at once by the FAISS retrievers.
    """

    kind: str = "exact"
    num_results: int = 1000
    exact_batch_size: int = 65536
    hnsw_neighbours: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 1024
    ivf_n_list: int | None = None
    ivf_n_probe: int = 64
    query_batch_size: int = 64

    def __post_init__(self):
        if self.kind not in RETRIEVER_OPTIONS:
            raise UserError(f"retriever must be one of {', '.join(RETRIEVER_OPTIONS)}, got {self.kind!r}")
        for name in ("num_results", "exact_batch_size", "hnsw_neighbours", "hnsw_ef_construction", "hnsw_ef_search",
                     "ivf_n_probe", "query_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.ivf_n_list is not None and self.ivf_n_list < 1:
            raise UserError(f"ivf_n_list must be a positive integer or None, got {self.ivf_n_list}")


def index_identity(dataset: str, encoder) -> dict[str, Any]:
    """What decides an index's vectors: the dataset, the model, the candidate text and the token limit.

    An index is reused only when its recorded identity equals this one."""
    return {
        "dataset": str(dataset).removeprefix("irds:"),
        "model": str(getattr(encoder, "model_name", None) or repr(encoder)),
        "candidate_text": getattr(encoder, "candidate_text", None),
        "max_length": getattr(encoder, "max_length", None),
    }


def irds_documents(dataset) -> Iterator[dict[str, Any]]:
    """The documents of an ir_datasets dataset as records (``docno``, ``text`` and the documents' other fields),
    one at a time from ``docs_iter()`` (``text`` is the document's ``default_text()`` when it has no text field)."""
    for doc in dataset.docs_iter():
        record = doc._asdict()
        record["docno"] = record.pop("doc_id")
        if "text" not in record:
            record["text"] = doc.default_text()
        yield record


def shard_of(documents: Iterable[dict], rank: int, world_size: int) -> Iterator[dict]:
    """Document i goes to rank ``i % world_size``: every rank reads the stream and keeps its own (reading is cheap
    next to encoding, and it works for any iterable, unlike ir_datasets' slicing, which not every dataset has)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return itertools.islice(documents, rank, None, world_size)


def shard_name(rank: int, world_size: int) -> str:
    return f"shard-{rank:02d}-of-{world_size:02d}"


class ShardedIndex:
    """A folder of FlexIndex shards with a ``build.json`` manifest (see the module documentation).

    Args:
        path: the index folder.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._shards: list | None = None

    def __repr__(self) -> str:
        return f"ShardedIndex({str(self.path)!r})"

    # --- state -------------------------------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_NAME

    def manifest(self) -> dict[str, Any] | None:
        """The recorded build, or ``None`` when the folder has no finished build."""
        if not self.manifest_path.is_file():
            return None
        manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT:
            raise IndexMismatchError(f"{self.manifest_path} is not a pyterrier-hybrid index manifest")
        return manifest

    def built(self) -> bool:
        return self.manifest() is not None

    def __len__(self) -> int:
        manifest = self.manifest()
        if manifest is None:
            raise IndexMismatchError(f"no finished index at {self.path}")
        return int(manifest["doc_count"])

    def shards(self) -> list:
        """The shards as pyterrier-dr FlexIndexes (quiet: the callers show their own progress); checks their files
        against ``build.json`` first (:meth:`check_files`)."""
        import pyterrier_dr

        if self._shards is None:
            manifest = self.manifest()
            if manifest is None:
                raise IndexMismatchError(f"no finished index at {self.path}")
            self.check_files(manifest)
            self._shards = [pyterrier_dr.FlexIndex(self.path / shard["dir"], verbose=False)
                            for shard in manifest["shards"]]
        return self._shards

    def check_files(self, manifest: dict[str, Any]) -> None:
        """Raise :class:`DamagedIndexError` unless every shard's files are there and ``vecs.f4`` holds exactly the
        recorded number of vectors: a file cut short would otherwise fail deep inside numpy's memory map (or, when
        too long, be searched with vectors that are not the recorded documents')."""
        vec_size = int(manifest["vec_size"])
        for shard in manifest["shards"]:
            folder = self.path / shard["dir"]
            missing = [name for name in ("pt_meta.json", "docnos.npids", "vecs.f4") if not (folder / name).is_file()]
            if missing:
                self._damaged(f"{shard['dir']}/{missing[0]} is missing")
            count = int(shard["doc_count"])
            try:
                meta = json.loads((folder / "pt_meta.json").read_text(encoding="utf-8"))
            except ValueError:
                self._damaged(f"{shard['dir']}/pt_meta.json is not valid JSON")
            if meta.get("doc_count") != count:
                self._damaged(f"{shard['dir']}/pt_meta.json counts {meta.get('doc_count')} documents, {MANIFEST_NAME} "
                              f"{count}")
            expected = count * vec_size * 4
            actual = (folder / "vecs.f4").stat().st_size
            if actual != expected:
                self._damaged(f"{shard['dir']}/vecs.f4 has {actual:,} bytes where {MANIFEST_NAME}'s {count:,} vectors "
                              f"of {vec_size} float32 dimensions take {expected:,} (cut short by a full disk or an "
                              "interrupted copy?)")

    def _damaged(self, problem: str):
        raise DamagedIndexError(f"the index at {self.path} is damaged: {problem}; pass --overwrite-index to delete it "
                                "and build again")

    def disk_bytes(self) -> int:
        """Bytes of every file in the folder (vectors, docnos and any cached FAISS structures)."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def check_reusable(self, identity: dict[str, Any], *, overwrite: bool = False) -> bool:
        """``True`` when a finished build of ``identity`` is there (reuse it); ``False`` when the folder is free to
        build in (absent, empty, or ``overwrite`` asked: the caller deletes it). Otherwise IndexMismatchError."""
        if not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir())):
            return False
        if overwrite:
            return False
        manifest = self.manifest() if self.path.is_dir() else None
        if manifest is None:
            raise IndexMismatchError(
                f"{self.path} exists but holds no finished index (no {MANIFEST_NAME}: an interrupted build or another "
                "folder); choose another --index-dir, or pass --overwrite-index to delete it and build again")
        if manifest["identity"] != identity:
            differences = ", ".join(f"{key} {manifest['identity'].get(key)!r} (now {value!r})"
                                    for key, value in identity.items() if manifest["identity"].get(key) != value)
            raise IndexMismatchError(
                f"the index at {self.path} was built from a different {differences}; choose another --index-dir, or "
                "pass --overwrite-index to delete it and build again")
        self.check_files(manifest)
        return True

    # --- building ----------------------------------------------------------------------------------------------

    def build(self, encoder, documents: Iterable[dict], *, identity: dict[str, Any], overwrite: bool = False,
              chunk_size: int = 4096, show_progress: bool = True) -> "ShardedIndex":
        """Build the index in one process (one shard) unless a finished build of ``identity`` is there already.

        Args:
            encoder: a pyterrier-dr BiEncoder (its ``doc_encoder()`` turns ``docno, text[, context]`` into
                ``doc_vec``).
            documents: records with ``docno`` and the text fields, read once, ``chunk_size`` at a time.
            identity: what the vectors are built from (:func:`index_identity`), recorded in ``build.json``.
            overwrite: delete an existing folder instead of refusing (a matching finished build is still reused).
        """
        if self.check_reusable(identity, overwrite=overwrite):
            return self
        if self.path.exists():
            shutil.rmtree(self.path)
        count, vec_size = self.build_shard(encoder, documents, rank=0, world_size=1, chunk_size=chunk_size,
                                           show_progress=show_progress)
        self.write_manifest(identity, [count], vec_size)
        return self

    def build_shard(self, encoder, documents: Iterable[dict], *, rank: int, world_size: int, chunk_size: int = 4096,
                    show_progress: bool = True) -> tuple[int, int]:
        """Encode this rank's documents (``shard_of``) into its FlexIndex shard; returns (documents, dimensions).

        The pipeline is pyterrier's own: ``doc_encoder >> FlexIndex.indexer()``, whose ``index()`` chunks the
        input stream (more_itertools.chunked) and writes each vector to disk as it comes."""
        import pyterrier_dr

        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
        flex = pyterrier_dr.FlexIndex(self.path / shard_name(rank, world_size), verbose=show_progress)
        pipeline = encoder.doc_encoder(verbose=False) >> flex.indexer(mode="create")
        pipeline.index(shard_of(iter(documents), rank, world_size), batch_size=chunk_size)
        meta, = flex.payload(return_dvecs=False, return_docnos=False)
        return int(meta["doc_count"]), int(meta["vec_size"] or 0)

    def write_manifest(self, identity: dict[str, Any], doc_counts: list[int], vec_size: int) -> None:
        """Record a finished build (written last and atomically: its presence means every shard is complete)."""
        world_size = len(doc_counts)
        manifest = {
            "format": MANIFEST_FORMAT,
            "identity": identity,
            "doc_count": int(sum(doc_counts)),
            "vec_size": int(vec_size),
            "shards": [{"dir": shard_name(rank, world_size), "doc_count": int(count)}
                       for rank, count in enumerate(doc_counts)],
        }
        if manifest["doc_count"] == 0:
            raise ValueError("no documents were indexed")
        temporary = self.manifest_path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.manifest_path)
        self._shards = None

    # --- retrieval ---------------------------------------------------------------------------------------------

    def retriever(self, config: RetrieverConfig | None = None) -> pt.Transformer:
        """``qid, query_vec`` -> ``qid, docno, score, rank`` (top ``num_results`` over all shards)."""
        config = config or RetrieverConfig()
        retrievers = [_shard_retriever(flex, config) for flex in self.shards()]
        if len(retrievers) == 1:
            return retrievers[0]
        return ShardFusion(retrievers, config.num_results)


def _shard_retriever(flex, config: RetrieverConfig) -> pt.Transformer:
    n = len(flex)
    k = min(config.num_results, n)
    if config.kind == "exact":
        return flex.np_retriever(num_results=k, batch_size=config.exact_batch_size, drop_query_vec=True)
    if config.kind == "faiss-flat":
        retriever = flex.faiss_flat_retriever(qbatch=config.query_batch_size, drop_query_vec=True)
        retriever.num_results = k  # pyterrier-dr's factory has no num_results argument; its retriever does
        return retriever
    if config.kind == "faiss-hnsw":
        return _hnsw_retriever(flex, config, k)
    n_list = None if config.ivf_n_list is None else min(config.ivf_n_list, n)
    return flex.faiss_ivf_retriever(num_results=k, n_list=n_list, n_probe=config.ivf_n_probe, drop_query_vec=True)


def _hnsw_retriever(flex, config: RetrieverConfig, num_results: int) -> pt.Transformer:
    """pyterrier-dr's FAISS retriever over the shard's HNSW index, read from ``hnsw-full_n-M_ef-E.faiss`` beside the
    shard or built (and written there) on first use; kept in the FlexIndex's cache for the life of the object.

    Built here rather than by pyterrier-dr's ``faiss_hnsw_retriever``: pyterrier-dr 0.8.1 writes its cached graph
    with an empty vector storage (to save disk) and faiss 1.15 refuses to read such a file back ("HNSW storage
    ntotal 0 != index ntotal"), so a second process, or a reused index, could not search. This file holds the
    vectors as well (disk: graph + a copy of the vectors); searching needs them in memory either way."""
    import faiss
    from pyterrier_dr.flex.faiss_retr import FaissRetriever

    key = ("pyterrier_hybrid_hnsw", config.hnsw_neighbours, config.hnsw_ef_construction)
    if key not in flex._cache:  # FlexIndex's per-object cache of loaded structures
        path = flex.index_path / f"hnsw-full_n-{config.hnsw_neighbours}_ef-{config.hnsw_ef_construction}.faiss"
        if path.exists():
            index = faiss.read_index(str(path))
        else:
            vectors, meta = flex.payload(return_docnos=False)
            index = faiss.IndexHNSWFlat(meta["vec_size"], config.hnsw_neighbours, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.hnsw_ef_construction
            for start in range(0, vectors.shape[0], 4096):  # from the memory-mapped vectors, block by block
                index.add(np.ascontiguousarray(vectors[start:start + 4096]))
            temporary = path.with_suffix(".faiss.tmp")
            faiss.write_index(index, str(temporary))
            os.replace(temporary, path)
        flex._cache[key] = index
    return FaissRetriever(flex, flex._cache[key], num_results=num_results, ef_search=config.hnsw_ef_search,
                          search_bounded_queue=True, qbatch=config.query_batch_size, drop_query_vec=True,
                          index_spec=key)


class ShardFusion(pt.Transformer):
    """Searches every shard and keeps the top ``num_results`` of their union by score (ties: docno ascending).

    Input: ``qid, query_vec`` (+ topic columns). Output: topic columns (without ``query_vec``) + ``docno, score,
    rank``. With exact shard retrievers the result is the exact top k of the whole collection."""

    def __init__(self, shard_retrievers: list[pt.Transformer], num_results: int):
        self.shard_retrievers = list(shard_retrievers)
        self.num_results = num_results

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        pt.validate.query_frame(topics, extra_columns=["query_vec"])
        results = pd.concat([retriever(topics) for retriever in self.shard_retrievers], ignore_index=True)
        results = results.drop(columns=[c for c in ("docid", "query_vec", "rank") if c in results.columns])
        results = results.sort_values(["qid", "score", "docno"], ascending=[True, False, True], kind="stable")
        results = results.groupby("qid", sort=False).head(self.num_results).reset_index(drop=True)
        results["rank"] = results.groupby("qid", sort=False).cumcount()
        return results


__all__ = [
    "DamagedIndexError",
    "IndexMismatchError",
    "RETRIEVER_OPTIONS",
    "RetrieverConfig",
    "ShardFusion",
    "ShardedIndex",
    "index_identity",
    "irds_documents",
    "shard_of",
    "shard_name",
]
