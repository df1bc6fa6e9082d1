"""The paper comparison (``pyterrier-hybrid compare``, :mod:`pyterrier_hybrid.experiments`): its pieces on small
inputs, and one end-to-end run with the tiny model (a few training steps, two XQuAD-R languages, a subsample of the
questions)."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid.cli import main as cli_main
from pyterrier_hybrid.evaluation.subsets import TopicSubset
from pyterrier_hybrid.experiments.aggregate import (
    aggregate_table,
    language_split,
    markdown_with_spread,
    mean_result,
    seed_spread_markdown,
    seed_spread_table,
)
from pyterrier_hybrid.experiments.presets import (
    MLQA_TO_XQUAD,
    PRESETS,
    XQUAD_TO_MLQA,
    ComparisonPreset,
    Direction,
    PresetError,
    RecipeSystem,
    get_preset,
    override_preset,
)
from pyterrier_hybrid.experiments.significance import balanced_pairs
from pyterrier_hybrid.experiments.training_curves import plot_loss_curves, training_runs_table
from pyterrier_hybrid.experiments.training_runs import ModelStore, plan_training
from pyterrier_hybrid.training.recipes import DISTILL_CPU_RECIPE


def compare(args) -> int:
    """``pyterrier-hybrid compare ARGS`` in this process; its exit status."""
    return cli_main(["compare", *args])


# --- pieces -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, k", [(11, 1), (11, 2), (11, 4), (5, 1), (7, 3)])
def test_balanced_pairs_use_every_language_equally_often(n, k):
    langs = [f"l{i}" for i in range(n)]
    pairs = balanced_pairs(langs, k)
    assert len(pairs) == n * k
    assert len(set(pairs)) == len(pairs)
    assert all(q != d for q, d in pairs)
    as_query = pd.Series([q for q, _ in pairs]).value_counts()
    as_doc = pd.Series([d for _, d in pairs]).value_counts()
    assert set(as_query.index) == set(langs) and (as_query == k).all()
    assert set(as_doc.index) == set(langs) and (as_doc == k).all()


def test_balanced_pairs_all_and_none():
    langs = ["en", "de", "th"]
    assert sorted(balanced_pairs(langs, None)) == sorted((q, d) for q in langs for d in langs if q != d)
    assert sorted(balanced_pairs(langs, 5)) == sorted(balanced_pairs(langs, None))
    assert balanced_pairs(langs, 0) == []
    assert balanced_pairs(["en"], None) == []


def _result(per_setting_rows):
    from pyterrier_hybrid.evaluation import EvaluationResult
    from pyterrier_hybrid.evaluation.report import summary_frame

    per_setting = pd.DataFrame(per_setting_rows, columns=["setting", "setting_type", "query_lang", "doc_lang",
                                                          "measure", "value", "n_queries"])
    return EvaluationResult(collection="xquad-r", system="s", langs=("en", "th"), per_setting=per_setting,
                            summary=summary_frame(per_setting))


def test_language_split_restricts_the_summary_to_seen_and_unseen_languages():
    result = _result([
        ("en", "monolingual", "en", "en", "AP", 0.8, 10),
        ("th", "monolingual", "th", "th", "AP", 0.4, 10),
        ("en-th", "cross-lingual", "en", "th", "AP", 0.3, 10),
        ("th-en", "cross-lingual", "th", "en", "AP", 0.5, 10),
        ("multilingual", "multilingual", "en", "all", "AP", 0.6, 10),
        ("multilingual", "multilingual", "th", "all", "AP", 0.2, 10),
        ("multilingual", "multilingual", "en", "all", "RankDistance", 3.0, 10),
        ("multilingual", "multilingual", "th", "all", "RankDistance", 9.0, 10),
    ])
    split = language_split(result, seen={"en", "de"})
    seen, unseen = split["seen"].summary_dict(), split["unseen"].summary_dict()
    assert seen["monolingual"]["mAP"] == pytest.approx(0.8)
    assert "cross-lingual" not in seen  # every pair involves th
    assert seen["multilingual"]["mAP"] == pytest.approx(0.6)
    assert seen["multilingual"]["RankDistance"] == pytest.approx(3.0)
    assert unseen["monolingual"]["mAP"] == pytest.approx(0.4)
    assert unseen["cross-lingual"]["mAP"] == pytest.approx(0.4)  # (0.3 + 0.5) / 2
    assert unseen["multilingual"]["mAP"] == pytest.approx(0.2)
    assert set(language_split(result, seen={"en", "th"})) == {"seen"}


def test_mean_result_averages_seeds_and_aggregate_table_gives_the_spread():
    first = _result([("en", "monolingual", "en", "en", "AP", 0.6, 10)])
    second = _result([("en", "monolingual", "en", "en", "AP", 0.8, 10)])
    assert mean_result([first, second]).value("monolingual", "mAP") == pytest.approx(0.7)
    table = aggregate_table([{"System": "a", "m": 0.6, "seed": 1}, {"System": "a", "m": 0.8, "seed": 2},
                                {"System": "b", "m": 0.5, "seed": None}], ["System"])
    assert table["System"].tolist() == ["a", "b"]
    assert table["runs"].tolist() == [2, 1]
    assert table["m"].tolist() == pytest.approx([0.7, 0.5])
    assert table["m std"].iloc[0] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert np.isnan(table["m std"].iloc[1])
    assert "0.7000 ± 0.1414" in markdown_with_spread(table, ["System"])


def test_seed_spread_says_whether_a_difference_exceeds_both_systems_spread():
    def runs(system, values):
        return [{"System": system, "m": v, "r": 100 - 10 * v, "seed": seed} for seed, v in zip((42, 43, 44), values)]

    rows = runs("hybrid", [0.60, 0.61, 0.62]) + runs("mono", [0.50, 0.51, 0.52]) + runs("noisy", [0.40, 0.60, 0.80])
    table = seed_spread_table(rows, "hybrid", ["mono", "noisy"], measures=["m", "r"]).set_index(["Baseline", "Measure"])
    assert table.loc[("mono", "m"), "Difference"] == pytest.approx(0.10)
    assert table.loc[("mono", "m"), "System std"] == pytest.approx(0.01)
    assert table["exceeds spread"].to_dict() == {("mono", "m"): True, ("mono", "r"): True,
                                                 ("noisy", "m"): False, ("noisy", "r"): False}
    assert table.loc[("mono", "m"), "Welch p"] < 0.01
    assert table.loc[("mono", "r"), "Difference"] == pytest.approx(-1.0)  # the sign is kept (lower is better here)
    assert table.loc[("noisy", "m"), "Difference"] == pytest.approx(0.01)
    assert table.loc[("noisy", "m"), "Baseline std"] == pytest.approx(0.2)
    assert table.loc[("noisy", "m"), "Welch p"] > 0.5
    markdown = seed_spread_markdown(table.reset_index())
    assert "| mono | m | +0.1000 | 0.0100 / 0.0100 | 3 / 3 | yes |" in markdown
    # one seed of a system: no spread, no verdict
    single = seed_spread_table(runs("hybrid", [0.6]) + runs("mono", [0.5, 0.7]), "hybrid", ["mono"], measures=["m"])
    assert single["exceeds spread"].iloc[0] is None and np.isnan(single["Welch p"].iloc[0])
    no_pairs = [{**row, "cross": np.nan} for row in rows]  # a measure of a setting the evaluation did not have
    assert seed_spread_table(no_pairs, "hybrid", ["mono"], measures=["m", "cross"])["Measure"].tolist() == ["m"]
    with pytest.raises(ValueError, match="'X-Y'"):
        seed_spread_table(rows, "hybrid", ["X-Y"], measures=["m"])


def _model_folder(path: Path, *, steps: int, epochs: float, steps_per_epoch: int, eval_losses: dict[int, float]):
    """A model folder as the trainer leaves it (training_config.json, loss_curve.csv), for the report's readers."""
    path.mkdir(parents=True)
    config = {"config": {"max_steps": None, "epochs": epochs},
              "run": {"global_steps": steps, "steps_per_epoch": steps_per_epoch, "final_training_loss": 0.9}}
    (path / "training_config.json").write_text(json.dumps(config))
    lines = ["step,epoch,loss,eval_loss,learning_rate,grad_norm"]
    for step in range(5, steps + 1, 5):
        lines.append(f"{step},{step / steps_per_epoch},{2.0 - step / 40},{eval_losses.get(step, '')},1e-5,1.0")
    (path / "loss_curve.csv").write_text("\n".join(lines) + "\n")
    return str(path)


