"""Tests of the LAReQA evaluation: exact ranks and measures against hand-computed values and ir_measures, the
runner on XQuAD-R de/en with a token-overlap retriever (both retriever paths), reports, plots and errors."""
from __future__ import annotations

import json
import re

import ir_measures
import numpy as np
import pandas as pd
import pyterrier as pt
import pytest
from scipy import sparse
from scipy.stats import chi2

from pyterrier_hybrid.datasets import UnknownLanguageError, lareqa_collection
from pyterrier_hybrid.evaluation import (
    AP,
    RANK_DISTANCE,
    EvaluationResult,
    IncompleteRankingError,
    IrdsEvaluationConfig,
    LAReQAEvaluationConfig,
    SettingRanking,
    comparison_table,
    evaluate_irds,
    evaluate_lareqa,
    exact_rank_measures,
    lareqa_settings,
    plot_rank_distance_bars,
    plot_setting_bars,
)
from pyterrier_hybrid.evaluation.measures import ir_measures_per_query, relevant_ranks, tie_order, top_k_columns

QUIET = LAReQAEvaluationConfig(show_progress=False)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# ---------------------------------------------------------------------------------------------------------------
# A deterministic retriever: the number of distinct word types a query shares with a candidate sentence.

WORD = re.compile(r"\w+")


class TokenOverlapRetriever(pt.Transformer):
    """Exact scorer with a score matrix (many ties: scores are small integers)."""

    def __init__(self, candidates: pd.DataFrame):
        self.docnos = np.asarray(candidates["docno"], dtype=object)
        self.vocabulary: dict[str, int] = {}
        self.candidate_words = self._matrix(candidates["text"], grow=True)

    def _matrix(self, texts, grow: bool) -> sparse.csr_matrix:
        rows, cols = [], []
        for i, text in enumerate(texts):
            for word in set(WORD.findall(text.lower())):
                if word not in self.vocabulary and grow:
                    self.vocabulary[word] = len(self.vocabulary)
                if word in self.vocabulary:
                    rows.append(i)
                    cols.append(self.vocabulary[word])
        shape = (len(texts), len(self.vocabulary))
        return sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)

    def score_matrix(self, topics: pd.DataFrame) -> np.ndarray:
        queries = self._matrix(list(topics["query"]), grow=False)
        queries.resize((len(topics), len(self.vocabulary)))
        return (queries @ self.candidate_words.T).toarray().astype(np.float32)

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        scores = self.score_matrix(topics)
        n = len(self.docnos)
        results = pd.DataFrame(
            {
                "qid": np.repeat(np.asarray(topics["qid"], dtype=object), n),
                "query": np.repeat(np.asarray(topics["query"], dtype=object), n),
                "docno": np.tile(self.docnos, len(topics)),
                "score": scores.reshape(-1).astype(np.float64),
            }
        )
        return pt.model.add_ranks(results)


class ResultsOnlyRetriever(pt.Transformer):
    """The same rankings through transform() only (no fast path), optionally cut to the top num_results."""

    def __init__(self, inner: TokenOverlapRetriever, num_results: int | None = None):
        self.inner, self.num_results = inner, num_results

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        results = self.inner.transform(topics)
        if self.num_results is not None:
            results = results[results["rank"] < self.num_results]
        return results


class QuestionSubset:
    """A LAReQA collection restricted to the questions of the first ``n`` parallel ids (all candidates kept)."""

    def __init__(self, collection, n: int):
        self._collection = collection
        self.name = collection.name
        self.languages = collection.languages
        self.parallel_ids = set(collection.topics(["en"])["parallel_id"].iloc[:n])

    def check_languages(self, langs):
        return self._collection.check_languages(langs)

    def candidates(self, langs=None):
        return self._collection.candidates(langs)

    def topics(self, langs=None, doc_langs=None):
        topics = self._collection.topics(langs, doc_langs)
        return topics[topics["parallel_id"].isin(self.parallel_ids)].reset_index(drop=True)

    def qrels(self, query_langs=None, doc_langs=None):
        qrels = self._collection.qrels(query_langs, doc_langs)
        return qrels[qrels["qid"].isin(set(self.topics(query_langs, doc_langs)["qid"]))]


