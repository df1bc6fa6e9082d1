"""Aggregating evaluation results: the mean over seeds, the spread, and the split into seen and unseen languages.

- :func:`mean_result`: an :class:`~pyterrier_hybrid.evaluation.EvaluationResult` averaging runs of one system
  trained with different seeds;
- :func:`aggregate_table`: mean, standard deviation and number of runs of every measure column per key;
- :func:`table1` / :func:`seen_unseen_table`: the paper's Table 1 for a set of system runs, whole or split by
  :func:`language_split` into the languages seen in training and the unseen ones;
- :func:`markdown_with_spread`: such a table as Markdown, ``mean ± std`` where there is a spread;
- :func:`seed_spread_table` / :func:`seed_spread_markdown`: whether one system's difference to each baseline exceeds
  the seed-to-seed spread of the two.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..evaluation.report import SETTING_COLUMNS, EvaluationResult, comparison_table, markdown_table, summary_frame

__all__ = ["aggregate_table", "language_split", "markdown_with_spread", "mean_result", "seed_rows",
           "seed_spread_markdown", "seed_spread_table", "seen_unseen_table", "table1"]

#: The Table-1 measures a seed-spread comparison reads (higher is better except rank distance).
SPREAD_MEASURES = ("Monolingual mAP", "Cross-lingual mAP", "Multilingual mAP", "Rank distance ↓")


def mean_result(results: Sequence[Any]):
    """An EvaluationResult whose per-setting values are the means over ``results`` (runs of one system with
    different seeds); its summary is then the mean of their summaries."""
    if len(results) == 1:
        return results[0]
    stacked = pd.concat([r.per_setting for r in results], ignore_index=True)
    per_setting = (stacked.groupby(SETTING_COLUMNS + ["measure"], sort=False)
                   .agg(value=("value", "mean"), n_queries=("n_queries", "first")).reset_index())
    first = results[0]
    return EvaluationResult(collection=first.collection, system=first.system, langs=first.langs,
                            per_setting=per_setting, summary=summary_frame(per_setting),
                            notes=(f"means over {len(results)} seeds",))


def language_split(result, seen: set[str]) -> dict[str, Any]:
    """The result restricted to seen / unseen languages: monolingual and cross-lingual settings whose languages were
    all seen in training / any unseen; the multilingual pool's seen / unseen query languages (the pool itself holds
    every language). Groups with no setting are left out."""
    frame = result.per_setting
    pool = frame["setting_type"] == "multilingual"
    all_seen = frame["query_lang"].isin(seen) & (pool | frame["doc_lang"].isin(seen))
    split = {}
    for group, mask in (("seen", all_seen), ("unseen", ~all_seen)):
        per_setting = frame[mask].reset_index(drop=True)
        if per_setting.empty:
            continue
        split[group] = EvaluationResult(collection=result.collection, system=result.system, langs=result.langs,
                                        per_setting=per_setting, summary=summary_frame(per_setting))
    return split


def aggregate_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation (over seeds; empty for one run) and number of runs of every measure column, one row
    per ``keys`` value, in first-appearance order."""
    frame = pd.DataFrame(rows)
    measures = [c for c in frame.columns if c not in (*keys, "seed", "Collection")]
    grouped = frame.groupby(list(keys), sort=False)[measures]
    mean, std, runs = grouped.mean(), grouped.std(ddof=1), grouped.size()
    table = mean.reset_index()[list(keys)]
    table.insert(len(keys), "runs", runs.to_numpy())
    for measure in measures:
        table[measure] = mean[measure].to_numpy()
        table[f"{measure} std"] = std[measure].to_numpy()
    return table


def table1(system_runs: Sequence[Any]) -> pd.DataFrame:
    """The paper's Table 1 for one direction: one row per system label, mean and std over seeds.

    ``system_runs``: objects with ``label``, ``seed`` and ``result`` (an EvaluationResult), e.g.
    :class:`~pyterrier_hybrid.experiments.system_records.SystemRun`; runs sharing a label are seeds of one system.
    """
    return aggregate_table(seed_rows(system_runs), ["System"])


