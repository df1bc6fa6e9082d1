"""The small shared pieces the experiments stand on: the one definition of the LAReQA settings, the candidate-text
rule, the top-k run accumulator, the provenance of a run."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid.datasets import LAREQA_LANGUAGES
from pyterrier_hybrid.datasets.candidates import candidate_text
from pyterrier_hybrid.datasets.irds import settings as irds_settings
from pyterrier_hybrid.datasets.settings import lareqa_settings
from pyterrier_hybrid.evaluation.runs import TopRun, load_top_runs, save_top_runs, score_matrix_top_run
from pyterrier_hybrid.provenance import command_line, git_commit, git_facts, shown_path, versions


def test_the_registered_ids_are_the_evaluation_settings_of_each_collection():
    registered = irds_settings()
    for collection, langs in LAREQA_LANGUAGES.items():
        expected = {"" if s.setting_type == "multilingual" else s.name: s for s in lareqa_settings(langs)}
        ids = {i.removeprefix(f"lareqa/{collection}").removeprefix("/"): v for i, v in registered.items()
               if i == f"lareqa/{collection}" or i.startswith(f"lareqa/{collection}/")}
        assert set(ids) == set(expected)
        n = len(langs)
        assert len(ids) == n + n * (n - 1) + 1
        for suffix, setting in ids.items():
            assert setting.kind == expected[suffix].setting_type
            want = expected[suffix]
            assert (setting.query_langs, setting.doc_langs) == (want.query_langs, want.doc_langs)


def test_lareqa_settings_take_a_chosen_list_of_cross_lingual_pairs():
    settings = lareqa_settings(["de", "en", "th"], cross_pairs=[("th", "de"), ("de", "en")])
    assert [s.name for s in settings] == ["de", "en", "th", "th-de", "de-en", "multilingual"]
    assert [s.name for s in lareqa_settings(["de"])] == ["de"]
    with pytest.raises(ValueError, match="cross-lingual"):
        lareqa_settings(["de", "en"], cross_pairs=[("de", "de")])


def test_candidate_text_is_the_sentence_or_the_sentence_a_space_and_its_paragraph():
    assert candidate_text("Bern.", "Bern is the capital. Bern.", "sentence") == "Bern."
    assert candidate_text("Bern.", "Bern is the capital.", "sentence+context") == "Bern. Bern is the capital."
    with pytest.raises(ValueError, match="sentence\\+context"):
        candidate_text("a", "b", "paragraph")


class _Scores:
    """A retriever with the score-matrix fast path over fixed candidates: score = -|query length - doc number|."""

    docnos = np.array(["d0", "d1", "d2", "d3"], dtype=object)

    def score_matrix(self, topics: pd.DataFrame) -> np.ndarray:
        lengths = topics["query"].str.len().to_numpy(float)[:, None]
        return -np.abs(lengths - np.arange(4)[None, :]).astype(np.float32)

    def transform(self, topics):  # pragma: no cover - the fast path is used
        raise AssertionError("transform must not be called")


def test_top_run_keeps_the_best_candidates_in_order_with_ties_by_docno():
    topics = pd.DataFrame({"qid": ["q1", "q2", "q3"], "query": ["ab", "a", "abcdefg"]})
    run = score_matrix_top_run(_Scores(), topics, depth=2, run_qids=["x/q1", "x/q2", "x/q3"], query_batch_size=2)
    assert len(run) == 3
    frame = run.frame()
    assert frame["qid"].tolist() == ["x/q1", "x/q1", "x/q2", "x/q2", "x/q3", "x/q3"]
    # q1 (length 2): d2 exact, then d1 and d3 tie at -1: the larger docno first (trec_eval's order)
    assert frame["docno"].tolist()[:2] == ["d2", "d3"]
    assert frame["docno"].tolist()[2:4] == ["d1", "d2"]
    assert frame["docno"].tolist()[4:] == ["d3", "d2"]
    assert frame["rank"].tolist() == [0, 1] * 3
    assert run.ir_measures_run()["x/q1"] == {"d2": 0.0, "d3": -1.0}
    with pytest.raises(ValueError, match="shape"):
        run.add(np.array(["q"]), np.array([["d0", "d1"]]), np.array([[1.0]]))


def test_top_runs_saved_to_disk_read_back_identically(tmp_path):
    topics = pd.DataFrame({"qid": ["q1", "q2", "q3"], "query": ["ab", "a", "abcdefg"]})
    mono = score_matrix_top_run(_Scores(), topics, depth=2, run_qids=["m/q1", "m/q2", "m/q3"], query_batch_size=2)
    pool = score_matrix_top_run(_Scores(), topics.iloc[:1], depth=3, run_qids=["p/q1"])  # another depth
    path = save_top_runs({"monolingual": mono, "multilingual": pool, "empty": TopRun()}, tmp_path / "runs.npz")
    back = load_top_runs(path)
    assert list(back) == ["monolingual", "multilingual", "empty"]
    pd.testing.assert_frame_equal(back["monolingual"].frame(), mono.frame())
    pd.testing.assert_frame_equal(back["multilingual"].frame(), pool.frame())
    assert back["multilingual"].ir_measures_run() == pool.ir_measures_run()
    assert len(back["empty"]) == 0
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_top_runs(tmp_path / "missing.npz")


def test_top_run_needs_the_fast_path():
    with pytest.raises(TypeError, match="score_matrix"):
        score_matrix_top_run(object(), pd.DataFrame({"qid": ["q"], "query": ["a"]}), depth=1)


def test_provenance_names_the_commit_of_a_checkout_and_nothing_outside_one(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert git_commit().split("+")[0] == head
    assert git_facts(tmp_path) == {"commit": None, "uncommitted_changes": None}
    assert git_commit(tmp_path) == "unknown"
    import pyterrier_hybrid

    found = versions()
    assert found["pyterrier-hybrid"] == pyterrier_hybrid.__version__ and found["python"]


def test_the_recorded_command_names_no_absolute_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / ".venv" / "bin" / "pyterrier-hybrid"), "compare", "--out", "x"])
    assert command_line() == ".venv/bin/pyterrier-hybrid compare --out x"
    monkeypatch.setattr(sys, "argv", ["/elsewhere/bin/pyterrier-hybrid", "train"])
    assert command_line() == "pyterrier-hybrid train"
    monkeypatch.setattr(sys, "argv", ["benchmarks/debias.py", "--quick"])
    assert command_line() == "benchmarks/debias.py --quick"  # a relative program is kept as typed


def test_a_recorded_path_names_no_machine_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path / "..")
    assert shown_path(tmp_path / "model") == f"{tmp_path.name}/model"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert shown_path(tmp_path / "home" / ".cache" / "e5") == "~/.cache/e5"
    assert shown_path("/elsewhere/model") == "/elsewhere/model"  # outside both: nothing to shorten it to
    assert shown_path("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"