def test_training_runs_table_reads_early_stopping_and_the_best_held_out_loss(tmp_path):
    from types import SimpleNamespace

    stopped = _model_folder(tmp_path / "a", steps=30, epochs=4, steps_per_epoch=10,
                            eval_losses={10: 0.66, 20: 0.50, 30: 0.52})
    full = _model_folder(tmp_path / "b", steps=40, epochs=4, steps_per_epoch=10,
                         eval_losses={10: 0.70, 20: 0.60, 30: 0.55, 40: 0.54})
    runs = [SimpleNamespace(label="BM25", seed=None, alpha=None, model="bm25"),
            SimpleNamespace(label="X-X-mono", seed=42, alpha=1.0, model=stopped),
            SimpleNamespace(label="hybrid", seed=42, alpha=0.5, model=full)]
    table = training_runs_table(runs).set_index("System")
    assert list(table.index) == ["X-X-mono", "hybrid"]
    assert table.loc["X-X-mono", "stopped early"] and not table.loc["hybrid", "stopped early"]
    assert table.loc["X-X-mono", "planned steps"] == 40
    assert table.loc["X-X-mono", "best step"] == 20
    assert table.loc["X-X-mono", "best held-out loss"] == pytest.approx(0.50)
    assert table.loc["hybrid", "best step"] == 40
    assert table.loc["hybrid", "first held-out loss"] == pytest.approx(0.70)
    png = tmp_path / "curves.png"
    plot_loss_curves(runs, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError, match="loss_curve.csv"):
        training_runs_table([SimpleNamespace(label="x", seed=1, alpha=1.0, model=str(tmp_path))])