def seed_rows(system_runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Table 1's row of every run (``System``, the measures, ``seed``), before averaging over seeds."""
    return [{**comparison_table({run.label: run.result}).iloc[0].to_dict(), "seed": run.seed} for run in system_runs]


def seen_unseen_table(system_runs: Sequence[Any], seen: set[str]) -> pd.DataFrame:
    """:func:`table1` split into seen and unseen languages (see :func:`language_split`): one row per system and
    group (``Languages``: seen / unseen), mean and std over seeds; empty when no group has a setting."""
    rows = []
    for run in system_runs:
        for group, result in language_split(run.result, seen).items():
            row = comparison_table({run.label: result}).iloc[0].to_dict()
            rows.append({"System": row.pop("System"), "Languages": group, **row, "seed": run.seed})
    if not rows:
        return pd.DataFrame()
    table = aggregate_table(rows, ["System", "Languages"])
    return table.sort_values("Languages", kind="stable").reset_index(drop=True)


def markdown_with_spread(table: pd.DataFrame, keys: Sequence[str], digits: int = 4) -> str:
    """A Markdown table of ``aggregate_table`` output: ``mean ± std`` where there is a spread."""
    measures = [c for c in table.columns if c not in (*keys, "runs") and not c.endswith(" std")]
    shown = table[list(keys) + ["runs"]].copy()
    for measure in measures:
        cells = []
        for mean, std in zip(table[measure], table[f"{measure} std"]):
            if pd.isna(mean):
                cells.append("")
            elif pd.isna(std):
                cells.append(f"{mean:.{digits}f}")
            else:
                cells.append(f"{mean:.{digits}f} ± {std:.{digits}f}")
        shown[measure] = cells
    return markdown_table(shown)


def seed_spread_table(rows: Sequence[dict[str, Any]], system: str, baselines: Sequence[str],
                      measures: Sequence[str] = SPREAD_MEASURES) -> pd.DataFrame:
    """Whether ``system``'s difference to each of ``baselines`` exceeds the seed spread; ``rows``: one dict per run
    with ``System`` and the measures (:func:`seed_rows`), runs sharing a system being its seeds.

    One row per baseline and measure: both means and seed standard deviations, the difference (system - baseline),
    ``exceeds spread`` (|difference| larger than both systems' standard deviations; None with fewer than two seeds
    of either) and Welch's two-sided t-test over the seeds (unequal variances: the systems' spreads differ). With
    three seeds a system the test has little power; the spread is the plainer reading. A measure either system has
    no value of (a setting type the evaluation did not have) is left out.
    """
    from scipy.stats import ttest_ind

    frame = pd.DataFrame(rows)
    unknown = [label for label in (system, *baselines) if label not in set(frame.get("System", ()))]
    if unknown:
        raise ValueError(f"no runs of {', '.join(map(repr, unknown))}; systems: {', '.join(frame['System'].unique())}")
    spread_rows = []
    ours = frame[frame["System"] == system]
    for baseline in baselines:
        theirs = frame[frame["System"] == baseline]
        for measure in measures:
            a, b = ours[measure].dropna().to_numpy(), theirs[measure].dropna().to_numpy()
            if len(a) == 0 or len(b) == 0:  # a setting type the evaluation did not have (one language: no pairs)
                continue
            std_a = a.std(ddof=1) if len(a) > 1 else float("nan")
            std_b = b.std(ddof=1) if len(b) > 1 else float("nan")
            difference = a.mean() - b.mean()
            spread_known = len(a) > 1 and len(b) > 1
            p = float(ttest_ind(a, b, equal_var=False).pvalue) if spread_known else float("nan")
            spread_rows.append({
                "System": system, "Baseline": baseline, "Measure": measure,
                "System mean": a.mean(), "Baseline mean": b.mean(), "Difference": difference,
                "System std": std_a, "Baseline std": std_b, "seeds": f"{len(a)} / {len(b)}",
                "exceeds spread": bool(abs(difference) > max(std_a, std_b)) if spread_known else None,
                "Welch p": p,
            })
    return pd.DataFrame(spread_rows)


def seed_spread_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """:func:`seed_spread_table` as Markdown: one line per baseline and measure."""
    shown = pd.DataFrame({
        "Baseline": table["Baseline"],
        "Measure": table["Measure"],
        "System − baseline": [f"{d:+.{digits}f}" for d in table["Difference"]],
        "std (system / baseline)": [" / ".join("" if pd.isna(v) else f"{v:.{digits}f}" for v in pair)
                                    for pair in zip(table["System std"], table["Baseline std"])],
        "seeds": table["seeds"],
        "exceeds spread": ["" if e is None else ("yes" if e else "no") for e in table["exceeds spread"]],
        "Welch p": ["" if pd.isna(p) else f"{p:.3f}" for p in table["Welch p"]],
    })
    return markdown_table(shown)
