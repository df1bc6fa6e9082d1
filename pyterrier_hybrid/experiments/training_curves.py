"""The training side of a comparison's report: how each trained model's run went.

- :func:`training_runs_table`: one row per trained model (system, seed): steps planned and trained, whether early
  stopping cut the run, the best held-out loss and its step, the last training loss;
- :func:`plot_loss_curves`: every model's training and held-out loss by step in one figure, a colour per system and
  a line style per seed, so that the seed-to-seed spread of the curves is visible next to the systems' differences.

The held-out batches are drawn with each run's own alpha (X-X-mono: monolingual batches only, X-Y: cross-lingual
only, which are harder) and seed, so a held-out loss compares the epochs of one run, not runs with each other.

Both read what the trainer wrote into each model folder (``training_config.json``, ``loss_curve.csv``); a run
resumed from a checkpoint has its whole curve there (the trainer's log history travels with the checkpoint).
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..evaluation.plots import new_figure, save_figure
from ..training.config import CONFIG_FILE
from ..training.trainer import LOSS_CURVE_CSV

__all__ = ["plot_loss_curves", "read_loss_curve", "training_runs_table"]

LINE_STYLES = ("-", "--", ":", "-.")


def read_loss_curve(model_dir: str | Path) -> pd.DataFrame:
    """``loss_curve.csv`` of a trained model: step, epoch, loss, eval_loss, learning_rate, grad_norm (empty cells NaN).
    A folder without one is a :class:`FileNotFoundError` naming it."""
    path = Path(model_dir) / LOSS_CURVE_CSV
    if not path.is_file():
        raise FileNotFoundError(f"no {LOSS_CURVE_CSV} in {model_dir}: not a model folder written by the trainer")
    return pd.read_csv(path)


def _planned_steps(config: dict[str, Any], run: dict[str, Any]) -> int | None:
    if config.get("max_steps"):
        return int(config["max_steps"])
    steps_per_epoch, epochs = run.get("steps_per_epoch"), config.get("epochs")
    if steps_per_epoch and epochs:
        return math.ceil(steps_per_epoch * epochs)
    return None


def training_runs_table(system_runs: Sequence[Any]) -> pd.DataFrame:
    """One row per trained run among ``system_runs`` (objects with ``label``, ``seed``, ``alpha`` and ``model``, e.g.
    :class:`~pyterrier_hybrid.experiments.system_records.SystemRun`; untrained systems, alpha None, are left out)."""
    rows = []
    for run in system_runs:
        if run.alpha is None:
            continue
        curve = read_loss_curve(run.model)
        config_path = Path(run.model) / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"no {CONFIG_FILE} in {run.model}: not a model folder written by the trainer")
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        config, record = saved.get("config", {}), saved.get("run", {})
        held_out = curve.dropna(subset=["eval_loss"]) if "eval_loss" in curve else curve.iloc[:0]
        best = held_out.loc[held_out["eval_loss"].idxmin()] if not held_out.empty else None
        planned, trained = _planned_steps(config, record), record.get("global_steps")
        rows.append({
            "System": run.label,
            "seed": run.seed,
            "steps": trained,
            "planned steps": planned,
            "stopped early": bool(planned is not None and trained is not None and trained < planned),
            "best held-out loss": None if best is None else float(best["eval_loss"]),
            "best step": None if best is None else int(best["step"]),
            "first held-out loss": None if held_out.empty else float(held_out["eval_loss"].iloc[0]),
            "last training loss": record.get("final_training_loss"),
        })
    return pd.DataFrame(rows)


def plot_loss_curves(system_runs: Sequence[Any], path: str | Path | None = None):
    """Training loss (left) and held-out loss (right) by step of every trained run among ``system_runs``."""
    figure = new_figure(11, 4)
    train_ax, held_ax = figure.subplots(1, 2, sharex=True)
    labels = list(dict.fromkeys(run.label for run in system_runs if run.alpha is not None))
    colours = {label: f"C{i}" for i, label in enumerate(labels)}
    seeds = sorted({run.seed for run in system_runs if run.alpha is not None})
    styles = {seed: LINE_STYLES[i % len(LINE_STYLES)] for i, seed in enumerate(seeds)}
    for run in system_runs:
        if run.alpha is None:
            continue
        curve = read_loss_curve(run.model)
        style = dict(color=colours[run.label], linestyle=styles[run.seed], label=f"{run.label}, seed {run.seed}")
        if "loss" in curve:
            points = curve.dropna(subset=["loss"])
            train_ax.plot(points["step"], points["loss"], **style)
        if "eval_loss" in curve:
            points = curve.dropna(subset=["eval_loss"])
            held_ax.plot(points["step"], points["eval_loss"], marker="o", **style)
    train_ax.set_title("training loss")
    held_ax.set_title("held-out loss (each run's own batches; best epoch kept)")
    for ax in (train_ax, held_ax):
        ax.set_xlabel("step")
        ax.set_ylabel("InfoNCE loss")
        ax.grid(alpha=0.3)
    if labels:
        held_ax.legend(fontsize=7, loc="upper right")
    return save_figure(figure, path)