def test_plan_training_trains_each_model_once(tmp_path):
    preset = ComparisonPreset(
        name="t", description="", training=PRESETS["cpu"].training, seeds=(1, 2),
        directions=(MLQA_TO_XQUAD, XQUAD_TO_MLQA), sweep_alphas=(0.0, 0.25, 1.0),
        sweep_directions=(MLQA_TO_XQUAD,),
    )
    runs = plan_training(preset, tmp_path, base_model="/some/model")
    keys = [(r.config.train, r.config.alpha, r.config.seed) for r in runs]
    assert len(keys) == len(set(keys))
    main = {(f"lareqa/{d.train}", a, s) for d in preset.directions for _, a in preset.main_systems for s in (1, 2)}
    sweep = {("lareqa/mlqa-r", a, s) for a in preset.sweep_alphas for s in (1, 2)}
    assert set(keys) == main | sweep
    assert all(r.config.base_model == "/some/model" for r in runs)
    assert all(Path(r.config.output_dir).parent == tmp_path for r in runs)
    # the same budget and hyperparameters for every trained system
    assert len({(r.config.max_steps, r.config.batch_size, r.config.learning_rate) for r in runs}) == 1


def test_a_recipe_system_trains_with_its_own_configuration_under_its_own_name(tmp_path):
    own = DISTILL_CPU_RECIPE
    preset = ComparisonPreset(
        name="t", description="", training=PRESETS["cpu"].training, seeds=(1, 2),
        directions=(MLQA_TO_XQUAD, XQUAD_TO_MLQA), main_systems=(("X-X-mono", 1.0),), sweep_alphas=(0.5, 1.0),
        sweep_directions=(MLQA_TO_XQUAD,), recipe_systems=(RecipeSystem("distilled", own),),
    )
    runs = plan_training(preset, tmp_path, base_model="/some/model", train_langs=("en", "de"))
    recipe_runs = [r for r in runs if r.recipe is not None]
    assert sorted(r.name for r in recipe_runs) == ["mlqa-r-distilled-seed1", "mlqa-r-distilled-seed2",
                                                   "xquad-r-distilled-seed1", "xquad-r-distilled-seed2"]
    for run in recipe_runs:
        assert run.recipe == "distilled" and run.path.parent == tmp_path
        # the recipe's own training, with the run's collection, seed, base model and languages
        expected = dataclasses.replace(own, train=f"lareqa/{run.name.split('-distilled')[0]}",
                                       seed=run.config.seed, base_model="/some/model", train_langs=("en", "de"),
                                       output_dir=run.config.output_dir)
        assert run.config == expected
    # the regimes and the sweep are planned as without the recipe system (the sweep trains no recipe model)
    without = plan_training(dataclasses.replace(preset, recipe_systems=()), tmp_path, base_model="/some/model",
                            train_langs=("en", "de"))
    assert [r for r in runs if r.recipe is None] == without
    assert {r.name for r in without} == {"mlqa-r-alpha1-seed1", "mlqa-r-alpha1-seed2", "xquad-r-alpha1-seed1",
                                         "xquad-r-alpha1-seed2", "mlqa-r-alpha0.5-seed1", "mlqa-r-alpha0.5-seed2"}
    assert preset.to_dict()["recipe_systems"] == [{"label": "distilled", "training": own.to_dict()}]


def test_recipe_system_labels_are_folder_names_no_other_system_uses():
    training = PRESETS["cpu"].training
    for label, problem in (("alpha-1", "would share folders"), ("base", "would share folders"),
                           ("my system", "letters, digits"), ("hybrid", "duplicate system labels")):
        with pytest.raises(PresetError, match=problem):
            ComparisonPreset(name="x", description="", training=training,
                             recipe_systems=(RecipeSystem(label, DISTILL_CPU_RECIPE),))


def test_options_change_a_recipe_system_too_and_trained_replaces_it():
    demo = get_preset("demo")
    budget = override_preset(demo, max_steps=2, batch_size=8, training={"learning_rate": 1e-4})
    (distilled,) = budget.recipe_systems
    assert (distilled.training.max_steps, distilled.training.batch_size, distilled.training.learning_rate) == (2, 8,
                                                                                                              1e-4)
    assert not distilled.training.contrastive and distilled.training.distill_target == "mean"  # the rest kept
    assert (budget.training.max_steps, budget.training.batch_size) == (2, 8)
    only = override_preset(demo, main_systems=[("X-X-mono", 1.0), ("hybrid", 0.5)])
    assert only.recipe_systems == () and only.main_systems == demo.main_systems
    assert override_preset(demo, langs=["en"]).recipe_systems == demo.recipe_systems


