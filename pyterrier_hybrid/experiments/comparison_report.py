"""The comparison's report: tables, plots and prose from the evaluated systems of a direction.

:class:`~pyterrier_hybrid.experiments.comparison.Comparison` runs and resumes; this module only renders what it
gives: :func:`direction_tables` computes and saves a direction's tables and plots (CSV and PNG), and the
``*_markdown`` functions turn them into the Markdown of ``report.md``, ``paper_comparison.md`` and
``alpha_sweep.md``. Nothing here evaluates a system.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..evaluation.plots import plot_rank_distance_bars, plot_setting_bars
from ..evaluation.report import markdown_table
from ..training.trainer import LOSS_CURVE_CSV
from .aggregate import (
    markdown_with_spread,
    mean_result,
    seed_rows,
    seed_spread_markdown,
    seed_spread_table,
    seen_unseen_table,
    table1,
)
from .presets import BASELINE_ALPHA, ComparisonPreset, Direction
from .significance import TestSet, significance_markdown, significance_tests
from .sweep import plot_alpha_sweep, sweep_frame
from .system_records import SystemRun
from .training_curves import plot_loss_curves, training_runs_table
from .training_runs import alpha_label

__all__ = [
    "DirectionTables",
    "comparison_markdown",
    "direction_markdown",
    "direction_tables",
    "main_runs",
    "sweep_direction_markdown",
    "sweep_only_markdown",
    "write_seed_spread",
    "write_sweep",
    "write_training_curves",
]


@dataclass
class DirectionTables:
    """A direction's tables (as saved and as Markdown) and plots, what :func:`direction_markdown` writes about."""

    table: pd.DataFrame
    table_md: str
    split_md: str
    unseen: list[str]
    baseline: str | None
    significance_md: str
    cross_lingual_pairs: int
    spread_md: str | None = None
    training_md: str | None = None
    plots: list[Path] = field(default_factory=list)
    sweep_md: str | None = None
    sweep_plot: Path | None = None


def main_runs(preset: ComparisonPreset, system_runs: Sequence[SystemRun]) -> list[SystemRun]:
    """The runs of the table: untrained systems, the main alphas (not the sweep's extra alphas) and the recipe
    systems."""
    main_alphas = {alpha for _, alpha in preset.main_systems}
    return [r for r in system_runs if not r.by_alpha or r.alpha in main_alphas]


def _baseline(preset: ComparisonPreset) -> str | None:
    return next((f"{label} ({alpha_label(alpha)})" for label, alpha in preset.main_systems
                 if alpha == BASELINE_ALPHA), None)


def _split_markdown(split: pd.DataFrame, unseen: Sequence[str]) -> str:
    if not unseen:  # the split would repeat the table row for row
        return "Every evaluation language was seen in training: the split is the table above."
    return markdown_with_spread(split, ["System", "Languages"]) if not split.empty else "(none)"


def _setting_plots(runs: Sequence[SystemRun], langs: Sequence[str], out: Path) -> list[Path]:
    by_label: dict[str, list] = {}
    for run in runs:
        by_label.setdefault(run.label, []).append(run.result)
    means = {label: mean_result(results) for label, results in by_label.items()}
    plot_setting_bars(means, path=out / "settings_bars.png")
    plots = [out / "settings_bars.png"]
    if len(langs) > 1:
        plot_rank_distance_bars(means, path=out / "rank_distance_bars.png")
        plots.append(out / "rank_distance_bars.png")
    return plots


def direction_tables(preset: ComparisonPreset, system_runs: Sequence[SystemRun], test_sets: Sequence[TestSet],
                     seen: set[str], langs: Sequence[str], out: Path) -> DirectionTables:
    """Table 1, the seen/unseen split, the significance tests, the seed spread, the training runs and the plots of
    one direction, saved in ``out`` (CSV and PNG) and returned with their Markdown."""
    runs = main_runs(preset, system_runs)
    table = table1(runs)
    table.to_csv(out / "table.csv", index=False)
    split = seen_unseen_table(runs, seen)
    split.to_csv(out / "seen_unseen.csv", index=False)
    unseen = sorted(set(langs) - seen)
    baseline = _baseline(preset)
    significance = (significance_tests(runs, test_sets, baseline, preset.significance_depth, preset.seeds)
                    if baseline else pd.DataFrame())
    significance.to_csv(out / "significance.csv", index=False)
    return DirectionTables(
        table=table, table_md=markdown_with_spread(table, ["System"]), split_md=_split_markdown(split, unseen),
        unseen=unseen, baseline=baseline,
        significance_md=significance_markdown(significance, baseline or "alpha=1", preset.significance_depth),
        cross_lingual_pairs=next((len(t.settings) for t in test_sets if t.setting_type == "cross-lingual"), 0),
        spread_md=write_seed_spread(runs, out), training_md=write_training_curves(runs, out),
        plots=_setting_plots(runs, langs, out))


