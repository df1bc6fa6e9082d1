"""The trained models of a comparison: which ones it needs (:func:`plan_training`) and a store that trains each
once or reuses a finished one (:class:`ModelStore`).

Trained models go to ``<out>/models/<train>-alpha<a>-seed<s>/`` (the paper's regimes) or
``<out>/models/<train>-<label>-seed<s>/`` (a recipe system), about 470 MB each for multilingual-e5-small. A
folder holding a finished model trained with the same configuration is reused, an interrupted one (checkpoints, no
model) is resumed; with ``skip_training`` a missing model is an error.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..provenance import utc_now
from ..training.config import CONFIG_FILE, HybridTrainingConfig
from .presets import ComparisonPreset

__all__ = ["TRAINING_RECORD", "ModelStore", "TrainingRun", "alpha_label", "model_name", "plan_training",
           "recipe_model_name"]


class ModelFolderError(UserError, ValueError):
    """A model folder that cannot be reused or is missing where it must exist; names the folder."""


def alpha_label(alpha: float) -> str:
    """``alpha=0.5``: how a trained system without a label is named."""
    return f"alpha={alpha:g}"


@dataclass(frozen=True)
class TrainingRun:
    """One trained model: the base encoder trained on ``config.train`` with ``config.alpha`` and ``config.seed``;
    ``recipe``: the label of the recipe system it trains (None: a paper regime, known by its alpha)."""

    config: HybridTrainingConfig
    recipe: str | None = None

    @property
    def path(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def name(self) -> str:
        return self.path.name


def model_name(train: str, alpha: float, seed: int) -> str:
    """The folder name of a paper regime's trained model: ``<train>-alpha<a>-seed<s>``."""
    return f"{train}-alpha{alpha:g}-seed{seed}"


def recipe_model_name(train: str, label: str, seed: int) -> str:
    """The folder name of a recipe system's trained model: ``<train>-<label>-seed<s>``."""
    return f"{train}-{label}-seed{seed}"


def plan_training(preset: ComparisonPreset, models_dir: Path, base_model: str | None,
                  train_langs: tuple[str, ...] | None = None) -> list[TrainingRun]:
    """Every model the run needs, once each: main systems x seeds x directions, then the sweep's extra alphas, then
    the recipe systems x seeds x directions (each with its own configuration)."""
    wanted: dict[tuple[str, float, int], None] = {}
    for direction in preset.directions:
        for seed in preset.seeds:
            for _, alpha in preset.main_systems:
                wanted[(direction.train, alpha, seed)] = None
    for direction in preset.sweep_directions:
        for seed in preset.seeds:
            for alpha in preset.sweep_alphas:
                wanted[(direction.train, alpha, seed)] = None
    runs = []
    for train, alpha, seed in wanted:
        config = dataclasses.replace(
            preset.training, base_model=base_model, train=f"lareqa/{train}", train_langs=train_langs, alpha=alpha,
            seed=seed, output_dir=str(models_dir / model_name(train, alpha, seed)),
        )
        runs.append(TrainingRun(config))
    for direction in preset.directions:
        for seed in preset.seeds:
            for system in preset.recipe_systems:
                config = dataclasses.replace(
                    system.training, base_model=base_model, train=f"lareqa/{direction.train}",
                    train_langs=train_langs, seed=seed,
                    output_dir=str(models_dir / recipe_model_name(direction.train, system.label, seed)),
                )
                runs.append(TrainingRun(config, recipe=system.label))
    return runs


TRAINING_RECORD = "paper_comparison_training.json"


class ModelStore:
    """Trains the models of a run, or reuses the finished ones found in their folders.

    A folder is *finished* when it holds a sentence-transformers model (``modules.json``) and a training
    configuration marked finished; it is reused only if that configuration is the one asked for (otherwise an
    error names the differences: delete the folder or choose another ``--out``). A folder with checkpoints and no
    finished model is resumed (the trainer checks the configuration).
    """

    def __init__(self, *, preset_name: str, commit: str, skip_training: bool = False, keep_checkpoints: bool = False):
        self.preset_name = preset_name
        self.commit = commit
        self.skip_training = skip_training
        self.keep_checkpoints = keep_checkpoints

    @staticmethod
    def is_finished(path: Path) -> bool:
        config_file = path / CONFIG_FILE
        if not (path / "modules.json").is_file() or not config_file.is_file():
            return False
        try:
            saved = json.loads(config_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return False
        return saved.get("run", {}).get("status") == "finished"

    @staticmethod
    def has_checkpoints(path: Path) -> bool:
        return any((path / "checkpoints").glob("checkpoint-*"))

    def check_reusable(self, run: TrainingRun) -> None:
        saved = HybridTrainingConfig.load(run.path / CONFIG_FILE)
        differences = {k: v for k, v in saved.differences(run.config).items() if k != "output_dir"}
        if differences:
            listed = ", ".join(f"{k}: saved {a!r}, wanted {b!r}" for k, (a, b) in differences.items())
            raise ModelFolderError(
                f"{run.path} holds a model trained with another configuration ({listed}): delete the folder or "
                "choose another --out"
            )

    def missing(self, runs: Sequence[TrainingRun]) -> list[TrainingRun]:
        return [run for run in runs if not self.is_finished(run.path)]

    def ensure(self, run: TrainingRun) -> dict[str, Any]:
        """The model of ``run``, trained now or reused; returns its record (``TRAINING_RECORD`` in the folder)."""
        record_path = run.path / TRAINING_RECORD
        if self.is_finished(run.path):
            self.check_reusable(run)
            record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
            record["reused"] = True
            return record
        if self.skip_training:
            raise ModelFolderError(f"--skip-training: no finished model in {run.path}")
        from pyterrier_hybrid.training import train

        resume = self.has_checkpoints(run.path)
        started = time.perf_counter()
        train(run.config, resume=resume)
        wall = time.perf_counter() - started
        if not self.keep_checkpoints:
            # The comparison needs the final model only; checkpoints (model + optimizer state) would double the
            # disk use of every run.
            shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
        saved = json.loads((run.path / CONFIG_FILE).read_text(encoding="utf-8")).get("run", {})
        record = {
            "preset": self.preset_name,
            "git_commit": self.commit,
            "model": run.name,
            "base_model": saved.get("base_model"),
            "alpha": run.config.alpha,
            **({"recipe_system": run.recipe} if run.recipe is not None else {}),
            "seed": run.config.seed,
            "train": run.config.train,
            "global_steps": saved.get("global_steps"),
            "final_training_loss": saved.get("final_training_loss"),
            "resumed": resume,
            "wall_time_s": round(wall, 1),
            "finished": utc_now(),
        }
        record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return {**record, "reused": False}