def test_demo_preset_evaluates_a_language_never_trained_on():
    from pyterrier_hybrid.datasets import LAREQA_LANGUAGES

    demo = PRESETS["demo"]
    (direction,) = demo.directions
    langs = demo.langs_for(direction.evaluate)
    assert set(langs) - set(LAREQA_LANGUAGES[direction.train])
    assert {alpha for _, alpha in demo.main_systems} == {1.0, 0.5}


def test_demo_preset_shows_the_distilled_recipe_beside_unchanged_regimes():
    demo = PRESETS["demo"]
    (distilled,) = demo.recipe_systems
    assert distilled.label == "distilled"
    # the distill-cpu recipe (learning rate, target, batch shape) with a smaller budget
    assert dataclasses.replace(distilled.training, max_steps=DISTILL_CPU_RECIPE.max_steps) == DISTILL_CPU_RECIPE
    assert distilled.training.max_steps < DISTILL_CPU_RECIPE.max_steps
    # the regimes train as they did before the distilled system joined them
    regimes = demo.training
    assert (regimes.max_steps, regimes.batch_size, regimes.max_seq_length, regimes.learning_rate) == (60, 16, 96,
                                                                                                     3e-5)
    assert demo.seeds == (42,) and demo.main_systems == (("X-X-mono", 1.0), ("hybrid", 0.5))
    # no other preset has a recipe system: their models, result keys and saved results stay as they were
    assert all(not preset.recipe_systems for name, preset in PRESETS.items() if name != "demo")


def test_direction_and_preset_errors_name_the_problem():
    with pytest.raises(ValueError, match="must not be the training one"):
        Direction("xquad-r", "xquad-r")
    with pytest.raises(ValueError, match="unknown LAReQA collection 'squad'"):
        Direction.parse("squad:xquad-r")
    with pytest.raises(ValueError, match="TRAIN:EVAL"):
        Direction.parse("mlqa-r")
    with pytest.raises(ValueError, match="answer_paragraphs_only needs max_queries"):
        ComparisonPreset(name="x", description="", training=PRESETS["cpu"].training,
                                 answer_paragraphs_only=True)


def test_parallel_id_subset_keeps_the_sampled_questions_and_their_answer_paragraphs(lareqa_dir):
    from pyterrier_hybrid.datasets import lareqa_collection

    full = lareqa_collection("xquad-r", lareqa_dir)
    subset = TopicSubset.sample_parallel_ids(full, ["en", "th"], 7, answer_paragraphs_only=True)
    topics = subset.topics(["en", "th"])
    assert topics["parallel_id"].nunique() == 7
    assert set(topics["lang"]) == {"en", "th"}
    qrels = subset.qrels(["en"], ["th"])
    assert set(qrels["qid"]) == set(subset.topics(["en"], ["th"])["qid"])
    candidates = subset.candidates(["th"])
    assert set(qrels["docno"]) <= set(candidates["docno"])
    assert 0 < len(candidates) < len(full.candidates(["th"]))
    # whole paragraphs: every sentence of a kept paragraph is kept
    everything = full.candidates(["th"])
    kept_paragraphs = everything[everything["context"].isin(set(candidates["context"]))]
    assert len(kept_paragraphs) == len(candidates)
    assert TopicSubset.sample_parallel_ids(full, ["en"], 10**6).topics(["en"]).shape[0] == full.topics(["en"]).shape[0]


# --- end to end ---------------------------------------------------------------------------------------------------

SMOKE_ARGS = [
    "--preset", "demo", "--max-steps", "2", "--batch-size", "8", "--langs", "en", "th", "--train-langs", "en", "de",
    "--max-queries", "12", "--answer-paragraphs-only", "--sweep-alphas", "0.5", "1", "--encoders", "--no-progress",
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, tiny_model_path, lareqa_dir):
    out = tmp_path_factory.mktemp("paper_comparison")
    status = compare(SMOKE_ARGS + ["--base-model", str(tiny_model_path), "--out", str(out)])
    assert status == 0
    return out


