"""The robustness runner's domain-shift mode (``pyterrier-hybrid robustness --domain-shift``,
:mod:`pyterrier_hybrid.experiments.robustness.domain_shift`): the held-out articles it evaluates on, and one
end-to-end run with the tiny model and BM25 on two XQuAD-R languages."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pyterrier_hybrid.cli import main as cli_main
from pyterrier_hybrid.errors import UserError
from pyterrier_hybrid.experiments.robustness.domain_shift import held_out_articles
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig
from pyterrier_hybrid.training.sources.data import load_training_data


def _model_with_config(folder: Path, **config) -> Path:
    folder.mkdir(parents=True)
    HybridTrainingConfig(**config).save(folder / CONFIG_FILE)
    return folder


def test_held_out_articles_are_the_ones_the_in_collection_model_never_saw(tmp_path, lareqa_dir):
    model = _model_with_config(tmp_path / "m", train="lareqa/xquad-r", eval_fraction=0.2, seed=42)
    held_out = held_out_articles(str(model), "xquad-r")
    every_article = {e.article for e in load_training_data("lareqa/xquad-r", None, False, 42).examples}
    assert len(every_article) == 48
    assert len(held_out) == 10  # ceil(0.2 * 48)
    assert set(held_out) < every_article
    # another seed holds out other articles: the split is the training run's, not a fixed list
    other = _model_with_config(tmp_path / "o", train="lareqa/xquad-r", eval_fraction=0.2, seed=7)
    assert held_out_articles(str(other), "xquad-r") != held_out


@pytest.mark.parametrize(
    "config, message",
    [
        (None, "no training_config.json"),
        ({"train": "lareqa/mlqa-r", "eval_fraction": 0.2}, "not on lareqa/xquad-r"),
        ({"train": "lareqa/xquad-r", "eval_fraction": 0.0}, "without a held-out split"),
    ],
)
def test_held_out_articles_refuses_models_that_are_not_in_collection(tmp_path, config, message):
    model = tmp_path / "m"
    if config is None:
        model.mkdir()
    else:
        _model_with_config(model, **config)
    with pytest.raises(UserError, match=message):
        held_out_articles(str(model), "xquad-r")


@pytest.mark.lareqa
def test_domain_shift_run_evaluates_both_models_of_a_pair_on_the_same_questions(tiny_model_path, tmp_path):
    from pyterrier_hybrid.datasets import lareqa_collection

    topics = lareqa_collection("xquad-r").topics(["de", "en"])
    articles = sorted(topics["article"].unique())[:2]
    (tmp_path / "articles.txt").write_text("\n".join(articles) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    status = cli_main([
        "robustness",
        "--domain-shift", "--collection", "lareqa/xquad-r", "--langs", "de", "en", "--max-queries-per-lang", "6",
        "--candidate-text", "sentence", "--held-out-articles", str(tmp_path / "articles.txt"),
        "--in-collection", f"same={tiny_model_path}", "--cross", f"same={tiny_model_path}",
        "--in-collection", f"mixed={tiny_model_path}", "--cross", "mixed=bm25",
        "--out", str(out),
    ])
    assert status == 0
    table = pd.read_csv(out / "domain_shift.csv")
    assert set(table["name"]) == {"same", "mixed"}
    assert (table["questions"] == 12).all() and (table["held_out_articles"] == 2).all()
    same = table[table["name"] == "same"].set_index(["setting_type", "measure"])
    mixed = table[table["name"] == "mixed"].set_index(["setting_type", "measure"])
    # one model on both sides: the two evaluations saw the same questions and candidates
    assert (same["difference"] == 0).all()
    assert same["in_collection"].equals(same["cross_collection"])
    # the in-collection side of "mixed" is the same model on the same questions; its cross side is BM25
    pd.testing.assert_series_equal(mixed["in_collection"], same["in_collection"])
    assert (mixed["difference"] - (mixed["cross_collection"] - mixed["in_collection"])).abs().max() < 1e-12
    cross_map = mixed.loc[("cross-lingual", "mAP")]
    assert cross_map["cross_collection"] != cross_map["in_collection"]
    run = json.loads((out / "run.json").read_text())
    assert [p["held_out_articles"] for p in run["pairs"]] == [articles, articles]
    assert (out / "domain_shift.png").stat().st_size > 0
    assert "| same |" in (out / "domain_shift.md").read_text()