def _significance_prose(preset: ComparisonPreset, tables: DirectionTables) -> str:
    pairs = (f" ({preset.significance_pairs_per_language} per query language, balanced)"
             if preset.significance_pairs_per_language is not None else " (all)")
    return (f"AP@{preset.significance_depth} and R@10 over top-{preset.significance_depth} runs; qids of a setting "
            f"type's settings concatenated; cross-lingual: {tables.cross_lingual_pairs} language pairs{pairs}. "
            "Δ: difference to the baseline; p: Holm-corrected p-value, `*` significant at 0.05.")


def _spread_prose(seeds: int) -> str:
    return ("Difference of the seed means; `exceeds spread`: |difference| larger than both systems' seed standard "
            "deviations; Welch p: two-sided Welch t-test over the seeds (little power with few seeds)."
            + (" One seed: there is no spread to compare the differences with; the significance tests above measure "
               "the spread over questions, not over seeds." if seeds < 2 else ""))


def direction_markdown(preset: ComparisonPreset, direction: Direction, langs: Sequence[str],
                       tables: DirectionTables, out: Path) -> str:
    """The Markdown of a direction's ``report.md``."""
    lines = [
        f"## {direction.train} -> {direction.evaluate} (zero-shot)", "",
        f"Evaluation languages: {' '.join(langs)}; unseen in training: {' '.join(tables.unseen) or 'none'}. "
        f"Trained systems: {len(preset.seeds)} seed(s) ({', '.join(map(str, preset.seeds))}), mean ± std.", "",
        tables.table_md, "",
        "### Seen vs unseen languages", "",
        "Monolingual / cross-lingual: settings whose languages were all seen in training vs any unseen; "
        "multilingual: the pool's queries in seen vs unseen languages.", "",
        tables.split_md, "",
        f"### Significance against {tables.baseline} (pt.Experiment, paired t-test, Holm)", "",
        _significance_prose(preset, tables), "",
        tables.significance_md,
    ]
    if tables.spread_md is not None:
        lines += ["", "### Hybrid against each baseline, over seeds", "", _spread_prose(len(preset.seeds)), "",
                  tables.spread_md]
    if tables.training_md is not None:
        lines += ["", "### Training runs", "",
                  "Held-out batches are drawn with each run's alpha (monolingual only for alpha 1, cross-lingual "
                  "only for alpha 0) and seed: a held-out loss compares the epochs of one run, not runs.", "",
                  tables.training_md, "", f"Loss curves: {out / 'loss_curves.png'}"]
    if tables.sweep_md is not None:
        lines += ["", "### Alpha sweep", "", tables.sweep_md, "", f"Plot: {tables.sweep_plot}"]
    lines += ["", "Plots: " + ", ".join(str(p) for p in tables.plots)
              + f"; mAP heatmaps: {out / 'systems'}/*/[seed-*/]map_heatmap.png", ""]
    return "\n".join(lines)


def write_seed_spread(runs: Sequence[SystemRun], out: Path) -> str | None:
    """``seed_spread.csv``: every hybrid alpha (strictly between 0 and 1) of the main systems against the baselines
    (alpha 1 and 0) present, over seeds; its Markdown, or None without a hybrid and a baseline. Recipe systems are
    not among them (their alpha does not say what they are)."""
    plain = [r for r in runs if r.by_alpha and not r.spec_options]
    label_of = {r.alpha: r.label for r in plain}
    hybrids = [label_of[a] for a in sorted(label_of) if 0 < a < 1]
    baselines = [label_of[a] for a in (1.0, 0.0) if a in label_of]
    if not hybrids or not baselines:
        return None
    rows = seed_rows(plain)
    table = pd.concat([seed_spread_table(rows, hybrid, baselines) for hybrid in hybrids], ignore_index=True)
    table.to_csv(out / "seed_spread.csv", index=False)
    parts = []
    for hybrid in hybrids:
        if len(hybrids) > 1:
            parts += [f"{hybrid}:", ""]
        parts.append(seed_spread_markdown(table[table["System"] == hybrid]))
    return "\n\n".join(parts)


def write_training_curves(runs: Sequence[SystemRun], out: Path) -> str | None:
    """``training_runs.csv`` and ``loss_curves.png`` of the trained main systems; the table's Markdown, or None when
    no trained model folder has a loss curve (e.g. the models were moved after the evaluation)."""
    trained = [r for r in runs if r.alpha is not None and not r.spec_options
               and (Path(r.model) / LOSS_CURVE_CSV).is_file()]
    if not trained:
        return None
    table = training_runs_table(trained)
    table.to_csv(out / "training_runs.csv", index=False)
    plot_loss_curves(trained, out / "loss_curves.png")
    return markdown_table(table)