def test_smoke_run_writes_table_1_with_every_system(smoke_run):
    table = pd.read_csv(smoke_run / "mlqa-r_to_xquad-r" / "table.csv")
    assert table["System"].tolist() == ["BM25", "base (untrained)", "X-X-mono (alpha=1)", "hybrid (alpha=0.5)",
                                        "distilled"]
    for column in ("Monolingual mAP", "Cross-lingual mAP", "Multilingual mAP", "R@1 (pool)", "R@10 (pool)"):
        assert table[column].between(0, 1).all(), column
    assert (table["Rank distance ↓"] >= 0).all()
    report = (smoke_run / "paper_comparison.md").read_text(encoding="utf-8")
    assert "X-X-mono (alpha=1)" in report and "### Alpha sweep" in report
    # one seed: hybrid against the baseline is reported, with no spread to compare against
    assert "### Hybrid against each baseline, over seeds" in report
    assert "One seed: there is no spread to compare the differences with" in report
    spread = pd.read_csv(smoke_run / "mlqa-r_to_xquad-r" / "seed_spread.csv")
    # the distilled system is no baseline of hybrid's seed spread, although its configuration has an alpha too
    assert set(spread["Baseline"]) == {"X-X-mono (alpha=1)"} and spread["exceeds spread"].isna().all()
    assert set(spread["System"]) == {"hybrid (alpha=0.5)"}
    hybrid_multi = table.set_index("System").loc["hybrid (alpha=0.5)", "Multilingual mAP"]
    mono_multi = table.set_index("System").loc["X-X-mono (alpha=1)", "Multilingual mAP"]
    assert spread.set_index("Measure").loc["Multilingual mAP", "Difference"] == pytest.approx(hybrid_multi - mono_multi)