@pytest.fixture(scope="module")
def xquad(lareqa_dir):
    return lareqa_collection("xquad-r", local_dir=lareqa_dir)


@pytest.fixture(scope="module")
def de_en_result(xquad):
    return evaluate_lareqa(TokenOverlapRetriever, xquad, ["de", "en"], system="overlap", config=QUIET)


# ---------------------------------------------------------------------------------------------------------------
# Exact ranks and measures on a toy ranking

TOY_DOCNOS = np.array(list("abcdefgh"), dtype=object)
TOY_SCORES = np.array(
    [
        # q1 ranks a c d f h g e b (no ties)
        [0.9, 0.1, 0.8, 0.7, 0.2, 0.6, 0.3, 0.5],
        # q2: b first, then seven ties, ordered as trec_eval orders ties (docno descending): h g f e d c a
        [0.5, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    ],
    dtype=np.float32,
)
TOY_RELEVANT = pd.DataFrame({"qid": ["q1", "q1", "q1", "q2", "q2"], "docno": ["a", "f", "e", "c", "h"]})
# By hand: q1's relevant a, f, e are at ranks 1, 4, 7 (1-based): AP = (1/1 + 2/4 + 3/7) / 3 = 9/14, distance 6.
# q2's relevant h, c are at ranks 2 and 7: AP = (1/2 + 2/7) / 2 = 11/28, distance 5.
TOY_AP = {"q1": 9 / 14, "q2": 11 / 28}
TOY_DISTANCE = {"q1": 6.0, "q2": 5.0}


def toy_ranking(depth: int) -> SettingRanking:
    ties = tie_order(TOY_DOCNOS)
    rows = TOY_RELEVANT["qid"].map({"q1": 0, "q2": 1}).to_numpy()
    cols = pd.Index(TOY_DOCNOS).get_indexer(TOY_RELEVANT["docno"])
    top = top_k_columns(TOY_SCORES, ties, depth)
    return SettingRanking(
        qids=np.array(["q1", "q2"], dtype=object),
        relevant=TOY_RELEVANT.assign(rank=relevant_ranks(TOY_SCORES, ties, rows, cols)),
        top_docnos=TOY_DOCNOS[top],
        top_scores=np.take_along_axis(TOY_SCORES, top, axis=1),
        n_candidates=len(TOY_DOCNOS),
    )


def test_exact_ap_and_rank_distance_match_hand_computed_values():
    ranking = toy_ranking(depth=3)
    assert ranking.relevant["rank"].tolist() == [0, 3, 6, 6, 1]
    measures = exact_rank_measures(ranking.relevant)
    for qid in ("q1", "q2"):
        assert measures.loc[qid, AP] == pytest.approx(TOY_AP[qid], abs=1e-12)
        assert measures.loc[qid, RANK_DISTANCE] == TOY_DISTANCE[qid]
    assert measures["best_rank"].tolist() == [0, 1]
    assert [list(row) for row in ranking.top_docnos] == [["a", "c", "d"], ["b", "h", "g"]]


def test_ir_measures_ap_without_cutoff_on_a_full_ranking_is_the_full_pool_value():
    # The raw scores (with ties) of every candidate: ir_measures AP (no @k) over the full ranking.
    full_run = {qid: dict(zip(TOY_DOCNOS, map(float, row))) for qid, row in zip(["q1", "q2"], TOY_SCORES)}
    qrels = {qid: {d: 1 for d in group["docno"]} for qid, group in TOY_RELEVANT.groupby("qid")}
    values = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.AP], qrels, full_run)}
    assert values == pytest.approx(TOY_AP, abs=1e-12)
    # ... and through the runner's own path: ir_measures on the top-depth run when it holds the whole ranking.
    per_query = ir_measures_per_query(toy_ranking(depth=8), ["AP", "R@1"])
    assert per_query[AP].to_dict() == pytest.approx(TOY_AP, abs=1e-12)
    assert per_query["R@1"].to_dict() == pytest.approx({"q1": 1 / 3, "q2": 0.0})


