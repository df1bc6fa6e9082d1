"""The dense bi-encoder (pyterrier-dr BiEncoder over sentence-transformers) and the exact retriever + factory.

All on the tiny random model from conftest and real XQuAD-R texts.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_dr
import pytest
from sentence_transformers import SentenceTransformer

from pyterrier_hybrid.datasets import lareqa_collection
from pyterrier_hybrid.retrieval.biencoder import BiEncoderConfig, SentenceTransformerBiEncoder, TextTruncationWarning
from pyterrier_hybrid.retrieval.dense import DenseRetrieverFactory, EmbeddingCache, ExactDenseRetriever

ARTICLES = 2  # XQuAD-R articles used per language: enough for ranking, small enough for a fast test


@pytest.fixture(scope="module")
def xquad(lareqa_dir):
    return lareqa_collection("xquad-r")


def _subset(collection, langs, doc_langs=None):
    """Candidates, topics and qrels of the first ARTICLES articles (questions in ``langs``, candidates in
    ``doc_langs``)."""
    doc_langs = doc_langs or langs
    candidates = collection.candidates(doc_langs)
    titles = list(dict.fromkeys(candidates["title"]))[:ARTICLES]
    candidates = candidates[candidates["title"].isin(titles)].reset_index(drop=True)
    qrels = collection.qrels(langs, doc_langs)
    qrels = qrels[qrels["docno"].isin(set(candidates["docno"]))].reset_index(drop=True)
    topics = collection.topics(langs, doc_langs)
    topics = topics[topics["qid"].isin(set(qrels["qid"]))].reset_index(drop=True)
    return candidates, topics, qrels


@pytest.fixture(scope="module")
def de_subset(xquad):
    return _subset(xquad, ["de"])


@pytest.fixture(scope="module")
def sentence_transformer(tiny_model_path):
    return SentenceTransformer(str(tiny_model_path), device="cpu")


@pytest.fixture(scope="module")
def encoder(tiny_model_path):
    return SentenceTransformerBiEncoder(tiny_model_path, precision="fp32", batch_size=8)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- encoding ----------------------------------------------------------------------------------------------------


def test_model_prompts_are_applied(encoder, sentence_transformer, de_subset):
    candidates, topics, _ = de_subset
    queries = topics["query"].tolist()[:12]
    sentences = candidates["text"].tolist()[:12]
    assert (encoder.query_prompt, encoder.passage_prompt) == ("query: ", "passage: ")
    expected_queries = sentence_transformer.encode(queries, prompt="query: ", batch_size=4)
    np.testing.assert_allclose(encoder.encode_queries(queries), expected_queries, atol=1e-5)
    np.testing.assert_allclose(
        encoder.encode_docs(sentences), sentence_transformer.encode(sentences, prompt="passage: "), atol=1e-5
    )
    # the prompt changes the vectors (so the comparisons above do check that it was applied)
    assert np.abs(encoder.encode_queries(queries) - sentence_transformer.encode(queries)).max() > 1e-3


def test_explicit_prompts_override_the_models(tiny_model_path, sentence_transformer, de_subset):
    _, topics, _ = de_subset
    queries = topics["query"].tolist()[:5]
    encoder = SentenceTransformerBiEncoder(tiny_model_path, precision="fp32", query_prompt="frage: ")
    np.testing.assert_allclose(
        encoder.encode_queries(queries), sentence_transformer.encode(queries, prompt="frage: "), atol=1e-5
    )


def test_a_loaded_sentence_transformer_is_used_as_is(encoder, sentence_transformer, de_subset):
    candidates = de_subset[0].head(6)
    in_memory = SentenceTransformerBiEncoder(sentence_transformer, precision="fp32")
    assert in_memory.model is sentence_transformer
    np.testing.assert_allclose(in_memory.encode_candidates(candidates), encoder.encode_candidates(candidates),
                               atol=1e-6)


def test_vectors_come_back_in_input_order(encoder, sentence_transformer, tiny_model_path, xquad):
    # lengths from a few tokens to over the limit, shuffled, in batches of 3: sorting must be undone
    candidates = xquad.candidates(["th", "zh", "en"])
    texts = candidates.sample(n=20, random_state=3)["context"].str.slice(0, 600).tolist()
    texts = [t[: 20 * (i + 1)] for i, t in enumerate(texts)]
    vectors = encoder.encode_texts(texts, "passage: ", batch_size=3)
    one_by_one = np.stack([sentence_transformer.encode([t], prompt="passage: ")[0] for t in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    # batches cut by a token budget instead (long texts alone, short ones together) give the same vectors
    budgeted = SentenceTransformerBiEncoder(tiny_model_path, precision="fp32", max_batch_tokens=150)
    np.testing.assert_allclose(budgeted.encode_texts(texts, "passage: ", batch_size=8), one_by_one, atol=1e-5)


def test_candidate_text_options(tiny_model_path, sentence_transformer, de_subset):
    candidates = de_subset[0].head(10)
    with_context = SentenceTransformerBiEncoder(tiny_model_path, precision="fp32", candidate_text="sentence+context")
    sentence_only = SentenceTransformerBiEncoder(tiny_model_path, precision="fp32", candidate_text="sentence")
    joined = [s + " " + c for s, c in zip(candidates["text"], candidates["context"])]

    with_context_vecs = np.stack(with_context.doc_encoder()(candidates)["doc_vec"])
    sentence_vecs = np.stack(sentence_only.doc_encoder()(candidates)["doc_vec"])

    np.testing.assert_allclose(
        with_context_vecs, sentence_transformer.encode(joined, prompt="passage: "), atol=1e-5
    )
    np.testing.assert_allclose(
        sentence_vecs, sentence_transformer.encode(candidates["text"].tolist(), prompt="passage: "), atol=1e-5
    )
    assert np.abs(with_context_vecs - sentence_vecs).max() > 1e-3
    # a sentence-only encoder needs no context column
    sentence_only.doc_encoder()(candidates.drop(columns=["context"]))


def test_bfloat16_is_close_to_float32(tiny_model_path, de_subset):
    candidates, topics, _ = de_subset
    fp32 = SentenceTransformerBiEncoder(tiny_model_path, precision="fp32")
    bf16 = SentenceTransformerBiEncoder(tiny_model_path, precision="bf16")
    assert fp32.autocast_dtype is None
    assert str(bf16.autocast_dtype) == "torch.bfloat16"
    queries = topics["query"].tolist()[:30]
    q32, q16 = fp32.encode_queries(queries), bf16.encode_queries(queries)
    assert q16.dtype == np.float32
    assert _cosines(q32, q16).min() > 0.99
    assert np.abs(q32 - q16).max() > 0  # autocast did run in bfloat16
    d32, d16 = fp32.encode_candidates(candidates.head(30)), bf16.encode_candidates(candidates.head(30))
    assert _cosines(d32, d16).min() > 0.99


def test_invalid_configuration_is_rejected(tiny_model_path):
    with pytest.raises(ValueError, match="candidate_text"):
        BiEncoderConfig(candidate_text="context")
    with pytest.raises(ValueError, match="max_batch_tokens"):
        BiEncoderConfig(max_batch_tokens=0)
    with pytest.raises(ValueError, match="precision"):
        SentenceTransformerBiEncoder(tiny_model_path, precision="fp16")


# --- bad input ---------------------------------------------------------------------------------------------------


def test_missing_columns_are_named(encoder, de_subset):
    candidates, topics, _ = de_subset
    with pytest.raises(KeyError, match="context"):
        encoder.doc_encoder()(candidates[["docno", "text"]])
    with pytest.raises(KeyError, match="text"):
        encoder.doc_encoder()(candidates[["docno", "context"]])
    with pytest.raises(KeyError, match="query"):
        encoder.query_encoder()(topics[["qid"]])
    with pytest.raises(KeyError, match="context"):
        DenseRetrieverFactory(encoder)(candidates[["docno", "text"]])


@pytest.mark.parametrize("bad_query", ["", "   \t"])
def test_empty_query_is_a_clear_error_naming_the_qid(encoder, de_subset, bad_query):
    candidates, topics, _ = de_subset
    topics = topics.head(3).copy()
    topics.loc[1, "query"] = bad_query
    bad_qid = topics.loc[1, "qid"]
    with pytest.raises(ValueError, match=bad_qid):
        encoder.query_encoder()(topics)
    retriever = DenseRetrieverFactory(encoder)(candidates.head(5))
    with pytest.raises(ValueError, match=bad_qid):
        retriever(topics)
    with pytest.raises(ValueError, match="empty"):
        encoder.encode_queries(["fine", bad_query])


def test_long_texts_are_truncated_with_one_warning(encoder, sentence_transformer, xquad):
    long_contexts = xquad.candidates(["en"])["context"].drop_duplicates().head(4).tolist()
    long_texts = [c * 20 for c in long_contexts]  # well over the tiny model's 1024 tokens
    texts = long_texts + ["short one", "another short one"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vectors = encoder.encode_docs(texts)
    truncation_warnings = [w for w in caught if "truncated" in str(w.message)]
    assert len(truncation_warnings) == 1
    assert "4 of 6" in str(truncation_warnings[0].message)
    # truncated, not failed: same as sentence-transformers' own truncation to max_seq_length
    np.testing.assert_allclose(vectors, sentence_transformer.encode(texts, prompt="passage: "), atol=1e-5)
    very_long_query = " ".join(["Wer gewann den Super Bowl?"] * 200)
    with pytest.warns(UserWarning, match="1 of 1 queries"):
        assert encoder.encode_queries([very_long_query]).shape == (1, 32)


def test_a_5000_character_query_warns_on_every_query_path(encoder, de_subset):
    candidates, topics, _ = de_subset
    long_query = ("Wer gewann den Super Bowl 50 und wie viele Punkte gab die Verteidigung der Panthers ab? "
                  * 60)[:5000]
    assert len(long_query) == 5000
    topic = pd.DataFrame({"qid": ["long"], "query": [long_query]})
    first_stage = topic.merge(candidates.head(3), how="cross").assign(score=0.0, rank=0)
    paths = {
        "encode_queries": lambda: encoder.encode_queries([long_query]),
        "encode_queries(numpy, as pyterrier-dr passes)": lambda: encoder.encode_queries(np.array([long_query])),
        "query_encoder": lambda: encoder.query_encoder()(topic),
        "bi-encoder as a transformer": lambda: encoder(topic),
        "text_scorer": lambda: encoder.text_scorer()(first_stage),
        "exact retriever": lambda: ExactDenseRetriever.from_candidates(encoder, candidates)(topic),
    }
    for name, run in paths.items():
        for _ in range(2):  # every call warns, not only the first from a code location
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")
                run()
            messages = [str(w.message) for w in caught
                        if issubclass(w.category, TextTruncationWarning) and "queries" in str(w.message)]
            assert messages == [f"1 of 1 queries are longer than the model's limit of {encoder.max_length} tokens "
                                "(prompt and special tokens included) and were truncated to it"], name


@pytest.fixture
def encoded_texts(encoder, monkeypatch):
    """Every text the encoder's model tokenizes for encoding, in order (the model's ``preprocess`` spied on)."""
    seen: list[str] = []
    preprocess = encoder.model.preprocess

    def spy(texts, *args, **kwargs):
        seen.extend(texts)
        return preprocess(texts, *args, **kwargs)

    monkeypatch.setattr(encoder.model, "preprocess", spy)
    return seen


def test_each_distinct_text_is_encoded_once_per_call(encoder, de_subset, encoded_texts):
    candidates, topics, _ = de_subset
    topics, pool = topics.head(5), candidates.head(7)
    # a re-ranking frame: every query with the same 7 passages (35 rows), as bm25 % k >> text_scorer produces
    first_stage = topics.merge(pool, how="cross").assign(score=0.0, rank=0)
    reranked = encoder.text_scorer()(first_stage)
    assert len(reranked) == 35
    assert sorted(encoded_texts) == sorted(set(encoded_texts))  # nothing encoded twice
    assert len(encoded_texts) == 5 + 7
    # the vectors of repeated rows are those of encoding each text alone
    encoded_texts.clear()
    vectors = encoder.doc_encoder()(first_stage)["doc_vec"]
    assert len(encoded_texts) == 7
    alone = encoder.encode_candidates(pool)
    np.testing.assert_allclose(np.stack(vectors), np.tile(alone, (5, 1)), atol=1e-5)
    duplicated = encoder.encode_docs(["b", "a", "b", "b"])
    np.testing.assert_array_equal(duplicated[0], duplicated[2])
    np.testing.assert_allclose(duplicated[[1, 0]], encoder.encode_docs(["a", "b"]), atol=1e-6)


# --- pyterrier-dr composition ------------------------------------------------------------------------------------


def test_flex_index_retrievers_agree_with_the_exact_retriever(encoder, de_subset, tmp_path):
    candidates, topics, _ = de_subset
    index = pyterrier_dr.FlexIndex(str(tmp_path / "de.flex"), verbose=False)
    (encoder >> index.indexer()).index(candidates.to_dict("records"))
    exact = ExactDenseRetriever.from_candidates(encoder, candidates, num_results=10)(topics)
    for retriever in (index.np_retriever(num_results=10), index.faiss_flat_retriever()):
        results = ((encoder >> retriever) % 10)(topics)
        assert len(results) == len(exact)
        for qid, ranked in results.groupby("qid"):
            expected = exact[exact["qid"] == qid].sort_values("rank")
            got = ranked.sort_values("rank")
            np.testing.assert_allclose(got["score"].to_numpy(), expected["score"].to_numpy(), atol=1e-5)
            assert got["docno"].iloc[0] == expected["docno"].iloc[0]


def test_existing_flex_index_is_not_overwritten_unless_asked(encoder, de_subset, tmp_path):
    candidates = de_subset[0]
    path = tmp_path / "de.flex"
    index = pyterrier_dr.FlexIndex(str(path), verbose=False)
    (encoder >> index.indexer()).index(candidates.head(10).to_dict("records"))
    vectors_before = (path / "vecs.f4").read_bytes()
    with pytest.raises(RuntimeError, match="already exists"):
        again = pyterrier_dr.FlexIndex(str(path), verbose=False)
        (encoder >> again.indexer()).index(candidates.tail(5).to_dict("records"))
    assert (path / "vecs.f4").read_bytes() == vectors_before
    overwritten = pyterrier_dr.FlexIndex(str(path), verbose=False)
    (encoder >> overwritten.indexer(mode="overwrite")).index(candidates.tail(5).to_dict("records"))
    assert len(overwritten) == 5


def test_text_scorer_reranks_a_first_stage(encoder, de_subset):
    candidates, topics, _ = de_subset
    topics = topics.head(4)
    # a "first stage" giving 6 candidates per query in an arbitrary order
    first_stage = topics.merge(candidates.sample(n=6, random_state=0), how="cross")
    first_stage = first_stage.assign(score=0.0, rank=0)
    reranked = encoder.text_scorer()(first_stage)
    exact = ExactDenseRetriever.from_candidates(encoder, candidates)(topics)
    merged = reranked.merge(exact, on=["qid", "docno"], suffixes=("", "_exact"))
    assert len(merged) == len(first_stage)
    np.testing.assert_allclose(merged["score"], merged["score_exact"], atol=1e-5)
    for _, ranked in reranked.groupby("qid"):
        ordered = ranked.sort_values("rank")
        assert ordered["rank"].tolist() == list(range(6))
        assert ordered["score"].is_monotonic_decreasing


# --- exact retriever and factory ---------------------------------------------------------------------------------


def test_exact_retriever_ranks_all_candidates_and_matches_its_score_matrix(encoder, de_subset):
    candidates, topics, _ = de_subset
    retriever = ExactDenseRetriever.from_candidates(encoder, candidates)
    results = retriever(topics)
    assert len(results) == len(topics) * len(candidates)
    assert set(results.columns) >= {"qid", "query", "lang", "parallel_id", "docno", "score", "rank"}
    matrix = retriever.score_matrix(topics)
    assert matrix.shape == (len(topics), len(candidates)) and matrix.dtype == np.float32
    column_of = {d: j for j, d in enumerate(retriever.docnos)}
    row_of = {q: i for i, q in enumerate(topics["qid"])}
    rows = results["qid"].map(row_of).to_numpy()
    cols = results["docno"].map(column_of).to_numpy()
    np.testing.assert_array_equal(results["score"].to_numpy(np.float32), matrix[rows, cols])
    # scores are dot products of the encoder's own vectors
    q = encoder.encode_queries(topics["query"].tolist()[:3])
    d = encoder.encode_candidates(candidates)
    expected = q @ d.T
    order = np.argsort(candidates["docno"].to_numpy(str))
    np.testing.assert_allclose(matrix[:3], expected[:, order], atol=1e-5)
    for _, ranked in results.groupby("qid"):
        assert ranked["rank"].tolist() == list(range(len(candidates)))
        assert ranked["score"].is_monotonic_decreasing


def test_ties_are_broken_by_docno_and_num_results_cuts(encoder, de_subset):
    candidates, topics, _ = de_subset
    vectors = encoder.encode_candidates(candidates.head(5))
    # the first candidate's vector under three more docnos gives four exactly equal scores
    docnos = candidates["docno"].head(5).tolist() + ["z-3", "a-1", "zz-2"]
    pool_vectors = np.concatenate([vectors, vectors[[0, 0, 0]]])
    retriever = ExactDenseRetriever(encoder, docnos, pool_vectors, num_results=7)
    results = retriever(topics.head(3))
    assert results.groupby("qid").size().tolist() == [7, 7, 7]
    tied_docnos = {docnos[0], "z-3", "a-1", "zz-2"}
    for _, ranked in results.groupby("qid"):
        tied = ranked[ranked["docno"].isin(tied_docnos)].sort_values("rank")
        assert tied["docno"].tolist() == sorted(tied_docnos)[: len(tied)]  # the cut may drop the last of them
        assert len(tied) >= 3
        assert tied["rank"].diff().dropna().eq(1).all()


def test_factory_encodes_each_candidate_and_query_once(tiny_model_path, xquad):
    encoder = SentenceTransformerBiEncoder(tiny_model_path, precision="fp32")
    encoded_docs: list[str] = []
    encoded_queries: list[str] = []
    encode_docs, encode_queries = encoder.encode_docs, encoder.encode_queries
    encoder.encode_docs = lambda texts, batch_size=None: (encoded_docs.extend(texts), encode_docs(texts))[1]
    encoder.encode_queries = lambda texts, batch_size=None: (encoded_queries.extend(texts), encode_queries(texts))[1]

    de, de_topics, _ = _subset(xquad, ["de"])
    en, en_topics, _ = _subset(xquad, ["en"])
    factory = DenseRetrieverFactory(encoder)
    pools = [de, pd.concat([de, en], ignore_index=True), en, de.sample(frac=1.0, random_state=1)]
    matrices = [factory(pool).score_matrix(de_topics) for pool in pools]
    factory(en)(en_topics)

    assert len(encoded_docs) == len(de) + len(en)
    assert sorted(encoded_docs) == sorted(
        [s + " " + c for s, c in zip(pd.concat([de, en])["text"], pd.concat([de, en])["context"])]
    )
    assert len(encoded_queries) == len(de_topics) + len(en_topics)
    # cached vectors give the same scores as encoding the pool from scratch
    fresh = ExactDenseRetriever.from_candidates(encoder, pools[1])
    np.testing.assert_allclose(matrices[1], fresh.score_matrix(de_topics), atol=1e-5)
    np.testing.assert_array_equal(matrices[0], matrices[3])  # same pool in another order: same index order


def test_factory_cache_key_includes_the_text(tiny_model_path, de_subset):
    encoder = SentenceTransformerBiEncoder(tiny_model_path, precision="fp32", candidate_text="sentence")
    candidates, topics, _ = de_subset
    factory = DenseRetrieverFactory(encoder)
    before = factory(candidates.head(3)).score_matrix(topics.head(2))
    edited = candidates.head(3).assign(text=["ganz anderer Text", "noch einer", "und noch einer"])
    after = factory(edited).score_matrix(topics.head(2))
    assert not np.allclose(before, after)
    assert len(factory.candidate_cache) == 6


def test_embedding_cache_returns_rows_in_request_order():
    cache = EmbeddingCache()
    encode = lambda texts: np.array([[float(len(t)), 1.0] for t in texts])  # noqa: E731
    first = cache.vectors(["a", "b"], ["x", "yy"], encode)
    again = cache.vectors(["b", "c", "a", "c"], ["yy", "zzz", "x", "zzz"], encode)
    np.testing.assert_array_equal(first[:, 0], [1, 2])
    np.testing.assert_array_equal(again[:, 0], [2, 3, 1, 3])
    assert len(cache) == 3


# --- evaluation --------------------------------------------------------------------------------------------------


def test_experiment_with_dense_pipelines_on_lareqa(encoder, xquad, tmp_path):
    candidates, topics, qrels = _subset(xquad, ["de", "en"], ["de", "en"])
    index = pyterrier_dr.FlexIndex(str(tmp_path / "de-en.flex"), verbose=False)
    (encoder >> index.indexer()).index(candidates.to_dict("records"))
    exact = DenseRetrieverFactory(encoder)(candidates)
    flex = encoder >> index.np_retriever(num_results=len(candidates))
    table = pt.Experiment(
        [exact, flex], topics, qrels, eval_metrics=["map", "recip_rank", "P_1"], names=["exact", "flex"]
    )
    assert table["name"].tolist() == ["exact", "flex"]
    # Both score every candidate of every query alike (float32 sums may differ in the last bits) ...
    runs = [pipeline.transform(topics).set_index(["qid", "docno"])["score"] for pipeline in (exact, flex)]
    assert len(runs[0]) == len(runs[1]) == len(topics) * len(candidates)
    np.testing.assert_allclose(runs[0].sort_index().to_numpy(), runs[1].sort_index().to_numpy(), atol=1e-5)
    # ... so the measures agree up to the order of near-tied candidates (the tiny random model makes many;
    # one swapped pair moved MAP by 4e-5 in a rare run, while a real difference moves it by far more).
    np.testing.assert_allclose(table.iloc[0][["map", "recip_rank", "P_1"]].to_numpy(float),
                               table.iloc[1][["map", "recip_rank", "P_1"]].to_numpy(float), atol=5e-4)
    assert 0 < table.iloc[0]["map"] <= 1