def test_smoke_run_reports_the_training_runs_and_their_loss_curves(smoke_run):
    direction = smoke_run / "mlqa-r_to_xquad-r"
    runs = pd.read_csv(direction / "training_runs.csv")
    assert runs["System"].tolist() == ["X-X-mono (alpha=1)", "hybrid (alpha=0.5)", "distilled"]
    assert (runs["steps"] == 2).all() and (runs["planned steps"] == 2).all() and not runs["stopped early"].any()
    assert (direction / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "### Training runs" in (direction / "report.md").read_text(encoding="utf-8")


def test_smoke_run_splits_seen_and_unseen_languages(smoke_run):
    split = pd.read_csv(smoke_run / "mlqa-r_to_xquad-r" / "seen_unseen.csv")
    assert set(split["Languages"]) == {"seen", "unseen"}  # trained on en de; evaluated on en and th
    report = (smoke_run / "mlqa-r_to_xquad-r" / "report.md").read_text(encoding="utf-8")
    assert "unseen in training: th" in report and "Every evaluation language was seen" not in report
    seen = split[split["Languages"] == "seen"]
    assert seen["Cross-lingual mAP"].isna().all()  # both pairs involve th
    unseen = split[split["Languages"] == "unseen"]
    assert unseen["Cross-lingual mAP"].notna().all()
    per_setting = pd.read_csv(smoke_run / "mlqa-r_to_xquad-r" / "systems" / "bm25" / "per_setting.csv")
    th_mono = per_setting[(per_setting["setting"] == "th") & (per_setting["measure"] == "AP")]["value"].item()
    bm25_unseen = unseen[unseen["System"] == "BM25"]["Monolingual mAP"].item()
    assert bm25_unseen == pytest.approx(th_mono)


def test_smoke_run_significance_agrees_with_the_exact_evaluation(smoke_run):
    """With pools of fewer than 100 candidates AP@100 is the exact AP, and with as many queries in every language
    the micro average over queries equals the table's macro average over settings."""
    significance = pd.read_csv(smoke_run / "mlqa-r_to_xquad-r" / "significance.csv")
    table = pd.read_csv(smoke_run / "mlqa-r_to_xquad-r" / "table.csv").set_index("System")
    assert set(significance["setting_type"]) == {"monolingual", "cross-lingual", "multilingual"}
    baseline = significance[significance["System"] == "X-X-mono (alpha=1)"]
    assert len(baseline) == 3 and baseline["AP@100 p-value"].isna().all()
    others = significance[significance["System"] != "X-X-mono (alpha=1)"]
    assert "distilled" in set(others["System"])  # compared with the baseline like the regimes
    p = others["AP@100 p-value corrected"].dropna()
    assert p.between(0, 1).all()
    for setting_type, column in (("monolingual", "Monolingual mAP"), ("cross-lingual", "Cross-lingual mAP")):
        rows = significance[significance["setting_type"] == setting_type].set_index("System")
        for system in table.index:
            assert rows.loc[system, "AP@100"] == pytest.approx(table.loc[system, column], abs=1e-6)
    pool = significance[significance["setting_type"] == "multilingual"].set_index("System")
    for system in table.index:
        assert pool.loc[system, "R@10"] == pytest.approx(table.loc[system, "R@10 (pool)"], abs=1e-6)


def test_smoke_run_records_preset_commit_model_seed_and_wall_time(smoke_run, tiny_model_path):
    systems = smoke_run / "mlqa-r_to_xquad-r" / "systems"
    records = {p.parent.relative_to(systems).as_posix(): json.loads(p.read_text()) for p in systems.rglob("run.json")}
    assert set(records) == {"bm25", "base", "alpha-1/seed-42", "alpha-0.5/seed-42", "distilled/seed-42"}
    for record in records.values():
        assert record["preset"] == "demo"
        assert record["git_commit"]
        assert record["wall_time_s"] >= 0
        assert {"model", "seed"} <= set(record)
    trained = records["alpha-0.5/seed-42"]
    assert trained["seed"] == 42 and trained["alpha"] == 0.5
    assert Path(trained["model"]).name == "mlqa-r-alpha0.5-seed42"
    assert trained["training_wall_time_s"] > 0 and trained["training_reused"] is False
    distilled = records["distilled/seed-42"]
    assert distilled["system"] == "distilled" and distilled["seed"] == 42
    assert Path(distilled["model"]).name == "mlqa-r-distilled-seed42" and distilled["training_reused"] is False
    assert records["base"]["model"] == str(tiny_model_path)
    run = json.loads((smoke_run / "run.json").read_text())
    assert run["status"] == "finished" and run["preset"]["name"] == "demo"
    assert run["preset"]["training"]["max_steps"] == 2


def test_smoke_run_draws_the_plots(smoke_run):
    direction = smoke_run / "mlqa-r_to_xquad-r"
    pngs = [direction / "settings_bars.png", direction / "rank_distance_bars.png",
            smoke_run / "alpha_sweep_mlqa-r_to_xquad-r.png"]
    pngs += list((direction / "systems").rglob("map_heatmap.png"))
    assert len(pngs) == 8
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    sweep = pd.read_csv(smoke_run / "alpha_sweep_mlqa-r_to_xquad-r.csv")
    # one run per alpha: the distilled system (its configuration's alpha is 0.5) is not in the sweep
    assert sweep["alpha"].tolist() == [0.5, 1.0] and sweep["runs"].tolist() == [1, 1]


def test_smoke_run_saves_finished_models_without_checkpoints(smoke_run):
    for name in ("mlqa-r-alpha1-seed42", "mlqa-r-alpha0.5-seed42", "mlqa-r-distilled-seed42"):
        folder = smoke_run / "models" / name
        assert ModelStore.is_finished(folder)
        assert not (folder / "checkpoints").exists()
        saved = json.loads((folder / "training_config.json").read_text())
        assert saved["config"]["max_steps"] == 2 and saved["config"]["train_langs"] == ["en", "de"]
        assert saved["config"]["batch_size"] == 8


def test_smoke_run_trains_the_distilled_system_with_its_own_recipe(smoke_run):
    def config(name):
        return json.loads((smoke_run / "models" / name / "training_config.json").read_text())["config"]

    distilled, hybrid = config("mlqa-r-distilled-seed42"), config("mlqa-r-alpha0.5-seed42")
    recipe = PRESETS["demo"].recipe_systems[0].training
    assert distilled["learning_rate"] == recipe.learning_rate != hybrid["learning_rate"]
    assert distilled["contrastive"] is False and hybrid["contrastive"] is True
    assert distilled["distill_parallel_weight"] == 1.0 and distilled["distill_target"] == "mean"
    assert hybrid["distill_parallel_weight"] == 0.0
    record = json.loads((smoke_run / "models" / "mlqa-r-distilled-seed42" / "paper_comparison_training.json")
                        .read_text())
    assert record["recipe_system"] == "distilled" and record["global_steps"] == 2
    run = json.loads((smoke_run / "run.json").read_text())
    assert [s["label"] for s in run["preset"]["recipe_systems"]] == ["distilled"]
    assert "distilled: its own recipe, 2 steps of batch 8, lr 0.0002" in (smoke_run / "paper_comparison.md").read_text()


def test_rerun_reuses_the_trained_models(smoke_run, tiny_model_path, tmp_path):
    weights = smoke_run / "models" / "mlqa-r-alpha1-seed42" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    out = tmp_path / "rerun"
    # evaluate one language into another folder, with the models of the first run
    (out / "models").mkdir(parents=True)
    for model in (smoke_run / "models").iterdir():
        (out / "models" / model.name).symlink_to(model)
    args = [a for a in SMOKE_ARGS]
    args[args.index("--langs") + 1: args.index("--langs") + 3] = ["en"]
    status = compare(args + ["--base-model", str(tiny_model_path), "--out", str(out), "--skip-training"])
    assert status == 0
    assert weights.stat().st_mtime_ns == before
    record = json.loads((out / "mlqa-r_to_xquad-r" / "systems" / "alpha-1" / "seed-42" / "run.json").read_text())
    assert record["training_reused"] is True


def test_rerun_reads_finished_evaluations_and_evaluates_a_retrained_model_again(smoke_run, tiny_model_path,
                                                                                   tmp_path, capsys):
    out = tmp_path / "moved"
    shutil.copytree(smoke_run, out)  # a moved comparison folder: models are matched by folder name
    direction = out / "mlqa-r_to_xquad-r"
    records = {p: json.loads(p.read_text()) for p in (direction / "systems").rglob("run.json")}
    table = (direction / "table.csv").read_text()
    significance = pd.read_csv(direction / "significance.csv")
    # the alpha-1 model "retrained": its training finished at another time
    training_record = out / "models" / "mlqa-r-alpha1-seed42" / "paper_comparison_training.json"
    retrained = json.loads(training_record.read_text()) | {"finished": "2000-01-01T00:00:00Z"}
    training_record.write_text(json.dumps(retrained))
    assert direction / "systems" / "distilled" / "seed-42" / "run.json" in records
    capsys.readouterr()
    assert compare(SMOKE_ARGS + ["--base-model", str(tiny_model_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "evaluated earlier with the same model and settings" in printed
    assert "mlqa-r_to_xquad-r: distilled seed 42: evaluated earlier" in printed  # the recipe system is read back too
    for path, before in records.items():
        after = json.loads(path.read_text())
        if "alpha-1" in path.parts:
            assert after["finished"] != before["finished"] and after["training_finished"] == retrained["finished"]
        else:
            assert after["finished"] == before["finished"], path  # read, not evaluated again
    # the same numbers and tests whether a system was read or evaluated (the tiny model is deterministic)
    assert (direction / "table.csv").read_text() == table
    pd.testing.assert_frame_equal(pd.read_csv(direction / "significance.csv"), significance)


def test_a_system_and_its_debiased_variant_encode_every_text_once(smoke_run, tiny_model_path, tmp_path,
                                                                    monkeypatch):
    """The debiased row reuses the vectors its plain row encoded: no model encodes a text twice in a run."""
    from pyterrier_hybrid.retrieval.biencoder import SentenceTransformerBiEncoder

    encoded = []
    original = SentenceTransformerBiEncoder.encode_texts

    def recording(self, texts, prompt, **kwargs):
        encoded.extend((self.model_name, prompt, text) for text in texts)
        return original(self, texts, prompt, **kwargs)

    monkeypatch.setattr(SentenceTransformerBiEncoder, "encode_texts", recording)
    out = tmp_path / "debiased"
    (out / "models").mkdir(parents=True)
    for model in (smoke_run / "models").iterdir():
        (out / "models" / model.name).symlink_to(model)
    args = SMOKE_ARGS + ["--base-model", str(tiny_model_path), "--out", str(out), "--skip-training"]
    # the cross-lingual settings fit the debiasing on candidates in one language and query it in another
    with pytest.warns(UserWarning, match="was not seen when fitting the debiasing"):
        assert compare(args + ["--debias", "mean"]) == 0
    table = pd.read_csv(out / "mlqa-r_to_xquad-r" / "table.csv").set_index("System")
    assert {"base (untrained) + debias", "hybrid (alpha=0.5) + debias", "distilled + debias"} <= set(table.index)
    assert len(encoded) > 0 and len(set(encoded)) == len(encoded)
    # sharing the vectors changes no figure of the plain rows
    plain = pd.read_csv(smoke_run / "mlqa-r_to_xquad-r" / "table.csv").set_index("System")
    pd.testing.assert_frame_equal(table.loc[plain.index, plain.columns], plain)


def test_a_finished_evaluation_without_its_top_runs_is_evaluated_again(smoke_run, tiny_model_path, tmp_path, capsys):
    """Top runs are not committed with results: a comparison resumed over committed results evaluates those
    systems again instead of stopping."""
    out = tmp_path / "cloned"
    shutil.copytree(smoke_run, out)
    systems = out / "mlqa-r_to_xquad-r" / "systems"
    missing = systems / "bm25" / "top_runs.npz"
    missing.unlink()  # fails if the first run did not keep BM25's top runs
    records = {p: json.loads(p.read_text()) for p in systems.rglob("run.json")}
    capsys.readouterr()
    assert compare(SMOKE_ARGS + ["--base-model", str(tiny_model_path), "--out", str(out)]) == 0
    assert "is missing (the significance test needs it): evaluating again" in capsys.readouterr().out
    assert missing.is_file()
    for path, before in records.items():
        changed = json.loads(path.read_text())["finished"] != before["finished"]
        assert changed is ("bm25" in path.parts), path


def test_skip_training_and_changed_configuration_fail_clearly(smoke_run, tiny_model_path, capsys):
    base = SMOKE_ARGS + ["--base-model", str(tiny_model_path), "--out", str(smoke_run)]
    assert compare(base + ["--skip-training", "--seeds", "7"]) == 2
    assert "mlqa-r-alpha1-seed7" in capsys.readouterr().err
    changed = [a for a in base]
    changed[changed.index("--max-steps") + 1] = "3"
    assert compare(changed) == 2
    assert "max_steps: saved 2, wanted 3" in capsys.readouterr().err


def test_sweep_only_adds_alphas_and_reads_the_main_results(smoke_run, tiny_model_path, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(smoke_run, out, symlinks=True, ignore=shutil.ignore_patterns("checkpoints"))
    report_before = (out / "paper_comparison.md").read_text(encoding="utf-8")
    args = [a for a in SMOKE_ARGS]
    args[args.index("--sweep-alphas") + 1: args.index("--sweep-alphas") + 3] = ["0", "0.5", "1"]
    assert compare(args + ["--base-model", str(tiny_model_path), "--out", str(out), "--sweep-only"]) == 0
    sweep = pd.read_csv(out / "alpha_sweep_mlqa-r_to_xquad-r.csv")
    assert sweep["alpha"].tolist() == [0.0, 0.5, 1.0]
    table = pd.read_csv(out / "mlqa-r_to_xquad-r" / "table.csv").set_index("System")
    by_alpha = sweep.set_index("alpha")
    # the main alphas are read back from the first run, not evaluated again
    assert by_alpha.loc[1.0, "multilingual mAP"] == pytest.approx(table.loc["X-X-mono (alpha=1)", "Multilingual mAP"])
    assert by_alpha.loc[0.5, "rank distance"] == pytest.approx(table.loc["hybrid (alpha=0.5)", "Rank distance ↓"])
    saved = pd.read_csv(out / "mlqa-r_to_xquad-r" / "systems" / "alpha-0" / "seed-42" / "summary.csv")
    saved = saved.set_index(["setting_type", "measure"])["value"]
    assert by_alpha.loc[0.0, "monolingual mAP"] == pytest.approx(saved[("monolingual", "mAP")])
    assert by_alpha.loc[0.0, "rank distance"] == pytest.approx(saved[("multilingual", "RankDistance")])
    record = json.loads((out / "mlqa-r_to_xquad-r" / "systems" / "alpha-0" / "seed-42" / "run.json").read_text())
    assert record["alpha"] == 0.0 and record["training_reused"] is False
    assert (out / "paper_comparison.md").read_text(encoding="utf-8") == report_before
    assert "## Alpha sweep" in (out / "alpha_sweep.md").read_text(encoding="utf-8")
    assert json.loads((out / "alpha_sweep_run.json").read_text())["mode"] == "sweep-only"


def test_sweep_only_without_a_main_run_fails_clearly(smoke_run, tiny_model_path, tmp_path, capsys):
    out = tmp_path / "models-only"
    (out / "models").mkdir(parents=True)
    for model in (smoke_run / "models").iterdir():
        (out / "models" / model.name).symlink_to(model)
    args = SMOKE_ARGS + ["--base-model", str(tiny_model_path), "--out", str(out), "--sweep-only", "--skip-training"]
    assert compare(args) == 2
    assert "run the preset without --sweep-only first" in capsys.readouterr().err


@pytest.mark.lareqa
def test_a_resumed_comparison_reads_the_committed_results_as_finished(lareqa_dir):
    """The results committed under benchmarks/results/paper_comparison were written by earlier versions: a comparison
    resumed over that folder with the recorded settings reads their systems back instead of evaluating them again
    (the models themselves are not committed: a trained system is matched through its recorded training time)."""
    from pyterrier_hybrid.experiments.comparison import Comparison
    from pyterrier_hybrid.experiments.records import read_record
    from pyterrier_hybrid.experiments.system_records import SystemEntry

    committed = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "paper_comparison" / "paper-cpu"
    recorded = json.loads((committed / "run.json").read_text())
    preset = override_preset(get_preset("paper-cpu"), debias=recorded["preset"]["debias"])
    comparison = Comparison(preset, committed, progress=False)
    setup = comparison.direction_setup(MLQA_TO_XQUAD)
    trained = SystemEntry("hybrid (alpha=0.5)", "alpha-0.5", str(committed / "models" / "mlqa-r-alpha0.5-seed42"),
                          42, 0.5)
    folder = comparison.system_folder(MLQA_TO_XQUAD, trained)
    comparison.training_records[Path(trained.model).name] = {"finished": read_record(folder)["training_finished"]}
    systems = [(SystemEntry("BM25", "bm25", "bm25"), None), (SystemEntry("base (untrained)", "base", "default"), None),
               (SystemEntry("base (untrained) + debias", "base-debias", "default", None, None, (("debias", "mean"),)),
                None), (trained, read_record(folder)["max_length"])]
    for system, max_length in systems:
        folder = comparison.system_folder(MLQA_TO_XQUAD, system)
        record = comparison.evaluation_record(setup, system, max_length)
        run = comparison.finished_evaluation(system, folder, record, None)
        assert run is not None, (folder, record.differences(read_record(folder)))
        assert run.record["evaluation_reused"] and run.result.summary_dict()["multilingual"]["mAP"] > 0
    # another setting is another run: the same folder is not reused
    other = comparison.evaluation_record(setup, systems[0][0], None)
    other.identity["langs"] = ["en"]
    assert comparison.finished_evaluation(systems[0][0], comparison.system_folder(MLQA_TO_XQUAD, systems[0][0]),
                                          other, None) is None