def test_ranks_and_top_k_agree_with_a_full_sort_under_many_ties():
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 4, size=(30, 50)).astype(np.float32)
    docnos = np.array([f"d{rng.integers(0, 10**6)}-{j}" for j in range(50)], dtype=object)
    ties = tie_order(docnos)
    for row in range(30):
        # trec_eval order: score descending, then docno descending (a stable sort of the docno-descending order)
        order = sorted(range(50), key=lambda j: docnos[j], reverse=True)
        order.sort(key=lambda j: -scores[row, j])
        assert top_k_columns(scores[row : row + 1], ties, 12)[0].tolist() == order[:12]
        ranks = relevant_ranks(scores, ties, np.full(50, row), np.arange(50))
        assert ranks.tolist() == [order.index(j) for j in range(50)]


# ---------------------------------------------------------------------------------------------------------------
# The runner


def test_settings_of_two_and_eleven_languages():
    names = [s.name for s in lareqa_settings(["de", "en"])]
    assert names == ["de", "en", "de-en", "en-de", "multilingual"]
    assert len(lareqa_settings("ar de el en es hi ru th tr vi zh".split())) == 11 + 110 + 1
    with pytest.raises(ValueError, match="duplicate"):
        lareqa_settings(["de", "de"])


def test_runner_frames_cover_every_setting(de_en_result):
    result = de_en_result
    assert result.settings == ["de", "en", "de-en", "en-de", "multilingual"]
    assert list(result.per_setting.columns) == [
        "setting", "setting_type", "query_lang", "doc_lang", "measure", "value", "n_queries"
    ]
    types = result.per_setting.drop_duplicates("setting").set_index("setting")["setting_type"].to_dict()
    assert types == {"de": "monolingual", "en": "monolingual", "de-en": "cross-lingual", "en-de": "cross-lingual",
                     "multilingual": "multilingual"}
    assert set(result.per_setting["measure"]) == {"AP", "R@1", "R@10", RANK_DISTANCE}
    pool = result.per_setting[result.per_setting["setting"] == "multilingual"]
    assert set(pool["query_lang"]) == {"de", "en"} and set(pool["doc_lang"]) == {"all"}
    assert (result.per_setting["n_queries"] == 1190).all()  # XQuAD-R: 1190 questions per language
    assert set(result.per_setting.loc[result.per_setting["measure"] == RANK_DISTANCE, "setting"]) == {"multilingual"}
    summary = result.summary_dict()
    assert set(summary) == {"monolingual", "cross-lingual", "multilingual"}
    assert summary["multilingual"].keys() == {"mAP", "R@1", "R@10", RANK_DISTANCE}
    mono = result.per_setting.query("setting_type == 'monolingual' and measure == 'AP'")["value"]
    assert summary["monolingual"]["mAP"] == pytest.approx(mono.mean())
    # a lexical scorer: monolingual retrieval is far better than cross-lingual
    assert summary["monolingual"]["mAP"] > summary["cross-lingual"]["mAP"]
    assert any("exact AP equal to ir_measures AP" in note for note in result.notes)
    assert any("RankDistance" in note and "over 2380 questions" in note for note in result.notes)


def test_runner_ap_equals_ir_measures_on_the_full_ranking(de_en_result, xquad):
    candidates = xquad.candidates(["de"])
    retriever = TokenOverlapRetriever(candidates)
    topics = xquad.topics(["de"])
    scores = retriever.score_matrix(topics)
    docnos = retriever.docnos.tolist()
    full_run = {qid: dict(zip(docnos, row)) for qid, row in zip(topics["qid"], scores.astype(float).tolist())}
    qrels = xquad.qrels(["de"], ["de"])
    irm_qrels = {qid: dict.fromkeys(group["docno"], 1) for qid, group in qrels.groupby("qid")}
    expected = ir_measures.calc_aggregate([ir_measures.AP, ir_measures.R @ 10], irm_qrels, full_run)
    values = de_en_result.per_setting.query("setting == 'de'").set_index("measure")["value"]
    assert values["AP"] == pytest.approx(expected[ir_measures.AP], abs=1e-12)
    assert values["R@10"] == pytest.approx(expected[ir_measures.R @ 10], abs=1e-12)


