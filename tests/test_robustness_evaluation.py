"""Evaluation on perturbed queries (pyterrier_hybrid.robustness.evaluation), on XQuAD-R questions."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

from pyterrier_hybrid.datasets import lareqa_collection
from pyterrier_hybrid.evaluation import LAReQAEvaluationConfig, evaluate_lareqa
from pyterrier_hybrid.retrieval.bm25 import BM25Config, BM25Factory
from pyterrier_hybrid.robustness import AdversarialTypos, CharacterNoise
from pyterrier_hybrid.robustness.evaluation import (
    CachedPerturbation,
    PerturbedFactory,
    PerturbedRetriever,
    QueryTable,
    RetrieverCache,
    TopicSubset,
    adversarial_queries_by_budget,
    compare_per_language,
    compare_to_clean,
    dense_text_scorer,
    relative_drop,
    supported_languages,
)

LANGS = ["de", "en"]
CONFIG = LAReQAEvaluationConfig(show_progress=False, per_query=False)


@pytest.fixture(scope="module")
def collection(lareqa_dir):
    return lareqa_collection("xquad-r")


@pytest.fixture(scope="module")
def subset(collection):
    return TopicSubset.sample_per_language(collection, 8, seed=3, langs=LANGS)


@pytest.fixture(scope="module")
def bm25(collection):
    return RetrieverCache(BM25Factory(BM25Config(fields=("text",), show_progress=False)))


@pytest.fixture(scope="module")
def clean(bm25, subset):
    return evaluate_lareqa(bm25, subset, LANGS, system="bm25", config=CONFIG)


class Identity(pt.Transformer):
    def transform(self, topics):
        return topics.copy()


class Counting(pt.Transformer):
    """Records the qids it is asked to perturb."""

    def __init__(self, inner):
        self.inner = inner
        self.qids: list[str] = []

    def transform(self, topics):
        self.qids += topics["qid"].tolist()
        return self.inner.transform(topics)


class TransformOnly:
    """A factory whose retrievers offer only transform() (the runner then cannot use the score-matrix path)."""

    def __init__(self, factory):
        self.factory = factory

    def __call__(self, candidates):
        retriever = self.factory(candidates)
        return pt.apply.generic(retriever.transform)


def _values(result):
    return result.per_setting.set_index(["setting", "query_lang", "measure"])["value"].sort_index()


def test_identity_perturbation_gives_the_clean_evaluation(bm25, subset, clean):
    result = evaluate_lareqa(PerturbedFactory(bm25, Identity()), subset, LANGS, system="bm25", config=CONFIG)
    pd.testing.assert_series_equal(_values(result), _values(clean))
    comparison = compare_to_clean(clean, result)
    assert set(comparison["setting_type"]) == {"monolingual", "cross-lingual", "multilingual"}
    assert (comparison["relative_drop"] == 0).all()


def test_typos_change_the_evaluation_and_each_question_is_perturbed_once(bm25, subset, clean):
    counting = Counting(CharacterNoise(edits=3, seed=1))
    factory = PerturbedFactory(bm25, counting)
    result = evaluate_lareqa(factory, subset, LANGS, system="bm25", config=CONFIG)
    # de and en questions are asked in 5 settings (2 monolingual, 2 cross-lingual, the pool) but perturbed once
    assert sorted(counting.qids) == sorted(subset.qids)
    examples = factory.perturbation.examples()
    assert examples["changed"].mean() > 0.9
    values, clean_values = _values(result), _values(clean)
    assert (values != clean_values).any()
    pool_map = compare_to_clean(clean, result).set_index(["setting_type", "measure"]).loc[("multilingual", "mAP")]
    assert pool_map["value"] < pool_map["clean_value"]  # three typos in questions of a few words hurt BM25
    assert pool_map["relative_drop"] == pytest.approx(1 - pool_map["value"] / pool_map["clean_value"])


def test_score_matrix_fast_path_gives_the_transform_evaluation(bm25, subset):
    noise = CachedPerturbation(CharacterNoise(edits=2, seed=5))
    fast = evaluate_lareqa(PerturbedFactory(bm25, noise), subset, LANGS, system="fast", config=CONFIG)
    slow = evaluate_lareqa(PerturbedFactory(TransformOnly(bm25), noise), subset, LANGS, system="slow", config=CONFIG)
    pd.testing.assert_series_equal(_values(fast), _values(slow))


def _scores_from_results(results: pd.DataFrame, qids, docnos) -> np.ndarray:
    table = results.pivot(index="qid", columns="docno", values="score")
    return table.loc[list(qids), list(docnos)].to_numpy(dtype=np.float64)


@pytest.mark.parametrize("system", ["bm25", "dense"])
def test_perturbed_retriever_scores_the_perturbed_queries_in_both_paths(system, collection, subset, tiny_model_path):
    if system == "bm25":
        factory = BM25Factory(BM25Config(fields=("text",), show_progress=False))
    else:
        from pyterrier_hybrid.retrieval.biencoder import BiEncoderConfig, SentenceTransformerBiEncoder
        from pyterrier_hybrid.retrieval.dense import DenseRetrieverFactory

        factory = DenseRetrieverFactory(SentenceTransformerBiEncoder(
            tiny_model_path, BiEncoderConfig(candidate_text="sentence", precision="fp32", device="cpu")))
    qrels = subset.qrels(["de"], ["de"])
    candidates = collection.candidates(["de"])
    candidates = pd.concat([candidates[candidates["docno"].isin(set(qrels["docno"]))], candidates.head(30)])
    candidates = candidates.drop_duplicates("docno").reset_index(drop=True)
    topics = subset.topics(["de"], ["de"])
    perturbation = CachedPerturbation(CharacterNoise(edits=2, seed=2))
    inner = factory(candidates)
    retriever = PerturbedRetriever(inner, perturbation)

    fast = retriever.score_matrix(topics)
    results = retriever.transform(topics)
    np.testing.assert_allclose(fast, _scores_from_results(results, topics["qid"], retriever.docnos), rtol=1e-6)
    assert list(results["query_0"].drop_duplicates()) == list(topics["query"])  # the original kept in query_0
    perturbed = perturbation.transform(topics)
    assert (perturbed["query"] != topics["query"]).all()
    np.testing.assert_array_equal(fast, inner.score_matrix(perturbed))
    assert not np.array_equal(fast, inner.score_matrix(topics))


def test_no_fast_path_when_the_wrapped_retriever_has_none(bm25, collection):
    retriever = PerturbedRetriever(TransformOnly(bm25)(collection.candidates(["de"]).head(5)),
                                   CachedPerturbation(Identity()))
    assert retriever.docnos is None
    with pytest.raises(AttributeError, match="no score_matrix"):
        retriever.score_matrix(pd.DataFrame({"qid": ["q"], "query": ["x"]}))


def test_langs_limit_which_queries_are_perturbed(subset):
    topics = subset.topics(LANGS)
    perturbed = CachedPerturbation(CharacterNoise(edits=2), langs=["de"]).transform(topics)
    is_de = (topics["lang"] == "de").to_numpy()
    changed = (perturbed["query"] != topics["query"]).to_numpy()
    assert changed[is_de].all() and not changed[~is_de].any()
    assert list(perturbed["query_0"]) == list(topics["query"])
    assert list(perturbed["qid"]) == list(topics["qid"])
    with pytest.raises(KeyError, match="lang"):
        CachedPerturbation(Identity(), langs=["de"]).transform(topics.drop(columns="lang"))


def test_supported_languages():
    from pyterrier_hybrid.robustness import StripDiacritics

    assert supported_languages(StripDiacritics(), ["de", "en", "zh", "vi"]) == ("de", "vi")
    assert supported_languages(Identity(), ["de", "en"]) == ("de", "en")


def test_query_table():
    topics = pd.DataFrame({"qid": ["a", "b"], "query": ["one", "two"]})
    out = QueryTable({"a": "uno"}, missing="keep").transform(topics)
    assert list(out["query"]) == ["uno", "two"] and list(out["query_0"]) == ["one", "two"]
    with pytest.raises(KeyError, match="no query for 1 topic"):
        QueryTable({"a": "uno"}).transform(topics)


def test_reusing_factory_builds_once_per_candidate_set(collection):
    calls = []

    def factory(candidates):
        calls.append(len(candidates))
        return object()

    reusing = RetrieverCache(factory)
    de, en = collection.candidates(["de"]), collection.candidates(["en"])
    assert reusing(de) is reusing(de.copy())
    assert reusing(en) is not reusing(de)
    changed = de.copy()
    changed.loc[0, "text"] = "another text"
    reusing(changed)
    assert calls == [len(de), len(en), len(de)]


def test_topic_subset_is_deterministic_nested_and_parallel(collection):
    small = TopicSubset.sample_per_language(collection, 5, seed=1, langs=["de", "en", "zh"])
    again = TopicSubset.sample_per_language(collection, 5, seed=1, langs=["zh", "de"])
    large = TopicSubset.sample_per_language(collection, 12, seed=1, langs=["de", "en", "zh"])
    other_seed = TopicSubset.sample_per_language(collection, 5, seed=2, langs=["de", "en", "zh"])
    topics = small.topics()
    assert topics.groupby("lang").size().to_dict() == {"de": 5, "en": 5, "zh": 5}
    assert len(set(topics.groupby("lang")["parallel_id"].apply(frozenset))) == 1  # the same questions
    assert set(again.topics(["de"])["qid"]) == set(small.topics(["de"])["qid"])
    assert small.qids < large.qids
    assert other_seed.qids != small.qids
    assert set(small.qrels(["de"], ["de", "en"])["qid"]) == set(small.topics(["de"])["qid"])
    assert len(small.candidates(["de"])) == len(collection.candidates(["de"]))  # pools unchanged


def test_topic_subset_of_articles(collection):
    articles = sorted(set(collection.topics(["de"])["article"]))[:2]
    subset = TopicSubset.of_articles(collection, articles, ["de", "en"])
    topics = subset.topics(["de", "en"])
    assert set(topics["article"]) == set(articles)
    assert len(topics) == len(collection.topics(["de", "en"]).query("article in @articles"))
    sample = TopicSubset.sample_per_language(subset, 3, seed=0, langs=["de", "en"])  # nested: within the articles
    assert sample.qids <= subset.qids
    assert sample.topics(["de", "en"]).groupby("lang").size().to_dict() == {"de": 3, "en": 3}
    with pytest.raises(ValueError, match="not in xquad-r"):
        TopicSubset.of_articles(collection, ["No such article"])


def test_relative_drop():
    assert relative_drop(0.6, 0.8, "mAP") == pytest.approx(0.25)
    assert relative_drop(0.9, 0.8, "R@10") == pytest.approx(-0.125)
    assert relative_drop(150.0, 100.0, "RankDistance") == pytest.approx(0.5)  # lower is better: an increase is a drop
    assert math.isnan(relative_drop(0.5, 0.0, "mAP"))


def test_compare_restricted_to_perturbed_languages(bm25, subset, clean):
    result = evaluate_lareqa(PerturbedFactory(bm25, CharacterNoise(edits=3, seed=1), langs=["de"]), subset, LANGS,
                             system="bm25", config=CONFIG)
    per_language = compare_per_language(clean, result).set_index(["setting_type", "query_lang", "measure"])
    # en questions are untouched: no change in their own settings
    assert per_language.loc[("monolingual", "en", "mAP"), "relative_drop"] == 0
    assert per_language.loc[("monolingual", "de", "mAP"), "relative_drop"] != 0
    only_de = compare_to_clean(clean, result, ["de"]).set_index(["setting_type", "measure"])
    assert only_de.loc[("monolingual", "mAP"), "averaged_over"] == "1 languages"
    assert only_de.loc[("monolingual", "mAP"), "value"] == pytest.approx(
        per_language.loc[("monolingual", "de", "mAP"), "value"])


def test_compare_rejects_results_on_different_questions(bm25, collection, clean):
    other = TopicSubset.sample_per_language(collection, 4, seed=3, langs=LANGS)
    result = evaluate_lareqa(bm25, other, LANGS, system="bm25", config=CONFIG)
    with pytest.raises(ValueError, match="different settings or questions"):
        compare_to_clean(clean, result)


def test_adversarial_budgets_from_one_search(collection, tiny_model_path):
    from pyterrier_hybrid.retrieval.biencoder import BiEncoderConfig, SentenceTransformerBiEncoder

    encoder = SentenceTransformerBiEncoder(tiny_model_path, BiEncoderConfig(precision="fp32", device="cpu"))
    subset = TopicSubset.sample_per_language(collection, 4, seed=0, langs=["de"])
    topics, qrels = subset.topics(["de"], ["de"]), subset.qrels(["de"], ["de"])
    candidates = collection.candidates(["de"])
    candidates = candidates[candidates["docno"].isin(set(qrels["docno"]))].reset_index(drop=True)
    scorer = dense_text_scorer(encoder, candidates)  # sentence + context vectors, as the retriever encodes them

    def attack(budget):
        return AdversarialTypos(scorer, qrels, candidates, budget=budget, candidates_per_step=6, seed=4,
                                verbose=False).attack(topics)

    by_budget = adversarial_queries_by_budget(attack(2), [1, 2])
    for budget in (1, 2):
        expected = attack(budget)
        assert by_budget[budget] == dict(zip(expected["qid"], expected["query"]))
    assert any(by_budget[1][q] != by_budget[2][q] for q in by_budget[1])

    # the white-box scorer gives the dense retriever's own scores for the relevant candidates
    from pyterrier_hybrid.retrieval.dense import ExactDenseRetriever

    retriever = ExactDenseRetriever.from_candidates(encoder, candidates)
    rows = topics.merge(qrels, on="qid")[["qid", "query", "docno"]]
    scored = scorer.transform(rows)
    matrix = retriever.score_matrix(topics)
    column = {d: i for i, d in enumerate(retriever.docnos)}
    expected = [matrix[list(topics["qid"]).index(q), column[d]] for q, d in zip(scored["qid"], scored["docno"])]
    np.testing.assert_allclose(scored["score"].to_numpy(float), expected, rtol=1e-5)
