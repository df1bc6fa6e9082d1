"""``pyterrier-hybrid compare`` and ``pyterrier-hybrid robustness``: user errors are one stderr line and exit 2 before
any model is built; language lists take both spellings; the comparison's system list is configurable (extra systems,
a debiased variant of every dense system); the perturbation study runs end to end on BM25."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pyterrier_hybrid.cli import build_parser
from pyterrier_hybrid.cli import main as cli_main
from pyterrier_hybrid.errors import UserError

# Prints the heavy libraries a command imported (after its own stderr line): none may be loaded before the error.
WRAPPER = (
    "import sys\n"
    "from pyterrier_hybrid.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "print('loaded:', ','.join(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    "sys.exit(status)\n"
)


def _run_cli(args, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTERRIER_HYBRID_CACHE=str(tmp_path / "cache"))  # an empty model cache: nothing built
    return subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=env,
                          timeout=300)


ERRORS = [
    # (command line, what the message must name)
    (["compare", "--preset", "demo", "--directions", "mlqa-r:nope"], "unknown LAReQA collection 'nope'"),
    (["compare", "--preset", "demo", "--langs", "de,xx"], "unknown language(s) 'xx'"),
    (["compare", "--preset", "demo", "--base-model", "{tmp}/no-such-model"], "no-such-model"),
    (["compare", "--preset", "demo", "--sweep-alphas", "0", "1.5"], "alpha must be in [0, 1], got 1.5"),
    (["compare", "--preset", "nope"], "unknown preset 'nope'"),
    (["compare", "--preset", "demo", "--max-steps", "0"], "max_steps must be a positive integer"),
    (["robustness", "--collection", "lareqa/nope"], "unknown LAReQA collection 'nope'"),
    (["robustness", "--langs", "de", "xx"], "unknown language(s) 'xx'"),
    (["robustness", "--systems", "bm25", "mine={tmp}/no-such-model"], "no-such-model"),
    (["robustness", "--edits", "0"], "edits must be >= 1"),
    (["robustness", "--kinds", "typo,sneeze"], "unknown kinds ['sneeze']"),
    (["robustness", "--max-queries-per-lang", "0", "--answer-paragraphs-only"], "give max_queries_per_lang"),
    (["robustness", "--domain-shift", "--cross", "a=bm25", "--in-collection", "a={tmp}/no-such-model"],
     "no-such-model"),
]


@pytest.mark.parametrize("args, problem", ERRORS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in ERRORS])
def test_user_errors_are_one_line_and_exit_2_before_any_model_is_built(args, problem, tmp_path):
    out = tmp_path / "out"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args] + ["--out", str(out)]
    done = _run_cli(args, tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"pyterrier-hybrid {args[0]}: error: ")
    assert problem in lines[0]
    assert "Traceback" not in done.stderr
    # before any model: no model library imported, the default not built, nothing trained or written
    assert done.stdout.strip() == "loaded:"
    assert not (tmp_path / "cache").exists()
    assert not out.exists()


def test_the_module_entry_point_reports_a_user_error_the_same_way(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pyterrier_hybrid.cli", "compare", "--preset", "demo",
                           "--langs", "xx", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == ("pyterrier-hybrid compare: error: unknown language(s) 'xx' for xquad-r; valid "
                                   "languages: ar de el en es hi ru th tr vi zh")


@pytest.mark.parametrize("langs", [["de,en"], ["de", "en"], ["de,", "en"]])
def test_compare_takes_language_lists_with_commas_or_spaces(langs, tmp_path):
    from pyterrier_hybrid.experiments.compare_cli import comparison_from_args

    args = build_parser().parse_args(["compare", "--preset", "demo", "--langs", *langs, "--train-langs", "en,de",
                                      "--out", str(tmp_path)])
    comparison = comparison_from_args(args)
    assert comparison.preset.eval_langs == {"xquad-r": ("de", "en")}
    assert comparison.train_langs == ("en", "de")


def test_compare_sets_the_learning_rate_of_every_trained_system(tmp_path):
    from pyterrier_hybrid.experiments.compare_cli import comparison_from_args

    args = build_parser().parse_args(["compare", "--preset", "distill-cpu", "--learning-rate", "2e-5", "--out",
                                      str(tmp_path)])
    comparison = comparison_from_args(args)
    assert comparison.preset.training.learning_rate == 2e-5
    assert comparison.preset.training.distill_parallel_weight == 1.0  # the rest of the recipe is kept
    with pytest.raises(UserError, match="learning_rate must be positive"):
        comparison_from_args(build_parser().parse_args(["compare", "--preset", "demo", "--learning-rate", "0"]))


def test_compare_cuts_the_training_data_of_every_trained_system(tmp_path):
    from pyterrier_hybrid.experiments.compare_cli import comparison_from_args

    args = build_parser().parse_args(["compare", "--preset", "demo", "--max-parallel-ids", "200", "--out",
                                      str(tmp_path)])
    preset = comparison_from_args(args).preset
    assert preset.training.max_parallel_ids == 200
    assert [system.training.max_parallel_ids for system in preset.recipe_systems] == [200]  # demo's distilled too
    with pytest.raises(UserError, match="max_parallel_ids must be a positive integer"):
        comparison_from_args(build_parser().parse_args(["compare", "--preset", "demo", "--max-parallel-ids", "0"]))


def test_compare_passes_the_batching_and_the_trained_weights_to_every_trained_system(tmp_path):
    from pyterrier_hybrid.experiments.compare_cli import comparison_from_args

    args = build_parser().parse_args(["compare", "--preset", "distill-cpu", "--batching", "pooled", "--freeze-layers",
                                      "3", "--out", str(tmp_path)])
    training = comparison_from_args(args).preset.training
    assert (training.batching, training.freeze_layers, training.lora_rank) == ("pooled", 3, 0)
    assert training.distill_parallel_weight == 1.0  # the rest of the recipe is kept
    with pytest.raises(UserError, match="choose one"):
        comparison_from_args(build_parser().parse_args(["compare", "--preset", "demo", "--freeze-layers", "3",
                                                        "--lora-rank", "8", "--out", str(tmp_path)]))


def test_the_cli_modules_list_the_presets_and_kinds_of_the_library():
    from pyterrier_hybrid.experiments import compare_cli
    from pyterrier_hybrid.experiments.presets import PRESETS
    from pyterrier_hybrid.experiments.robustness import KINDS
    from pyterrier_hybrid.experiments.robustness import PRESETS as ROBUSTNESS_PRESETS
    from pyterrier_hybrid.experiments.robustness import cli as robustness_cli

    assert set(compare_cli.PRESET_NAMES) == set(PRESETS)
    assert set(robustness_cli.ROBUSTNESS_PRESETS) == set(ROBUSTNESS_PRESETS)
    assert tuple(robustness_cli.KIND_NAMES) == KINDS


def test_compare_adds_extra_systems_and_a_debiased_variant_of_every_dense_system(tiny_model_path, tmp_path):
    from pyterrier_hybrid.experiments.compare_cli import comparison_from_args
    from pyterrier_hybrid.experiments.presets import MLQA_TO_XQUAD

    args = build_parser().parse_args([
        "compare", "--preset", "demo", "--base-model", str(tiny_model_path), "--out", str(tmp_path),
        "--system", "bm25-again=bm25", "--system", f"tiny-mean={tiny_model_path}+debias:mean", "--debias", "mean",
    ])
    systems = comparison_from_args(args).systems_for(MLQA_TO_XQUAD)
    labels = [s.label for s in systems]
    assert labels == ["BM25", "base (untrained)", "base (untrained) + debias", "tiny-mean",
                      "X-X-mono (alpha=1)", "X-X-mono (alpha=1) + debias", "hybrid (alpha=0.5)",
                      "hybrid (alpha=0.5) + debias", "distilled", "distilled + debias"]  # plain BM25: in already
    by_label = {s.label: s for s in systems}
    assert by_label["distilled + debias"].spec().debias == "mean" and by_label["distilled"].own_recipe
    assert Path(by_label["distilled + debias"].model).name == "mlqa-r-distilled-seed42"
    assert not by_label["hybrid (alpha=0.5)"].own_recipe
    assert by_label["hybrid (alpha=0.5) + debias"].spec().debias == "mean"
    assert by_label["hybrid (alpha=0.5) + debias"].model == by_label["hybrid (alpha=0.5)"].model
    assert by_label["tiny-mean"].spec().debias == "mean"  # kept although it is the base model: it has an option
    assert by_label["base (untrained)"].spec().debias is None
    assert len({s.slug + str(s.seed) for s in systems}) == len(systems)  # one result folder each


@pytest.mark.lareqa
def test_robustness_runs_the_perturbation_study_end_to_end_on_bm25(tmp_path):
    out = tmp_path / "robustness"
    status = cli_main(["robustness", "--systems", "bm25", "--langs", "de,en", "--max-queries-per-lang", "4",
                       "--kinds", "typo,diacritics", "--edits", "2", "--fractions", "1", "--candidate-text",
                       "sentence", "--out", str(out)])
    assert status == 0
    rows = pd.read_csv(out / "robustness.csv")
    assert set(rows["kind"]) == {"clean", "typo", "diacritics"}
    clean = rows[rows["kind"] == "clean"].set_index(["setting_type", "measure"])["value"]
    typo = rows[rows["kind"] == "typo"].set_index(["setting_type", "measure"])
    # every perturbed row carries the clean value it is compared with
    assert typo["clean_value"].to_dict() == pytest.approx(clean.reindex(typo.index).to_dict())
    assert set(rows[rows["kind"] == "diacritics"]["query_langs"]) == {"de"}  # English has no diacritics to strip
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "perturbation" and run["facts"]["questions_main"] == 8
    assert run["versions"]["pyterrier-hybrid"]
    assert (out / "drop_vs_strength.png").read_bytes()[:4] == b"\x89PNG"
    assert "| bm25 | typo | 2 |" in (out / "robustness.md").read_text()