def write_sweep(preset: ComparisonPreset, direction: Direction, system_runs: Sequence[SystemRun],
                out: Path) -> tuple[str, Path]:
    """``alpha_sweep_<direction>.csv`` and ``.png`` in ``out``; returns the sweep's Markdown table and plot path."""
    seeds = len(preset.seeds)
    # no debiased variants, no recipe systems (their alpha is not what tells them apart)
    sweep = sweep_frame([run for run in system_runs if run.by_alpha and not run.spec_options])
    sweep.to_csv(out / f"alpha_sweep_{direction.name}.csv", index=False)
    sweep_md = markdown_with_spread(sweep.assign(alpha=[f"{a:g}" for a in sweep["alpha"]]), ["alpha"])
    sweep_plot = plot_alpha_sweep(sweep, f"Alpha sweep, {direction.train} -> {direction.evaluate} "
                                  f"({seeds} seed{'s' if seeds > 1 else ''})",
                                  out / f"alpha_sweep_{direction.name}.png")
    return sweep_md, sweep_plot


def sweep_direction_markdown(preset: ComparisonPreset, direction: Direction, langs: Sequence[str], sweep_md: str,
                             sweep_plot: Path) -> str:
    """The section of ``alpha_sweep.md`` on one direction (the --sweep-only run)."""
    main_alphas = {alpha for _, alpha in preset.main_systems}
    read = ", ".join(f"{a:g}" for a in sorted(main_alphas & set(preset.sweep_alphas)))
    return "\n".join([f"## Alpha sweep, {direction.train} -> {direction.evaluate} (zero-shot)", "",
                      f"Evaluation languages: {' '.join(langs)}; seeds {', '.join(map(str, preset.seeds))}; "
                      f"alphas {read} read from the main comparison's results.", "", sweep_md, "",
                      f"Plot: {sweep_plot}", ""])


def comparison_markdown(preset: ComparisonPreset, reports: Sequence[dict[str, Any]], *, base_model: str,
                        train_langs: Sequence[str] | None, commit: str) -> str:
    """``paper_comparison.md``: how the preset was run, then every direction's report."""
    subset = ""
    if preset.max_queries is not None:
        subset = f"; {preset.max_queries} parallel ids per evaluation collection" + (
            " with their answer paragraphs only" if preset.answer_paragraphs_only else "")
    header = [
        f"# The paper's comparison: preset `{preset.name}`", "", f"{preset.description}.", "",
        # Several trainings are listed with "; " between them, so the languages follow the last one the same way.
        f"As run: base model `{base_model}`; {_trained_systems_summary(preset)}"
        f"{'; ' if preset.recipe_systems else ', '}training languages "
        f"{' '.join(train_langs) if train_langs else 'all'}; seeds {', '.join(map(str, preset.seeds))}; retrieval "
        f"on {preset.candidate_text}{subset}. Git commit {commit}.", "", "",
    ]
    return "\n".join(header) + "\n".join(r["markdown"] for r in reports)


def _trained_systems_summary(preset: ComparisonPreset) -> str:
    """How the trained systems were trained: the shared training of the regimes, then each recipe system's own."""
    if not preset.recipe_systems:
        return f"every trained system {_training_summary(preset.training)}"
    return "; ".join([f"the regimes ({', '.join(label for label, _ in preset.main_systems)}) "
                      f"{_training_summary(preset.training)}"]
                     + [f"{s.label}: its own recipe, {_training_summary(s.training)}{_distillation_summary(s.training)}"
                        for s in preset.recipe_systems])


def _training_summary(training) -> str:
    """A training configuration's budget and main settings, as the report's header states them."""
    budget = f"{training.max_steps} steps" if training.max_steps is not None else f"{training.epochs:g} epochs"
    return (f"{budget} of batch {training.batch_size}, lr {training.learning_rate:g}, {training.candidate_text}, "
            f"max_seq_length {training.max_seq_length}, bf16 {training.bf16}, frozen word embeddings "
            f"{training.freeze_word_embeddings}")


_DISTILL_TARGET_TEXT = {"mean": "its group's mean", "english": "its group's English text"}


def _distillation_summary(training) -> str:
    """``, distillation ...``: what a recipe system's distillation does (empty when it does not distil)."""
    if not training.distills:
        return ""
    target = _DISTILL_TARGET_TEXT.get(training.distill_target, training.distill_target)
    return (f", distillation from the frozen base (parallel weight {training.distill_parallel_weight:g} towards "
            f"{target}, base weight {training.distill_base_weight:g}), contrastive batches {training.contrastive}")


def sweep_only_markdown(preset: ComparisonPreset, reports: Sequence[dict[str, Any]], *, commit: str) -> str:
    """``alpha_sweep.md`` of a --sweep-only run."""
    return "\n".join([f"# Alpha sweep: preset `{preset.name}`", "", f"{preset.description}. Git commit {commit}.",
                      "", ""]) + "\n".join(r["markdown"] for r in reports)
