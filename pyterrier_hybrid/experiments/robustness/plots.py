"""The robustness studies' plots: the perturbation study's drops and the domain shift's pairs, as PNG files.

Each function takes the rows :mod:`.study` or :mod:`.domain_shift` measured and draws one figure; none
evaluates anything.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ...datasets.settings import SETTING_TYPES
from ...evaluation.plots import new_figure, save_figure
from .report import EDIT_KINDS, HEADLINE, largest_strength_pool, strength_unit

__all__ = ["plot_domain_shift", "plot_drop_vs_alpha", "plot_drop_vs_strength", "plot_per_language"]


def plot_drop_vs_strength(rows: pd.DataFrame, path: Path) -> None:
    """One row of panels per kind, one panel per headline measure; one line per system; strength 0 is clean."""
    from matplotlib.ticker import MaxNLocator

    perturbed = rows[rows["kind"] != "clean"]
    kinds = list(dict.fromkeys(perturbed["kind"]))
    if not kinds:
        return
    figure = new_figure(3.2 * len(HEADLINE), 2.6 * len(kinds))
    axes = figure.subplots(len(kinds), len(HEADLINE), squeeze=False)
    systems = list(dict.fromkeys(rows["system"]))
    colours = {s: f"C{i % 10}" for i, s in enumerate(systems)}
    for i, kind in enumerate(kinds):
        of_kind = perturbed[perturbed["kind"] == kind]
        for j, (setting_type, measure) in enumerate(HEADLINE):
            ax = axes[i][j]
            for system in systems:
                line = of_kind[(of_kind["system"] == system) & (of_kind["setting_type"] == setting_type)
                               & (of_kind["measure"] == measure)].sort_values("strength")
                if line.empty:
                    continue
                x = np.concatenate([[0.0], line["strength"].to_numpy(float)])
                y = np.concatenate([[0.0], 100 * line["relative_drop"].to_numpy(float)])
                ax.plot(x, y, marker="o", color=colours[system], label=system)
            ax.axhline(0, color="grey", linewidth=0.5)
            ax.set_title(f"{kind}: {setting_type} {measure}", fontsize=8)
            ax.set_xlabel(strength_unit(kind), fontsize=7)
            if kind in EDIT_KINDS:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("relative drop (%)" if measure != "RankDistance" else "rank distance increase (%)",
                          fontsize=7)
            ax.tick_params(labelsize=7)
    handles, labels = [], []
    for ax in axes.ravel():
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        figure.legend(handles, labels, loc="outside upper center", ncols=min(6, len(labels)), fontsize=8)
    save_figure(figure, path, dpi=120)


def plot_per_language(language_rows: pd.DataFrame, path: Path) -> None:
    """Relative drop of the pool's mAP per query language at each kind's largest strength; a bar per system."""
    pool = largest_strength_pool(language_rows)
    if pool.empty:
        return
    kinds = list(dict.fromkeys(pool["kind"]))
    systems = list(dict.fromkeys(pool["system"]))
    figure = new_figure(max(6.0, 0.5 * pool["query_lang"].nunique() * len(systems) + 2), 2.4 * len(kinds))
    axes = figure.subplots(len(kinds), 1, squeeze=False)
    width = 0.8 / len(systems)
    for i, kind in enumerate(kinds):
        ax = axes[i][0]
        of_kind = pool[pool["kind"] == kind]
        langs = list(dict.fromkeys(of_kind["query_lang"]))
        for k, system in enumerate(systems):
            values = of_kind[of_kind["system"] == system].set_index("query_lang")["relative_drop"].reindex(langs)
            ax.bar(np.arange(len(langs)) + (k - (len(systems) - 1) / 2) * width, 100 * values.to_numpy(float),
                   width, label=system, color=f"C{k % 10}")
        ax.set_xticks(range(len(langs)), labels=langs)
        ax.axhline(0, color="grey", linewidth=0.5)
        strength = of_kind["strength"].max()
        ax.set_title(f"{kind}, strength {strength:g} ({strength_unit(kind)}): multilingual pool mAP drop per query "
                     "language",
                     fontsize=8)
        ax.set_ylabel("relative drop (%)", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7, ncols=min(6, len(systems)))
    save_figure(figure, path, dpi=120)


def plot_drop_vs_alpha(rows: pd.DataFrame, alphas: Mapping[str, float | None], path: Path) -> bool:
    """Relative drop of the pool's and the monolingual mAP against the training ratio alpha, at each kind's largest
    strength (``alphas``: system name -> the alpha of its training_config.json, or None). Returns whether a plot was
    written."""
    alpha = {name: value for name, value in alphas.items() if value is not None}
    if len(alpha) < 2:
        return False
    data = rows[rows["system"].isin(alpha) & (rows["kind"] != "clean") & (rows["measure"] == "mAP")]
    if data.empty:
        return False
    largest = data.groupby(["system", "kind"])["strength"].transform("max")
    data = data[data["strength"] == largest].assign(alpha=lambda f: f["system"].map(alpha))
    figure = new_figure(9.0, 3.2)
    axes = figure.subplots(1, len(SETTING_TYPES), squeeze=False)[0]
    for ax, setting_type in zip(axes, SETTING_TYPES):
        for k, (kind, part) in enumerate(data[data["setting_type"] == setting_type].groupby("kind", sort=False)):
            part = part.sort_values("alpha")
            ax.plot(part["alpha"], 100 * part["relative_drop"], marker="o", label=kind, color=f"C{k % 10}")
        ax.set_xlabel("alpha (share of monolingual batches)", fontsize=7)
        ax.set_ylabel("relative mAP drop (%)", fontsize=7)
        ax.set_title(f"{setting_type} mAP drop at the largest strength", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    save_figure(figure, path, dpi=120)
    return True


def plot_domain_shift(table: pd.DataFrame, path: Path) -> None:
    """mAP in- vs cross-collection per setting type, one panel per pair, one y scale for all."""
    data = table[table["measure"] == "mAP"]
    if data.empty:
        return
    names = list(dict.fromkeys(data["name"]))
    types = [t for t in SETTING_TYPES if t in set(data["setting_type"])]
    figure = new_figure(max(5.0, 2.2 * len(names) + 2), 3.6)
    # One y scale for every pair, so that the panels compare systems as well as in- vs cross-collection.
    axes = figure.subplots(1, len(names), squeeze=False, sharey=True)[0]
    for ax, name in zip(axes, names):
        part = data[data["name"] == name].set_index("setting_type").reindex(types)
        x = np.arange(len(types))
        for offset, column, label in ((-0.2, "in_collection", "in-collection (held-out articles)"),
                                      (0.2, "cross_collection", "cross-collection")):
            bars = ax.bar(x + offset, part[column], 0.4, label=label)
            ax.bar_label(bars, fmt="%.3f", fontsize=6, padding=1)
        ax.set_xticks(x, labels=types, fontsize=7)
        ax.set_title(name, fontsize=8)
    axes[0].set_ylabel("mAP", fontsize=7)
    axes[0].set_ylim(0, 1)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=7)
    save_figure(figure, path, dpi=120)