def test_rank_distance_and_ap_in_the_pool_match_a_full_sort(de_en_result, xquad):
    pool = xquad.candidates(["de", "en"])
    topics = xquad.topics(["de", "en"]).iloc[::150].reset_index(drop=True)
    scores = TokenOverlapRetriever(pool).score_matrix(topics)
    docnos = np.asarray(pool["docno"], dtype=object)
    qrels = xquad.qrels(["de", "en"], ["de", "en"])
    per_query = de_en_result.per_query.query("setting == 'multilingual'").set_index("qid")
    for i, qid in enumerate(topics["qid"]):
        order = sorted(range(len(docnos)), key=lambda j: docnos[j], reverse=True)
        order.sort(key=lambda j: -scores[i, j])
        position = {docnos[j]: r for r, j in enumerate(order)}
        ranks = sorted(position[d] for d in qrels.loc[qrels["qid"] == qid, "docno"])
        assert len(ranks) == 2  # the answer sentence in de and in en
        assert per_query.loc[qid, RANK_DISTANCE] == ranks[1] - ranks[0]
        assert per_query.loc[qid, AP] == pytest.approx((1 / (ranks[0] + 1) + 2 / (ranks[1] + 1)) / 2, abs=1e-12)


def test_results_frames_path_gives_the_same_values_as_the_score_matrix(xquad):
    subset = QuestionSubset(xquad, 40)
    fast = evaluate_lareqa(TokenOverlapRetriever, subset, ["de", "en"], config=QUIET)
    slow = evaluate_lareqa(lambda c: ResultsOnlyRetriever(TokenOverlapRetriever(c)), subset, ["de", "en"], config=QUIET)
    assert len(fast.per_query) == 40 * 4 + 80
    pd.testing.assert_frame_equal(fast.per_query, slow.per_query)


def test_a_ranking_without_a_relevant_candidate_is_an_error(xquad):
    subset = QuestionSubset(xquad, 10)
    with pytest.raises(IncompleteRankingError, match="lacks its relevant candidate"):
        evaluate_lareqa(lambda c: ResultsOnlyRetriever(TokenOverlapRetriever(c), num_results=3), subset, ["de", "en"],
                        config=QUIET)

    def partial_index(candidates):
        retriever = TokenOverlapRetriever(candidates)
        retriever.docnos = retriever.docnos[:-1]
        return retriever

    with pytest.raises(ValueError, match="not the candidates it was built for"):
        evaluate_lareqa(partial_index, subset, ["de", "en"], config=QUIET)


def test_unknown_language_is_an_error(xquad):
    with pytest.raises(UnknownLanguageError):
        evaluate_lareqa(TokenOverlapRetriever, xquad, ["de", "xx"], config=QUIET)


def test_peer_runs_but_is_constant_with_one_relevant_candidate_per_language(xquad):
    config = LAReQAEvaluationConfig(show_progress=False, peer_cutoff=10)
    result = evaluate_lareqa(TokenOverlapRetriever, QuestionSubset(xquad, 30), ["de", "en", "es"], config=config)
    peer = result.per_query.query("setting == 'multilingual'")["PEER@10"]
    assert peer.notna().all()
    # Kruskal-Wallis over three groups of one rank each: H = 2 whatever the ranks; 1.0 when nothing is retrieved.
    assert set(np.round(peer, 12)) <= {round(chi2.sf(2, 2), 12), 1.0}
    assert "PEER@10" in result.summary_dict()["multilingual"]


# ---------------------------------------------------------------------------------------------------------------
# ir_datasets, reports, plots


