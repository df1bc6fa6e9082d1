"""Tests of the large-collection path: streamed indexing into FlexIndex shards, index reuse and refusal, the
retriever choices, and sharded encoding under torchrun (2 gloo processes on the CPU), with a tiny random model and
the XQuAD-R German candidates (1,276 documents, 1,190 questions)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import NamedTuple

import ir_datasets
import numpy as np
import pandas as pd
import pytest
from ir_datasets.formats import BaseDocs

from pyterrier_hybrid.cli import main as cli_main
from pyterrier_hybrid.evaluation import IrdsEvaluationConfig, evaluate_irds
from pyterrier_hybrid.retrieval.biencoder import SentenceTransformerBiEncoder
from pyterrier_hybrid.retrieval.large import (
    DamagedIndexError,
    IndexMismatchError,
    RetrieverConfig,
    ShardedIndex,
    index_identity,
    irds_documents,
)

DATASET = "lareqa/xquad-r/de"
SHALLOW = dict(measures=("nDCG@10", "R@100", "AP@100"), run_depth=100, show_progress=False)  # runs of depth 100


@pytest.fixture(scope="module")
def encoder(tiny_model_path):
    return SentenceTransformerBiEncoder(str(tiny_model_path), candidate_text="sentence", batch_size=32)


@pytest.fixture(scope="module")
def documents(lareqa_dir) -> list[dict]:
    return list(irds_documents(ir_datasets.load(DATASET)))


@pytest.fixture(scope="module")
def topics(lareqa_dir) -> pd.DataFrame:
    queries = list(ir_datasets.load(DATASET).queries_iter())[:40]
    return pd.DataFrame({"qid": [q.query_id for q in queries], "query": [q.text for q in queries]})


@pytest.fixture(scope="module")
def small_dataset(documents) -> str:
    """An ir_datasets id (registered in this process) of the first 300 German candidates and the questions whose
    answers lie among them: what the evaluate tests run on, to stay fast."""
    kept = documents[:300]
    source = ir_datasets.load(DATASET)
    docnos = {d["docno"] for d in kept}
    qrels = [q for q in source.qrels_iter() if q.doc_id in docnos]
    qids = {q.query_id for q in qrels}
    queries = [q for q in source.queries_iter() if q.query_id in qids]
    name = f"test-small/{uuid.uuid4().hex}"
    ir_datasets.registry.register(name, ir_datasets.Dataset(
        ListDocs(kept), ListComponent("queries", queries, source.queries_cls()),
        ListComponent("qrels", qrels, source.qrels_cls(), source.qrels_defs())))
    return name


@pytest.fixture(scope="module")
def single_index(encoder, documents, tmp_path_factory) -> ShardedIndex:
    index = ShardedIndex(tmp_path_factory.mktemp("single") / "index")
    return index.build(encoder, iter(documents), identity=index_identity(DATASET, encoder), chunk_size=300,
                       show_progress=False)


@pytest.fixture(scope="module")
def query_vectors(encoder, topics) -> np.ndarray:
    return encoder.encode_queries(topics["query"].tolist())


@pytest.fixture(scope="module")
def brute_force(single_index, topics, query_vectors):
    """The exact top k by dot product over every stored vector held in memory (the reference for the retrievers)."""
    flex, = single_index.shards()
    docnos, vectors, _ = flex.payload()
    docnos = np.array(list(docnos), dtype=object)
    scores = query_vectors @ np.asarray(vectors).T

    def top(k: int) -> pd.DataFrame:
        rows = []
        for qid, row in zip(topics["qid"], scores):
            best = np.argsort(-row, kind="stable")[:k]
            rows += [{"qid": qid, "docno": docnos[j], "score": float(row[j])} for j in best]
        return pd.DataFrame(rows)

    return top


def assert_same_rankings(results: pd.DataFrame, expected: pd.DataFrame, k: int):
    """The same top k per query: scores within 1e-5 as score-sorted lists, and the same docnos except where a
    near-tie (within 1e-5 of the k-th score) at the cut-off lets float rounding pick either document."""
    assert results.groupby("qid").size().eq(k).all()
    for qid, group in expected.groupby("qid"):
        got = results[results["qid"] == qid]
        np.testing.assert_allclose(np.sort(got["score"].to_numpy()), np.sort(group["score"].to_numpy()), atol=1e-5)
        clear = group.loc[group["score"] > group["score"].min() + 1e-5, "docno"]
        assert set(clear) <= set(got["docno"]), qid
        assert len(set(got["docno"]) ^ set(group["docno"])) <= 2 * (len(group) - len(clear)), qid


# ---------------------------------------------------------------------------------------------------------------
# Streaming


class StreamedDoc(NamedTuple):
    doc_id: str
    text: str


class ListDocs(BaseDocs):
    def __init__(self, documents: list[dict]):
        self._documents = documents

    def docs_iter(self):
        for document in self._documents:
            yield StreamedDoc(document["docno"], document["text"])

    def docs_count(self):
        return len(self._documents)

    def docs_cls(self):
        return StreamedDoc

    def docs_lang(self):
        return "de"


class ListComponent:
    """Queries or qrels from a list (ir_datasets finds components by their method names)."""

    def __init__(self, kind: str, items: list, cls, defs=None):
        setattr(self, f"{kind}_iter", lambda: iter(items))
        setattr(self, f"{kind}_handler", lambda: self)
        setattr(self, f"{kind}_count", lambda: len(items))
        setattr(self, f"{kind}_cls", lambda: cls)
        if defs is not None:
            setattr(self, f"{kind}_defs", lambda: defs)
        if kind == "queries":
            self.queries_lang = lambda: "de"


class GuardedDocs(BaseDocs):
    """A generator-backed docs component that fails the moment its consumer holds more than ``limit`` documents it
    has pulled but not yet had encoded (so any list(...) of the stream fails), and records the largest backlog."""

    def __init__(self, documents: list[dict], encoded: list[int], limit: int):
        self._documents, self._encoded, self.limit = documents, encoded, limit
        self.pulled = 0
        self.largest_backlog = 0

    def docs_iter(self):
        for document in self._documents:
            backlog = self.pulled - self._encoded[0]
            self.largest_backlog = max(self.largest_backlog, backlog)
            if backlog >= self.limit:
                raise AssertionError(f"{backlog} documents pulled and not encoded: the stream is being materialised")
            self.pulled += 1
            yield StreamedDoc(document["docno"], document["text"])

    def docs_count(self):
        return len(self._documents)

    def docs_cls(self):
        return StreamedDoc

    def docs_namespace(self):
        return "test-streamed"

    def docs_lang(self):
        return "de"


def counting(encoder, encoded: list[int]):
    """The encoder, counting in ``encoded[0]`` the documents it has encoded."""
    original = encoder.encode_texts

    def encode_texts(texts, prompt, **kwargs):
        vectors = original(texts, prompt, **kwargs)
        if prompt == encoder.passage_prompt:
            encoded[0] += len(texts)
        return vectors

    encoder.encode_texts = encode_texts
    return encoder


def test_documents_stream_through_the_encoder_in_chunks(tiny_model_path, documents, small_dataset, tmp_path):
    encoded = [0]
    encoder = counting(SentenceTransformerBiEncoder(str(tiny_model_path), candidate_text="sentence"), encoded)
    chunk = 100
    docs = GuardedDocs(documents[:300], encoded, limit=chunk + 1)
    source = ir_datasets.load(small_dataset)
    name = f"test-streamed/{uuid.uuid4().hex}"
    ir_datasets.registry.register(name, ir_datasets.Dataset(docs, source.queries_handler(), source.qrels_handler()))
    config = IrdsEvaluationConfig(**SHALLOW, encode_chunk_size=chunk, index_dir=str(tmp_path / "index"))
    result = evaluate_irds(encoder, name, system="tiny", config=config)

    assert docs.pulled == encoded[0] == 300
    assert docs.largest_backlog == chunk - 1  # one chunk at a time, never more
    assert len(result.per_query) == source.queries_count() > 200
    assert len(ShardedIndex(tmp_path / "index")) == 300

    # a list() of the same stream is refused: the guard can fail
    with pytest.raises(AssertionError, match="materialised"):
        list(GuardedDocs(documents, [0], limit=chunk + 1).docs_iter())


def test_the_streamed_plain_setting_equals_the_in_memory_exact_ranking(encoder, small_dataset, tmp_path):
    """evaluate_irds through the FlexIndex gives the measures of the exact in-memory retriever (DenseRetrieverFactory,
    the factory path's equivalent on the same documents)."""
    from pyterrier_hybrid.retrieval.dense import DenseRetrieverFactory

    config = IrdsEvaluationConfig(**SHALLOW, index_dir=str(tmp_path / "index"))
    streamed = evaluate_irds(encoder, small_dataset, system="tiny", config=config).summary_dict()["ad hoc"]
    in_memory_factory = DenseRetrieverFactory(encoder)

    class InMemory:  # a plain factory (no ``encoder`` attribute), so evaluate_irds takes the in-memory path
        def __call__(self, candidates):
            return in_memory_factory(candidates)

    in_memory = evaluate_irds(InMemory(), small_dataset, system="tiny", config=config).summary_dict()["ad hoc"]
    for measure, value in in_memory.items():
        assert streamed[measure] == pytest.approx(value, abs=1e-3), measure


# ---------------------------------------------------------------------------------------------------------------
# Reuse, refusal


def test_an_existing_index_is_reused_when_it_matches_and_never_overwritten(encoder, documents, single_index,
                                                                           tmp_path):
    vectors = single_index.path / "shard-00-of-01" / "vecs.f4"
    before = (vectors.stat().st_mtime_ns, vectors.stat().st_ino)
    identity = index_identity(DATASET, encoder)

    def no_documents():
        raise AssertionError("a matching index must be reused, not rebuilt")
        yield  # pragma: no cover

    assert single_index.build(encoder, no_documents(), identity=identity) is single_index
    assert (vectors.stat().st_mtime_ns, vectors.stat().st_ino) == before

    other = dict(identity, candidate_text="sentence+context")
    with pytest.raises(IndexMismatchError, match="candidate_text.*--overwrite-index"):
        single_index.build(encoder, iter(documents), identity=other)
    with pytest.raises(IndexMismatchError, match="dataset"):
        single_index.check_reusable(dict(identity, dataset="lareqa/xquad-r/en"))
    assert (vectors.stat().st_mtime_ns, vectors.stat().st_ino) == before

    unfinished = tmp_path / "unfinished"
    (unfinished / "shard-00-of-01").mkdir(parents=True)
    (unfinished / "shard-00-of-01" / "vecs.f4").write_bytes(b"\0" * 16)
    with pytest.raises(IndexMismatchError, match="no finished index"):
        ShardedIndex(unfinished).build(encoder, iter(documents[:10]), identity=identity)
    rebuilt = ShardedIndex(unfinished).build(encoder, iter(documents[:10]), identity=identity, overwrite=True,
                                             show_progress=False)
    assert len(rebuilt) == 10


def test_evaluate_command_reuses_its_index_and_names_the_flag_on_a_mismatch(tiny_model_path, small_dataset, tmp_path,
                                                                           capsys):
    index_dir = tmp_path / "index"
    common = ["evaluate", "--model", f"tiny={tiny_model_path}", "--collection", f"irds:{small_dataset}",
              "--index-dir", str(index_dir), "--retriever", "faiss-flat"]
    assert cli_main(common + ["--candidate-text", "sentence", "--out", str(tmp_path / "a")]) == 0
    manifest = (index_dir / "build.json").read_text()
    first = pd.read_csv(tmp_path / "a" / "tiny" / "per_query.csv.gz")
    assert cli_main(common + ["--candidate-text", "sentence", "--out", str(tmp_path / "b"),
                              "--retriever", "exact"]) == 0
    second = pd.read_csv(tmp_path / "b" / "tiny" / "per_query.csv.gz")
    assert (index_dir / "build.json").read_text() == manifest
    # faiss-flat and exact score alike up to float rounding (~1e-7), which may swap near-tied documents deep in a
    # ranking (the tiny random model gives many): nearly every query's measures are equal, the means within 1e-3
    measures = ["nDCG@10", "R@100", "AP@1000"]
    equal = np.isclose(first[measures], second[measures], atol=1e-9).all(axis=1)
    assert equal.mean() >= 0.98
    np.testing.assert_allclose(first[measures].mean(), second[measures].mean(), atol=1e-3)

    capsys.readouterr()
    assert cli_main(common + ["--candidate-text", "sentence+context", "--out", str(tmp_path / "c")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after any model-loading progress bars
    assert error.startswith("pyterrier-hybrid evaluate: error: the index at")
    assert "--overwrite-index" in error and "candidate_text" in error


@pytest.mark.parametrize("damage", ["cut short", "too long", "docnos missing"])
def test_a_damaged_index_is_refused_when_opened(damage, encoder, single_index, tmp_path):
    copy = ShardedIndex(tmp_path / "copy")
    shutil.copytree(single_index.path, copy.path)
    shard = copy.path / "shard-00-of-01"
    vectors = shard / "vecs.f4"
    if damage == "cut short":  # a full disk or an interrupted copy: the last vectors, and half of one, are gone
        with vectors.open("r+b") as f:
            f.truncate(vectors.stat().st_size - 4 * 32 * 10 - 64)
        problem = r"vecs.f4 has .* bytes where build.json's 1,276 vectors of 32 float32 dimensions take 163,328"
    elif damage == "too long":
        with vectors.open("ab") as f:
            f.write(b"\0" * 128)
        problem = "vecs.f4 has 163,456 bytes"
    else:
        (shard / "docnos.npids").unlink()
        problem = "docnos.npids is missing"
    with pytest.raises(DamagedIndexError, match=f"{problem}.*--overwrite-index"):
        copy.shards()
    with pytest.raises(DamagedIndexError, match=problem):
        copy.check_reusable(index_identity(DATASET, encoder))
    assert copy.check_reusable(index_identity(DATASET, encoder), overwrite=True) is False  # free to rebuild


def test_evaluate_on_a_cut_short_index_names_the_flag_and_rebuilds_with_it(tiny_model_path, small_dataset, tmp_path,
                                                                          capsys):
    index_dir = tmp_path / "index"
    common = ["evaluate", "--model", f"tiny={tiny_model_path}", "--collection", f"irds:{small_dataset}",
              "--candidate-text", "sentence", "--index-dir", str(index_dir)]
    assert cli_main(common + ["--out", str(tmp_path / "a")]) == 0
    vectors = index_dir / "shard-00-of-01" / "vecs.f4"
    size = vectors.stat().st_size
    with vectors.open("r+b") as f:
        f.truncate(size // 2)

    capsys.readouterr()
    assert cli_main(common + ["--out", str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after any model-loading progress bars
    assert error.startswith(f"pyterrier-hybrid evaluate: error: the index at {index_dir} is damaged: "
                            "shard-00-of-01/vecs.f4 has"), error
    assert error.endswith("pass --overwrite-index to delete it and build again")
    assert cli_main(common + ["--out", str(tmp_path / "c"), "--overwrite-index"]) == 0
    assert vectors.stat().st_size == size


# ---------------------------------------------------------------------------------------------------------------
# Retrievers


@pytest.mark.parametrize("kind", ["exact", "faiss-flat"])
def test_exact_retrievers_give_the_brute_force_ranking(kind, encoder, topics, single_index, brute_force):
    k = 20
    results = (encoder.query_encoder() >> single_index.retriever(RetrieverConfig(kind, num_results=k)))(topics)
    assert {"qid", "docno", "score", "rank"} <= set(results.columns) and "query_vec" not in results.columns
    assert_same_rankings(results, brute_force(k), k)


def test_approximate_retrievers_find_the_exact_neighbours_when_searching_widely(encoder, topics, single_index,
                                                                              brute_force):
    k = 20
    expected = brute_force(k)
    # IVF probing every list is an exhaustive search: exact
    ivf = RetrieverConfig("faiss-ivf", num_results=k, ivf_n_list=16, ivf_n_probe=16)
    assert_same_rankings((encoder.query_encoder() >> single_index.retriever(ivf))(topics), expected, k)
    # HNSW (approximate by construction): high recall with a wide candidate list, lower with a narrow one
    recalls = {}
    for ef in (k, 400):
        hnsw = RetrieverConfig("faiss-hnsw", num_results=k, hnsw_ef_search=ef, hnsw_neighbours=8)
        results = (encoder.query_encoder() >> single_index.retriever(hnsw))(topics)
        recalls[ef] = np.mean([len(set(results.loc[results.qid == q, "docno"]) & set(g.docno)) / k
                               for q, g in expected.groupby("qid")])
    assert recalls[400] >= 0.95
    assert recalls[400] >= recalls[k]
    # another process (a fresh ShardedIndex) reads the cached HNSW file back and searches alike
    hnsw = RetrieverConfig("faiss-hnsw", num_results=k, hnsw_ef_search=400, hnsw_neighbours=8)
    again = (encoder.query_encoder() >> ShardedIndex(single_index.path).retriever(hnsw))(topics)
    assert_same_rankings(again, results, k)


def test_bad_retriever_settings_are_user_errors():
    from pyterrier_hybrid.errors import UserError

    with pytest.raises(UserError, match="retriever must be one of"):
        RetrieverConfig("annoy")
    with pytest.raises(UserError, match="hnsw_ef_search"):
        RetrieverConfig("faiss-hnsw", hnsw_ef_search=0)


# ---------------------------------------------------------------------------------------------------------------
# Sharded encoding under torchrun


def test_torchrun_shards_hold_every_document_once_and_search_like_one_index(tiny_model_path, encoder, documents,
                                                                           topics, single_index, tmp_path):
    index_dir = tmp_path / "sharded"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "pyterrier_hybrid.retrieval.sharded",
               "--dataset", DATASET, "--model", str(tiny_model_path), "--candidate-text", "sentence",
               "--batch-size", "32", "--index-dir", str(index_dir), "--chunk-size", "200"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]

    index = ShardedIndex(index_dir)
    manifest = index.manifest()
    assert [s["dir"] for s in manifest["shards"]] == ["shard-00-of-02", "shard-01-of-02"]
    assert manifest["identity"] == index_identity(DATASET, encoder)
    shard_docnos = [list(flex.docnos()) for flex in index.shards()]
    assert [len(d) for d in shard_docnos] == [638, 638]
    every = [d for docnos in shard_docnos for d in docnos]
    assert len(every) == len(set(every)) == len(documents)
    assert set(every) == {d["docno"] for d in documents}

    k = 20
    for kind in ("exact", "faiss-flat"):
        config = RetrieverConfig(kind, num_results=k)
        sharded = (encoder.query_encoder() >> index.retriever(config))(topics)
        single = (encoder.query_encoder() >> single_index.retriever(config))(topics)
        assert_same_rankings(sharded, single, k)
        assert sharded.groupby("qid")["rank"].apply(list).map(lambda r: r == list(range(k))).all()

    # evaluate reuses the torchrun-built index (same dataset, model, candidate text)
    config = IrdsEvaluationConfig(**SHALLOW, index_dir=str(index_dir))
    from_shards = evaluate_irds(encoder, DATASET, system="tiny", config=config).summary_dict()["ad hoc"]
    single_config = IrdsEvaluationConfig(**SHALLOW, index_dir=str(single_index.path))
    from_single = evaluate_irds(encoder, DATASET, system="tiny", config=single_config).summary_dict()["ad hoc"]
    for measure, value in from_single.items():
        assert from_shards[measure] == pytest.approx(value, abs=1e-3), measure
