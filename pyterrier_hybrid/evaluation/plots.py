"""Figures of evaluation results, drawn with matplotlib's Agg canvas.

Figures are built as ``matplotlib.figure.Figure`` objects attached to an Agg canvas, without pyplot: nothing
depends on (or changes) the process-wide backend, figures are not kept alive by pyplot's registry, and drawing
works on machines without a display. Each function returns the figure and writes a PNG when given ``path``.
:func:`new_figure` and :func:`save_figure` are the two steps every figure of the package (reports, the comparison,
the robustness study) takes.

Results are read through their attributes only, so this module does not import :mod:`.report` (which imports this
one to draw a saved result's heatmap).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .measures import AP, MAP, RANK_DISTANCE
from .settings import SETTING_TYPES

if TYPE_CHECKING:
    from .report import EvaluationResult


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on its own Agg canvas, constrained layout."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path | None, dpi: int = 150) -> Figure:
    """Write ``figure`` as a PNG to ``path`` (its folder created; nothing when ``path`` is None)."""
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=dpi)
    return figure


def _named(results: Mapping[str, EvaluationResult] | Sequence[EvaluationResult]) -> list[tuple[str, EvaluationResult]]:
    items = list(results.items()) if isinstance(results, Mapping) else [(r.system, r) for r in results]
    if not items:
        raise ValueError("no results to plot")
    return items


def map_matrix(result: EvaluationResult, measure: str = AP) -> pd.DataFrame:
    """``measure`` of the monolingual (diagonal) and cross-lingual settings: query language x document language."""
    frame = result.per_setting[
        result.per_setting["setting_type"].isin(["monolingual", "cross-lingual"])
        & (result.per_setting["measure"] == measure)
    ]
    if frame.empty:
        raise ValueError(f"the result has no monolingual or cross-lingual {measure} values to plot")
    langs = list(result.langs) or sorted(set(frame["query_lang"]) | set(frame["doc_lang"]))
    return frame.pivot(index="query_lang", columns="doc_lang", values="value").reindex(index=langs, columns=langs)


def plot_map_heatmap(result: EvaluationResult, path: str | Path | None = None, measure: str = AP) -> Figure:
    """Heatmap of mAP (or ``measure``) over query language (rows) x document language (columns); the diagonal is
    the monolingual settings. The title gives the multilingual pool's value."""
    matrix = map_matrix(result, measure)
    size = max(4.0, 0.6 * len(matrix) + 2.0)
    figure = new_figure(size + 1.0, size)
    ax = figure.add_subplot()
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(matrix.columns)), labels=list(matrix.columns))
    ax.set_yticks(range(len(matrix.index)), labels=list(matrix.index))
    ax.set_xlabel("document language")
    ax.set_ylabel("query language")
    for i in range(len(matrix.index)):
        for j in range(len(matrix.columns)):
            value = matrix.iat[i, j]
            if not np.isnan(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if value > 0.6 else "white")
    label = MAP if measure == AP else measure
    title = f"{result.system} on {result.collection}: {label}"
    pool = result.summary_dict().get("multilingual", {}).get(label)
    if pool is not None:
        title += f" (multilingual pool {pool:.3f})"
    ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=ax, label=label)
    return save_figure(figure, path)


def plot_setting_bars(results: Mapping[str, EvaluationResult] | Sequence[EvaluationResult], measure: str = MAP,
                      path: str | Path | None = None) -> Figure:
    """Grouped bars: one group per setting type (monolingual, cross-lingual, multilingual), one bar per system."""
    items = _named(results)
    types = [t for t in SETTING_TYPES if any(t in r.summary_dict() for _, r in items)]
    if not types:
        raise ValueError("the results have no LAReQA setting types to plot")
    figure = new_figure(max(5.0, 1.2 * len(types) * max(1, len(items)) / 2 + 3), 4.0)
    ax = figure.add_subplot()
    width = 0.8 / len(items)
    for i, (name, result) in enumerate(items):
        summary = result.summary_dict()
        values = [summary.get(t, {}).get(measure, np.nan) for t in types]
        bars = ax.bar(np.arange(len(types)) + (i - (len(items) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(types)), labels=types)
    ax.set_ylabel(measure)
    ax.set_title(f"{measure} per setting type")
    ax.legend(fontsize=8)
    return save_figure(figure, path)


def plot_rank_distance_bars(results: Mapping[str, EvaluationResult] | Sequence[EvaluationResult],
                            path: str | Path | None = None) -> Figure:
    """Rank distance in the multilingual pool (lower is better) per query language and macro-averaged ("all"),
    one bar per system."""
    items = _named(results)
    per_lang = {}
    for name, result in items:
        rows = result.per_setting[(result.per_setting["setting_type"] == "multilingual")
                                  & (result.per_setting["measure"] == RANK_DISTANCE)]
        if rows.empty:
            raise ValueError(f"result {name!r} has no rank distance (no multilingual setting)")
        values = rows.set_index("query_lang")["value"]
        values["all"] = result.value("multilingual", RANK_DISTANCE)
        per_lang[name] = values
    frame = pd.DataFrame(per_lang)
    langs = [lang for lang in frame.index if lang != "all"] + ["all"]
    frame = frame.reindex(langs)
    figure = new_figure(max(6.0, 0.5 * len(langs) * max(1, len(items)) + 2), 4.0)
    ax = figure.add_subplot()
    width = 0.8 / len(items)
    for i, name in enumerate(frame.columns):
        ax.bar(np.arange(len(langs)) + (i - (len(items) - 1) / 2) * width, frame[name].to_numpy(), width, label=name)
    ax.set_xticks(range(len(langs)), labels=langs)
    ax.set_xlabel("query language (all: macro average)")
    ax.set_ylabel("rank distance (lower is better)")
    ax.set_title("Language bias in the multilingual pool")
    ax.legend(fontsize=8)
    return save_figure(figure, path)