def test_evaluate_irds_agrees_with_the_lareqa_monolingual_setting(de_en_result):
    config = IrdsEvaluationConfig(measures=("AP", "R@10", "nDCG@10"), run_depth=2000, show_progress=False)
    result = evaluate_irds(TokenOverlapRetriever, "irds:lareqa/xquad-r/de", system="overlap", config=config)
    values = result.summary_dict()["ad hoc"]
    lareqa = de_en_result.per_setting.query("setting == 'de'").set_index("measure")["value"]
    assert values["mAP"] == pytest.approx(lareqa["AP"], abs=1e-12)
    assert values["R@10"] == pytest.approx(lareqa["R@10"], abs=1e-12)
    assert 0 < values["nDCG@10"] <= 1
    assert len(result.per_query) == 1190


def test_save_writes_tables_and_heatmap(de_en_result, tmp_path):
    paths = de_en_result.save(tmp_path / "report")
    assert paths["heatmap"].read_bytes()[:8] == PNG_MAGIC
    per_setting = pd.read_csv(paths["per_setting"])
    assert len(per_setting) == len(de_en_result.per_setting)
    summary = json.loads(paths["summary_json"].read_text(encoding="utf-8"))
    assert summary["summary"]["multilingual"]["mAP"] == pytest.approx(de_en_result.value("multilingual", "mAP"))
    markdown = paths["summary_md"].read_text(encoding="utf-8")
    assert "| System | Monolingual mAP | Cross-lingual mAP | Multilingual mAP |" in markdown
    assert len(pd.read_csv(paths["per_query"])) == len(de_en_result.per_query)


def test_saved_result_loads_back_the_same(de_en_result, tmp_path):
    de_en_result.save(tmp_path / "report")
    loaded = EvaluationResult.load(tmp_path / "report")
    assert (loaded.collection, loaded.system, loaded.langs) == (
        de_en_result.collection, de_en_result.system, tuple(de_en_result.langs))
    expected = de_en_result.summary_dict()
    assert loaded.summary_dict().keys() == expected.keys()
    for setting_type, values in expected.items():
        assert loaded.summary_dict()[setting_type] == pytest.approx(values, nan_ok=True)
    assert loaded.settings == de_en_result.settings
    assert len(loaded.per_query) == len(de_en_result.per_query)
    (tmp_path / "report" / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="summary.json"):
        EvaluationResult.load(tmp_path / "report")


