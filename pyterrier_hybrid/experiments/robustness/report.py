"""The robustness studies' tables and Markdown: what the perturbation study and the domain shift measured, as text.

:mod:`.study` and :mod:`.domain_shift` run the evaluations and give their rows (one per system, condition,
setting type and measure); the functions here only render them. Plots are in :mod:`.plots`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...evaluation.report import markdown_table

__all__ = [
    "EDIT_KINDS",
    "HEADLINE",
    "KINDS",
    "domain_shift_markdown",
    "headline_table",
    "per_language_table",
    "percent",
    "robustness_markdown",
    "strength_unit",
]

#: The perturbation kinds, in report order.
KINDS = ("typo", "keyboard", "diacritics", "romanize", "traditional", "codeswitch", "adversarial")
EDIT_KINDS = ("typo", "keyboard", "adversarial")  # strength = edits per query; the others: fraction of words
#: The (setting type, measure) pairs of the headline table and plots.
HEADLINE = [("monolingual", "mAP"), ("cross-lingual", "mAP"), ("multilingual", "mAP"), ("multilingual", "RankDistance")]


def strength_unit(kind: str) -> str:
    """What a strength of ``kind`` counts."""
    return "edits per query" if kind in EDIT_KINDS else "fraction of changeable words"


def percent(value: float) -> str:
    """A relative change as a signed percentage; empty for a missing value."""
    return "" if value is None or not np.isfinite(value) else f"{100 * value:+.1f}%"


def largest_strength_pool(language_rows: pd.DataFrame) -> pd.DataFrame:
    """The multilingual pool's mAP rows per query language at each system's and kind's largest strength."""
    pool = language_rows[(language_rows["setting_type"] == "multilingual") & (language_rows["measure"] == "mAP")
                         & (language_rows["kind"] != "clean")]
    if pool.empty:
        return pool
    largest = pool.groupby(["system", "kind"])["strength"].transform("max")
    return pool[pool["strength"] == largest]


def headline_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (system, kind, strength, subsample): value and drop of the headline measures."""
    out = []
    keys = ["system", "kind", "strength", "queries_per_lang"]
    for key, part in rows.groupby(keys, sort=False):
        values = part.set_index(["setting_type", "measure"])
        row = dict(zip(["System", "Kind", "Strength", "Questions/lang"], key))
        row["Strength"] = "" if key[1] == "clean" else f"{key[2]:g}"
        for setting_type, measure in HEADLINE:
            label = f"{setting_type[:5]}. {measure}" if measure != "RankDistance" else "Rank distance ↓"
            if (setting_type, measure) in values.index:
                entry = values.loc[(setting_type, measure)]
                row[label] = entry["value"]
                row[f"Δ {label}"] = "" if key[1] == "clean" else percent(entry["relative_drop"])
            else:
                row[label] = np.nan
                row[f"Δ {label}"] = ""
        row["changed"] = "" if key[1] == "clean" else f"{100 * part['changed'].iloc[0]:.0f}%"
        row["languages"] = part["query_langs"].iloc[0]
        out.append(row)
    return pd.DataFrame(out)


def per_language_table(language_rows: pd.DataFrame) -> pd.DataFrame:
    """Relative drop of the multilingual pool's mAP per query language, at the largest strength of each kind."""
    pool = largest_strength_pool(language_rows)
    if pool.empty:
        return pd.DataFrame()
    table = pool.pivot_table(index=["system", "kind", "strength"], columns="query_lang", values="relative_drop",
                             sort=False)
    table = table.apply(lambda column: column.map(percent)).reset_index()
    table["strength"] = table["strength"].map(lambda s: f"{s:g}")
    return table


def robustness_markdown(run: Mapping[str, Any], rows: pd.DataFrame, language_rows: pd.DataFrame,
                        attack_stats: Sequence[dict], notes: Sequence[str]) -> str:
    """``robustness.md``: the headline table, the pool's drop per language, the adversarial search and the notes."""
    lines = [
        f"# Robustness to query perturbations: {run['collection']} ({' '.join(run['langs'])})",
        "",
        f"Commit `{run['commit']}`{' (with uncommitted changes)' if run.get('uncommitted_changes') else ''}, "
        f"preset `{run['preset']}`, seed {run['seed']}; {run['facts']['main_subset']}; adversarial runs on "
        f"{run['facts']['adversarial_subset']}. Wall time {run['wall_time_s']:.0f} s.",
        "",
        "Values are averaged over the settings whose queries the perturbation changes (column *languages*); "
        "Δ is the relative drop ((clean - perturbed) / clean; for the rank distance (perturbed - clean) / clean), "
        "positive = worse. *changed*: share of those queries whose text the perturbation changed.",
        "",
        markdown_table(headline_table(rows)),
        "",
    ]
    per_language = per_language_table(language_rows)
    if not per_language.empty:
        lines += ["## Multilingual pool: relative drop of mAP per query language (largest strength)", "",
                  markdown_table(per_language), ""]
    if attack_stats:
        lines += ["## Adversarial search (relevant-candidate score before / after, mean per language)", "",
                  markdown_table(pd.DataFrame(attack_stats)), ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def domain_shift_markdown(run: Mapping[str, Any], table: pd.DataFrame) -> str:
    """``domain_shift.md``: every pair's values in- and cross-collection and the cost of the shift."""
    shown = table.assign(relative_cost=table["relative_cost"].map(percent))
    lines = [f"# Domain shift on {run['collection']} ({' '.join(run['langs'])})", "",
             f"Commit `{run['commit']}`, seed {run['seed']}. Each pair is evaluated on the questions of the "
             "in-collection model's held-out articles (full candidate pools). *difference* = cross - in-collection; "
             "*relative_cost* = relative drop from in-collection to cross-collection training (positive: the shift "
             "costs). Wall time {:.0f} s.".format(run["wall_time_s"]), "", markdown_table(shown), ""]
    return "\n".join(lines)
