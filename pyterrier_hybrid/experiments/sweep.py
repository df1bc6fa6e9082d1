"""The alpha sweep: mAP per setting type and rank distance against alpha, the share of monolingual batches.

:func:`sweep_frame` gathers the trained systems' summaries by alpha (mean, std and number of seeds);
:func:`plot_alpha_sweep` draws them (``alpha_sweep_<direction>.png`` of ``pyterrier-hybrid compare``).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..evaluation.measures import RANK_DISTANCE
from ..evaluation.plots import new_figure, save_figure
from .aggregate import aggregate_table

__all__ = ["plot_alpha_sweep", "sweep_frame"]


def sweep_frame(system_runs: Sequence[Any]) -> pd.DataFrame:
    """mAP per setting type and rank distance by alpha: mean, std and number of seeds.

    ``system_runs``: objects with ``alpha`` (None: not a trained system, left out), ``seed`` and ``result``.
    """
    rows = []
    for run in system_runs:
        if run.alpha is None:
            continue
        summary = run.result.summary_dict()
        row = {"alpha": run.alpha, "seed": run.seed}
        for setting_type in ("monolingual", "cross-lingual", "multilingual"):
            row[f"{setting_type} mAP"] = summary.get(setting_type, {}).get("mAP", np.nan)
        row["rank distance"] = summary.get("multilingual", {}).get(RANK_DISTANCE, np.nan)
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    return aggregate_table(rows, ["alpha"]).sort_values("alpha").reset_index(drop=True)


def plot_alpha_sweep(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """mAP per setting type (left) and rank distance (right) against alpha, error bars one std over seeds."""
    figure = new_figure(10, 4)
    left, right = figure.subplots(1, 2)
    alphas = frame["alpha"].to_numpy(float)
    for setting_type in ("monolingual", "cross-lingual", "multilingual"):
        column = f"{setting_type} mAP"
        left.errorbar(alphas, frame[column], yerr=frame[f"{column} std"].fillna(0.0), marker="o", capsize=3,
                      label=setting_type)
    left.set_xlabel("alpha (probability of a monolingual batch)")
    left.set_ylabel("mAP")
    left.set_xticks(alphas)
    left.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))  # below: lines fill the panel
    left.set_title("mAP per setting type")
    right.errorbar(alphas, frame["rank distance"], yerr=frame["rank distance std"].fillna(0.0), marker="o",
                   capsize=3, color="tab:red")
    right.set_xlabel("alpha (probability of a monolingual batch)")
    right.set_ylabel("rank distance (lower is better)")
    right.set_xticks(alphas)
    right.set_title("Language bias in the multilingual pool")
    figure.suptitle(title)
    save_figure(figure, path)
    return Path(path)