def test_comparison_table_and_plots_for_several_systems(de_en_result, xquad, tmp_path):
    other = evaluate_lareqa(TokenOverlapRetriever, QuestionSubset(xquad, 20), ["de", "en"], system="subset",
                            config=QUIET)
    results = {"overlap": de_en_result, "overlap-subset": other}
    table = comparison_table(results)
    assert table["System"].tolist() == ["overlap", "overlap-subset"]
    assert table.loc[0, "Multilingual mAP"] == pytest.approx(de_en_result.value("multilingual", "mAP"))
    plot_setting_bars(results, path=tmp_path / "bars.png")
    plot_rank_distance_bars(results, path=tmp_path / "rank_distance.png")
    assert (tmp_path / "bars.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "rank_distance.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.lareqa
def test_evaluate_command_on_a_slice_of_the_questions(tmp_path):
    # `evaluate --max-queries N`: the questions of N parallel ids (the draw `compare --max-queries` makes), each
    # ranked against every candidate, so each kept question scores exactly as in the run on every question
    from pyterrier_hybrid.cli import main
    from pyterrier_hybrid.evaluation.subsets import TopicSubset

    common = ["evaluate", "--collection", "lareqa/xquad-r", "--langs", "de", "en", "--model", "bm25",
              "--candidate-text", "sentence"]
    assert main([*common, "--max-queries", "7", "--out", str(tmp_path / "slice")]) == 0
    assert main([*common, "--out", str(tmp_path / "all")]) == 0

    run = json.loads((tmp_path / "slice" / "bm25" / "run.json").read_text(encoding="utf-8"))
    assert run["max_queries"] == 7 and "7 parallel ids" in run["questions"]
    assert json.loads((tmp_path / "all" / "bm25" / "run.json").read_text(encoding="utf-8"))["max_queries"] is None
    expected = set(TopicSubset.sample_parallel_ids(lareqa_collection("xquad-r"), ["de", "en"], 7).topics(
        ["de", "en"])["qid"])
    assert len(expected) == 14  # every XQuAD-R question is asked in every language

    key = ["setting", "qid"]
    sliced = pd.read_csv(tmp_path / "slice" / "bm25" / "per_query.csv.gz").set_index(key)
    full = pd.read_csv(tmp_path / "all" / "bm25" / "per_query.csv.gz").set_index(key)
    assert set(sliced.index.get_level_values("qid")) == expected
    # de and en; de-en and en-de; the pool of both
    assert sliced.groupby("setting_type").size().to_dict() == {"monolingual": 14, "cross-lingual": 14,
                                                                "multilingual": 14}
    assert len(full) > 10 * len(sliced)
    pd.testing.assert_frame_equal(sliced[["best_rank", "AP"]], full.loc[sliced.index, ["best_rank", "AP"]])


@pytest.mark.lareqa
def test_a_per_language_sample_against_its_answer_paragraphs_only():
    # the robustness study's sample (--max-queries-per-lang) with --answer-paragraphs-only: the same questions, and
    # the pools cut to the sentences of their answer paragraphs, every relevant one kept
    from pyterrier_hybrid.evaluation.subsets import TopicSubset

    xquad, langs = lareqa_collection("xquad-r"), ["de", "zh"]
    pool = TopicSubset.sample_per_language(xquad, 5, seed=3, langs=langs)
    small = TopicSubset.sample_per_language(xquad, 5, seed=3, langs=langs, answer_paragraphs_only=True)
    assert small.qids == pool.qids and "answer paragraphs only" in small.description
    candidates = small.candidates(langs)
    assert set(small.qrels(langs, langs)["docno"]) <= set(candidates["docno"])
    assert set(candidates["context"]) <= set(xquad.candidates(langs).set_index("docno").loc[
        small.qrels(langs, langs)["docno"], "context"])
    assert 0 < len(candidates) < len(pool.candidates(langs)) / 20


@pytest.mark.lareqa
def test_evaluate_command_against_the_answer_paragraphs_only(tmp_path):
    # `--answer-paragraphs-only` (as `compare`'s): the same questions, each pool cut to the sentences of the kept
    # questions' answer paragraphs; every relevant candidate stays, the rest of the collection goes
    from pyterrier_hybrid.cli import main
    from pyterrier_hybrid.evaluation.subsets import TopicSubset

    common = ["evaluate", "--collection", "lareqa/xquad-r", "--langs", "de", "en", "--model", "bm25",
              "--candidate-text", "sentence", "--max-queries", "7"]
    assert main([*common, "--answer-paragraphs-only", "--out", str(tmp_path / "paragraphs")]) == 0
    assert main([*common, "--out", str(tmp_path / "pool")]) == 0

    run = json.loads((tmp_path / "paragraphs" / "bm25" / "run.json").read_text(encoding="utf-8"))
    assert run["answer_paragraphs_only"] is True and "answer paragraphs only" in run["questions"]
    xquad = lareqa_collection("xquad-r")
    subset = TopicSubset.sample_parallel_ids(xquad, ["de", "en"], 7, answer_paragraphs_only=True)
    candidates = subset.candidates(["de", "en"])
    assert set(subset.qrels(["de", "en"], ["de", "en"])["docno"]) <= set(candidates["docno"])
    assert 0 < len(candidates) < len(xquad.candidates(["de", "en"])) / 10

    key = ["setting", "qid"]
    small = pd.read_csv(tmp_path / "paragraphs" / "bm25" / "per_query.csv.gz").set_index(key)
    pool = pd.read_csv(tmp_path / "pool" / "bm25" / "per_query.csv.gz").set_index(key)
    assert small.index.equals(pool.index)  # the same questions in the same settings
    # fewer distractors: no relevant candidate ranks lower than in the whole pool, and some rank higher
    assert (small["best_rank"] <= pool["best_rank"]).all() and (small["best_rank"] < pool["best_rank"]).any()
