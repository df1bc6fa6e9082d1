"""The comparison of systems across LAReQA collections (arXiv 2408.10536, Table 1), zero-shot, as a library.

For every *direction* of a :class:`~pyterrier_hybrid.experiments.presets.ComparisonPreset` (train on one LAReQA
collection, evaluate on the other, which is never seen in training), :class:`Comparison` evaluates

- BM25; the base encoder without training; the preset's extra systems (any
  :class:`~pyterrier_hybrid.retrieval.systems.SystemSpec` string); and the base encoder trained with hybrid batches
  at each alpha of ``main_systems`` (1: X-X-mono, 0: X-Y, 0.5: hybrid), all with the same budget, data, seeds and
  hyperparameters; with ``debias``, a debiased variant of the base and of every trained system;

and writes per direction Table 1 (mean ± std over seeds, :mod:`.aggregate`), the seen/unseen language split, paired
significance tests against the monolingual-trained system (:mod:`.significance`), hybrid against each baseline over
seeds, the training runs and their loss curves (:mod:`.training_curves`), the alpha sweep (:mod:`.sweep`),
mAP heatmaps and bar plots, and a ``run.json`` beside every result. ``pyterrier-hybrid compare`` drives it::

    from pyterrier_hybrid.experiments import Comparison, PRESETS, override_preset
    preset = override_preset(PRESETS["demo"], langs=["en", "th"], max_steps=5)
    outcome = Comparison(preset, "results/demo").run()
    print(outcome["reports"][0]["table_md"])
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from tqdm.auto import tqdm

from ..datasets import lareqa_collection
from ..evaluation import EvaluationResult, LAReQAEvaluationConfig, evaluate_lareqa
from ..evaluation.cache import RetrieverCache
from ..evaluation.plots import plot_rank_distance_bars, plot_setting_bars
from ..evaluation.report import markdown_table
from ..evaluation.runs import TopRun, load_top_runs, save_top_runs
from ..evaluation.subsets import TopicSubset
from ..models import resolve_model
from ..provenance import command_line, git_commit, machine, utc_now, versions, write_json
from ..retrieval.systems import SystemOptions, SystemSpec, build_factory
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
from .presets import BASELINE_ALPHA, ComparisonPreset, Direction, PresetError
from .significance import TestSet, build_test_sets, significance_markdown, significance_tests, top_runs
from .sweep import plot_alpha_sweep, sweep_frame
from .training_curves import plot_loss_curves, training_runs_table
from .training_runs import ModelFolderError, ModelStore, alpha_label, model_name, plan_training

__all__ = [
    "Comparison",
    "SystemEntry",
    "SystemRun",
    "check_model",
    "find_encoder",
    "parse_system",
    "system_factory",
]

#: A system's top runs for the significance test, beside its saved result (see :meth:`Comparison.evaluate_system`).
TOP_RUNS_FILE = "top_runs.npz"


class SystemEntry(NamedTuple):
    """One system to evaluate on a direction; ``seed`` and ``alpha`` are None for BM25 and untrained encoders.

    ``spec_options``: extra :class:`~pyterrier_hybrid.retrieval.systems.SystemSpec` fields as (name, value) pairs,
    e.g. ``(("debias", "METHOD"),)``; empty for a plain system.
    """

    label: str
    slug: str
    model: str
    seed: int | None
    alpha: float | None
    spec_options: tuple[tuple[str, Any], ...] = ()

    def spec(self) -> SystemSpec:
        """The system as :func:`~pyterrier_hybrid.retrieval.systems.build_factory` takes it."""
        return spec_with_options(SystemSpec(self.slug, self.model), self.spec_options)


def read_run_record(folder: Path) -> dict | None:
    """The run.json an evaluation wrote last in ``folder`` (its result is complete), or None."""
    path = folder / "run.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def differences(record: dict, wanted: dict) -> list[str]:
    """How a saved run record differs from the ``wanted`` values, one 'key: saved ..., wanted ...' per key."""
    return [f"{key}: saved {record.get(key)!r}, wanted {value!r}" for key, value in wanted.items()
            if record.get(key) != value]


@dataclass
class SystemRun:
    """One system evaluated on one direction (and, for trained systems, one seed)."""

    label: str
    slug: str
    model: str
    seed: int | None
    alpha: float | None
    result: EvaluationResult
    runs: dict[str, TopRun]
    record: dict[str, Any]
    spec_options: tuple[tuple[str, Any], ...] = ()


def parse_system(text: str) -> SystemSpec:
    """``SystemSpec.parse(text)``, its errors as :class:`PresetError` (a user error naming the text)."""
    try:
        return SystemSpec.parse(text)
    except ValueError as error:
        raise PresetError(f"system {text!r}: {error}") from error


def spec_options(spec: SystemSpec) -> tuple[tuple[str, Any], ...]:
    """The fields of ``spec`` beyond name and model that differ from their defaults, as (name, value) pairs."""
    options = []
    for field in dataclasses.fields(spec):
        if field.name in ("name", "model"):
            continue
        value = getattr(spec, field.name)
        default = field.default if field.default is not dataclasses.MISSING else (
            field.default_factory() if field.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if value != default:
            options.append((field.name, value))
    return tuple(options)


def spec_with_options(spec: SystemSpec, options: Sequence[tuple[str, Any]]) -> SystemSpec:
    """``spec`` with extra fields set; a field this version's SystemSpec does not have is a :class:`PresetError`."""
    if not options:
        return spec
    known = {f.name for f in dataclasses.fields(spec)}
    unknown = [name for name, _ in options if name not in known]
    if unknown:
        raise PresetError(f"this version's SystemSpec has no option {', '.join(map(repr, unknown))} (it has "
                          f"{', '.join(sorted(known))})")
    try:
        return dataclasses.replace(spec, **dict(options))
    except ValueError as error:
        raise PresetError(str(error)) from error


def check_model(model: str) -> None:
    """Fail early (a user error) on a model argument that names no existing folder and is no hub id; ``default``
    and ``bm25`` are accepted without building anything."""
    if model in ("default", "bm25"):
        return
    resolve_model(model)


def find_encoder(factory) -> Any:
    """The bi-encoder behind a dense retriever factory (``.encoder``, also through wrappers that keep the wrapped
    factory as ``.factory``, ``.base`` or ``.inner``, e.g. a debiased factory), or None (BM25)."""
    seen = set()
    while factory is not None and id(factory) not in seen:
        seen.add(id(factory))
        encoder = getattr(factory, "encoder", None)
        if encoder is not None:
            return encoder
        factory = next((getattr(factory, name) for name in ("factory", "base", "inner")
                        if getattr(factory, name, None) is not None), None)
    return None


def system_factory(spec: SystemSpec, options: SystemOptions, max_length: int | None = None):
    """``build_factory(spec, options)``; for a dense system with a token limit, its encoder reads at most
    ``max_length`` tokens (``SystemOptions`` has no token limit; the encoder reads its ``max_length`` at encoding
    time, so setting it after construction is the same as ``BiEncoderConfig(max_length=...)``)."""
    factory = build_factory(spec, options)
    if max_length is not None and not spec.is_bm25:
        encoder = find_encoder(factory)
        if encoder is None:
            raise TypeError(f"no encoder found in {factory!r} to set its token limit")
        encoder.max_length = max_length
    return factory


def slug(text: str) -> str:
    """``text`` as a folder name: letters, digits, ``-_.`` kept, anything else ``-``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "system"


class Comparison:
    """Runs a preset: trains (or reuses) the models, evaluates every system per direction, writes the reports.

    Args:
        preset: what to run (:data:`~pyterrier_hybrid.experiments.presets.PRESETS` or your own).
        out: the results folder (trained models go to ``out/models/``).
        base_model: the encoder to train and the "base" row: ``default``, a sentence-transformers folder or a hub id.
        train_langs: training languages (None: all of the training collection's).
        skip_training: only evaluate; every model must already be finished in ``out/models/``.
        keep_checkpoints: keep the trainer's checkpoints in the model folders.
        per_query: also save per-query results of every run.
        progress: progress bars.
        sweep_only: after a full run into the same ``out``: train and evaluate only the sweep's extra alphas.

    :meth:`run` returns ``{"reports": [...], "markdown": ..., "wall_time_s": ...}``; each report has the direction's
    ``table`` (a DataFrame), ``table_md`` and ``plots``.
    """

    def __init__(self, preset: ComparisonPreset, out: Path, *, base_model: str = "default",
                 train_langs: tuple[str, ...] | None = None, skip_training: bool = False,
                 keep_checkpoints: bool = False, per_query: bool = False, progress: bool = True,
                 sweep_only: bool = False):
        self.preset = preset
        self.sweep_only = sweep_only
        if sweep_only and not preset.sweep_directions:
            raise PresetError("--sweep-only, but the preset has no alpha sweep (give --sweep-alphas)")
        self.out = Path(out)
        self.base_model = base_model
        self.train_langs = tuple(train_langs) if train_langs else None
        self.per_query = per_query
        self.progress = progress
        self.commit = git_commit()
        self.store = ModelStore(preset_name=preset.name, commit=self.commit, skip_training=skip_training,
                                keep_checkpoints=keep_checkpoints)
        base = None if base_model in (None, "default") else base_model
        self.training_runs = plan_training(preset, self.out / "models", base, self.train_langs)
        if sweep_only:
            sweep_train = {f"lareqa/{d.train}" for d in preset.sweep_directions}
            self.training_runs = [r for r in self.training_runs
                                  if r.config.train in sweep_train and r.config.alpha in preset.sweep_alphas]
        self.training_records: dict[str, dict[str, Any]] = {}

    # -- steps -----------------------------------------------------------------------------------------------------

    def check_inputs(self) -> None:
        """Fail before any model is built or trained (a :class:`~pyterrier_hybrid.errors.UserError` naming the
        problem) on languages a collection lacks, a model folder that does not exist, a system option this version
        does not have, or missing models with ``skip_training``."""
        for direction in self.preset.directions:
            lareqa_collection(direction.evaluate).check_languages(self.preset.langs_for(direction.evaluate))
            if self.train_langs:
                lareqa_collection(direction.train).check_languages(self.train_langs)
        check_model(self.base_model)
        for text in self.preset.encoders:
            spec = parse_system(text)
            if not spec.is_bm25:
                check_model(spec.model)
        if self.preset.debias is not None:
            spec_with_options(SystemSpec("base", "default"), (("debias", self.preset.debias),))
        if self.store.skip_training:
            missing = self.store.missing(self.training_runs)
            if missing:
                raise ModelFolderError("--skip-training, but these models are not finished: "
                                       + ", ".join(str(r.path) for r in missing))

    def train_all(self) -> None:
        """Trains every model the run needs (or reuses the finished ones); records each in ``training_records``."""
        for run in tqdm(self.training_runs, desc="training runs", unit="model", disable=not self.progress):
            tqdm.write(f"model {run.name}: alpha {run.config.alpha:g}, seed {run.config.seed}, {run.config.train}")
            self.training_records[run.name] = self.store.ensure(run)

    def systems_for(self, direction: Direction) -> list[SystemEntry]:
        """Every system evaluated on ``direction``: BM25, the base, the preset's extra systems, the trained alphas per
        seed, and with ``preset.debias`` a debiased variant of the base and of every trained system."""
        debias = (("debias", self.preset.debias),) if self.preset.debias is not None else ()
        systems = [SystemEntry("BM25", "bm25", "bm25", None, None),
                   SystemEntry("base (untrained)", "base", self.base_model, None, None)]
        if debias:
            systems.append(SystemEntry("base (untrained) + debias", "base-debias", self.base_model, None, None, debias))
        base_resolved = resolve_model(self.base_model)
        for text in self.preset.encoders:
            spec = parse_system(text)
            options = spec_options(spec)
            if not options and (spec.is_bm25 or resolve_model(spec.model) == base_resolved):
                tqdm.write(f"encoder {spec.name} ({spec.model}) is the base model or BM25: already in the table")
                continue
            systems.append(SystemEntry(spec.name, slug(spec.name), spec.model, None, None, options))
        alphas = {alpha: label for label, alpha in self.preset.main_systems}
        if direction in self.preset.sweep_directions:
            for alpha in self.preset.sweep_alphas:
                alphas.setdefault(alpha, alpha_label(alpha))
        main_alphas = {alpha for _, alpha in self.preset.main_systems}
        for alpha, label in alphas.items():
            shown = label if label.startswith("alpha=") else f"{label} ({alpha_label(alpha)})"
            for seed in self.preset.seeds:
                model = str(self.out / "models" / model_name(direction.train, alpha, seed))
                systems.append(SystemEntry(shown, f"alpha-{alpha:g}", model, seed, alpha))
                if debias and alpha in main_alphas:
                    systems.append(SystemEntry(f"{shown} + debias", f"alpha-{alpha:g}-debias", model, seed, alpha,
                                               debias))
        return systems

    def direction_inputs(self, direction: Direction):
        """(collection, langs, seen languages, system options, evaluation config) of one direction."""
        preset = self.preset
        collection = lareqa_collection(direction.evaluate)
        langs = collection.check_languages(preset.langs_for(direction.evaluate))
        if preset.max_queries is not None:
            collection = TopicSubset.sample_parallel_ids(collection, langs, preset.max_queries,
                                                         answer_paragraphs_only=preset.answer_paragraphs_only)
        train_collection = lareqa_collection(direction.train)
        seen = set(self.train_langs or train_collection.languages) & set(train_collection.languages)
        options = SystemOptions(candidate_text=preset.candidate_text, precision=preset.precision,
                                batch_size=preset.encode_batch_size, verbose=self.progress)
        eval_config = LAReQAEvaluationConfig(per_query=self.per_query, show_progress=self.progress)
        return collection, langs, seen, options, eval_config

    def evaluate_direction(self, direction: Direction) -> dict[str, Any]:
        """Evaluates every system on ``direction`` and writes its report (``<out>/<direction>/``)."""
        preset = self.preset
        collection, langs, seen, options, eval_config = self.direction_inputs(direction)
        test_sets = build_test_sets(collection, langs, preset.significance_pairs_per_language)
        out = self.out / direction.name
        system_runs = []
        systems = self.systems_for(direction)
        base_max_length = None  # set by the "base" system, evaluated before the trained ones
        main_alphas = {alpha for _, alpha in preset.main_systems}
        for system in tqdm(systems, desc=f"systems on {direction.name}", unit="system", disable=not self.progress):
            # Only the main systems take part in the significance test (the sweep's extra alphas do not).
            in_test = system.alpha is None or system.alpha in main_alphas
            run = self.evaluate_system(direction, collection, langs, seen, options, eval_config, system,
                                       base_max_length, test_sets if in_test else None)
            if system.slug == "base":
                base_max_length = run.record["encoder_max_length"]
            system_runs.append(run)
        return self.report_direction(direction, system_runs, test_sets, seen, langs, out)

    def system_folder(self, direction: Direction, system: SystemEntry) -> Path:
        """Where a system's result and run.json live: ``<out>/<direction>/systems/<slug>/[seed-N/]``."""
        seed_part = f"seed-{system.seed}" if system.seed is not None else ""
        return self.out / direction.name / "systems" / system.slug / seed_part

    def evaluate_system(self, direction: Direction, collection, langs: Sequence[str], seen: set[str], options,
                        eval_config, system: SystemEntry, base_max_length: int | None,
                        test_sets: list[TestSet] | None) -> SystemRun:
        """Evaluates one system in every setting (and, given ``test_sets``, keeps its top runs for the significance
        test); saves its result and run.json under ``<out>/<direction>/systems/<slug>/[seed-N/]``."""
        preset = self.preset
        label, model, seed, alpha = system.label, system.model, system.seed, system.alpha
        # Trained models keep the training token limit (e.g. 96 or 128 on CPU) as their own; they are evaluated
        # at the base model's limit, so that the base and its trained versions read the same texts.
        max_length = base_max_length if alpha is not None else None
        folder = self.system_folder(direction, system)
        identity = self.evaluation_identity(system, langs, max_length)
        reused = self.finished_evaluation(system, folder, identity, test_sets)
        shown = f"{direction.name}: {label}" + (f" seed {seed}" if seed is not None else "")
        if reused is not None:
            tqdm.write(f"{shown}: evaluated earlier with the same model and settings, read from {folder}")
            return reused
        tqdm.write(shown)
        started = time.perf_counter()
        factory = RetrieverCache(system_factory(system.spec(), options, max_length))
        encoder_max_length = getattr(find_encoder(factory.factory), "max_length", None)
        result = evaluate_lareqa(factory, collection, langs, system=label, config=eval_config)
        runs = top_runs(factory, collection, test_sets, preset.significance_depth) if test_sets is not None else {}
        del factory  # frees the model and its indexes before the next system
        wall = time.perf_counter() - started
        result.save(folder)
        if runs:
            save_top_runs(runs, folder / TOP_RUNS_FILE)
        record = {
            "preset": preset.name, "git_commit": self.commit, "system": label, "model": model, "seed": seed,
            "alpha": alpha, "direction": direction.name, "train_collection": direction.train,
            "eval_collection": direction.evaluate, "seen_langs": sorted(seen), **identity,
            "encoder_max_length": encoder_max_length, "wall_time_s": round(wall, 1), "finished": utc_now(),
            "top_runs": sorted(runs),
        }
        if alpha is not None:
            training = self.training_records.get(Path(model).name, {})
            record["training_wall_time_s"] = training.get("wall_time_s")
            record["training_reused"] = training.get("reused")
            record["base_model"] = self.base_model
        # Written last: a run.json means the result and top runs beside it are complete.
        write_json(folder / "run.json", record)
        return SystemRun(label, system.slug, model, seed, alpha, result, runs, record, system.spec_options)

    def evaluation_identity(self, system: SystemEntry, langs: Sequence[str], max_length: int | None) -> dict:
        """What makes two evaluations of a system the same: the model (a trained one by folder name and the time
        its training finished, so that a retrained model is evaluated again), the languages and the preset's
        evaluation settings."""
        preset = self.preset
        # A trained model by folder name: a comparison's folder may move with its models.
        model = Path(system.model).name if system.alpha is not None else system.model
        identity = {
            "model_name": model, "langs": list(langs), "candidate_text": preset.candidate_text,
            "precision": preset.precision, "max_queries": preset.max_queries,
            "answer_paragraphs_only": preset.answer_paragraphs_only, "max_length": max_length,
            "significance_depth": preset.significance_depth,
            "significance_pairs_per_language": preset.significance_pairs_per_language,
        }
        if system.spec_options:
            identity["system_options"] = dict(system.spec_options)
        if system.alpha is not None:
            identity["training_finished"] = self.training_records.get(Path(system.model).name, {}).get("finished")
        return identity

    def finished_evaluation(self, system: SystemEntry, folder: Path, identity: dict,
                            test_sets: list[TestSet] | None) -> SystemRun | None:
        """The saved evaluation of ``system`` in ``folder`` when an earlier run of this preset finished it with
        the same ``identity`` (and, when the significance test needs them, saved its top runs); else None."""
        record = read_run_record(folder)
        if record is None or differences(record, {"preset": self.preset.name, **identity}):
            return None
        runs = {}
        if test_sets is not None:
            if set(record.get("top_runs", ())) != {t.setting_type for t in test_sets}:
                return None
            runs = load_top_runs(folder / TOP_RUNS_FILE)
        return SystemRun(system.label, system.slug, system.model, system.seed, system.alpha,
                         EvaluationResult.load(folder), runs, {**record, "evaluation_reused": True},
                         system.spec_options)

    def write_sweep(self, direction: Direction, system_runs: Sequence[SystemRun]) -> tuple[str, Path]:
        """alpha_sweep_<direction>.csv and .png; returns the sweep's Markdown table and the plot's path."""
        seeds = len(self.preset.seeds)
        sweep = sweep_frame([run for run in system_runs if not run.spec_options])  # no debiased variants
        sweep.to_csv(self.out / f"alpha_sweep_{direction.name}.csv", index=False)
        sweep_md = markdown_with_spread(sweep.assign(alpha=[f"{a:g}" for a in sweep["alpha"]]), ["alpha"])
        sweep_plot = plot_alpha_sweep(sweep, f"Alpha sweep, {direction.train} -> {direction.evaluate} "
                                      f"({seeds} seed{'s' if seeds > 1 else ''})",
                                      self.out / f"alpha_sweep_{direction.name}.png")
        return sweep_md, sweep_plot

    def saved_run(self, direction: Direction, system: SystemEntry, langs: Sequence[str]) -> SystemRun:
        """A system's result as an earlier run of this preset saved it; refuses one evaluated differently."""
        label, model, seed, alpha = system.label, system.model, system.seed, system.alpha
        folder = self.system_folder(direction, system)
        record = read_run_record(folder)
        if record is None:
            raise ModelFolderError(f"--sweep-only reads the main systems' results of an earlier run of preset "
                                    f"{self.preset.name!r}, but {folder / 'run.json'} does not exist: run the preset "
                                    "without --sweep-only first")
        # The model is compared by folder name (train collection, alpha, seed): a results folder may have moved.
        saved = dict(record, model=Path(str(record.get("model"))).name)
        wanted = {"preset": self.preset.name, "model": Path(model).name, "candidate_text": self.preset.candidate_text,
                  "langs": list(langs), "max_queries": self.preset.max_queries}
        changed = differences(saved, wanted)
        if changed:
            raise ModelFolderError(f"{folder} was evaluated differently ({'; '.join(changed)}); run the preset again")
        return SystemRun(label, system.slug, model, seed, alpha, EvaluationResult.load(folder), {}, record)

    def sweep_direction(self, direction: Direction) -> dict[str, Any]:
        """--sweep-only: evaluates the sweep's alphas that are not main systems; the main alphas' results are read
        from an earlier full run of the same preset in the same folder (not evaluated again)."""
        preset = self.preset
        collection, langs, seen, options, eval_config = self.direction_inputs(direction)
        main_alphas = {alpha for _, alpha in preset.main_systems}
        trained = [s for s in self.systems_for(direction)
                   if s.alpha is not None and s.alpha in preset.sweep_alphas and not s.spec_options]
        system_runs = [self.saved_run(direction, system, langs) for system in trained if system.alpha in main_alphas]
        # The extra alphas are evaluated at the token limit the main trained systems were evaluated at.
        base_max_length = next((run.record.get("max_length") for run in system_runs), None)
        for system in tqdm([s for s in trained if s.alpha not in main_alphas], desc=f"sweep on {direction.name}",
                           unit="system", disable=not self.progress):
            system_runs.append(self.evaluate_system(direction, collection, langs, seen, options, eval_config,
                                                    system, base_max_length, None))
        sweep_md, sweep_plot = self.write_sweep(direction, system_runs)
        markdown = "\n".join([f"## Alpha sweep, {direction.train} -> {direction.evaluate} (zero-shot)", "",
                              f"Evaluation languages: {' '.join(langs)}; seeds {', '.join(map(str, preset.seeds))}; "
                              f"alphas {', '.join(f'{a:g}' for a in sorted(main_alphas & set(preset.sweep_alphas)))} "
                              "read from the main comparison's results.", "", sweep_md, "", f"Plot: {sweep_plot}", ""])
        return {"direction": direction.name, "markdown": markdown, "table_md": sweep_md, "plots": [sweep_plot]}

    def report_direction(self, direction: Direction, system_runs: list[SystemRun], test_sets: list[TestSet],
                         seen: set[str], langs: Sequence[str], out: Path) -> dict[str, Any]:
        """Table 1, the seen/unseen split, the significance tests, the plots and (on a sweep direction) the sweep of
        one direction: ``<out>/<direction>/report.md`` and its CSVs and PNGs."""
        preset = self.preset
        main_alphas = {alpha for _, alpha in preset.main_systems}
        main_runs = [r for r in system_runs if r.alpha is None or r.alpha in main_alphas]
        table = table1(main_runs)
        table.to_csv(out / "table.csv", index=False)
        table_md = markdown_with_spread(table, ["System"])
        split = seen_unseen_table(main_runs, seen)
        split.to_csv(out / "seen_unseen.csv", index=False)
        unseen = sorted(set(langs) - seen)
        if not unseen:  # the split would repeat the table above row for row
            split_md = "Every evaluation language was seen in training: the split is the table above."
        else:
            split_md = markdown_with_spread(split, ["System", "Languages"]) if not split.empty else "(none)"
        baseline = next((f"{label} ({alpha_label(alpha)})" for label, alpha in preset.main_systems
                         if alpha == BASELINE_ALPHA), None)
        significance = (significance_tests(main_runs, test_sets, baseline, preset.significance_depth, preset.seeds)
                        if baseline else pd.DataFrame())
        significance.to_csv(out / "significance.csv", index=False)
        significance_md = significance_markdown(significance, baseline or "alpha=1", preset.significance_depth)

        spread_md = self.write_seed_spread(main_runs, out)
        training_md = self.write_training_curves(main_runs, out)

        by_label: dict[str, list] = {}
        for run in main_runs:
            by_label.setdefault(run.label, []).append(run.result)
        means = {label: mean_result(results) for label, results in by_label.items()}
        plot_setting_bars(means, path=out / "settings_bars.png")
        plots = [out / "settings_bars.png"]
        if len(langs) > 1:
            plot_rank_distance_bars(means, path=out / "rank_distance_bars.png")
            plots.append(out / "rank_distance_bars.png")

        sweep_md, sweep_plot = None, None
        if direction in preset.sweep_directions:
            sweep_md, sweep_plot = self.write_sweep(direction, system_runs)
            plots.append(sweep_plot)

        pairs = next((len(t.settings) for t in test_sets if t.setting_type == "cross-lingual"), 0)
        lines = [
            f"## {direction.train} -> {direction.evaluate} (zero-shot)",
            "",
            f"Evaluation languages: {' '.join(langs)}; unseen in training: {' '.join(unseen) or 'none'}. "
            f"Trained systems: {len(preset.seeds)} seed(s) ({', '.join(map(str, preset.seeds))}), mean ± std.",
            "",
            table_md,
            "",
            "### Seen vs unseen languages",
            "",
            "Monolingual / cross-lingual: settings whose languages were all seen in training vs any unseen; "
            "multilingual: the pool's queries in seen vs unseen languages.",
            "",
            split_md,
            "",
            f"### Significance against {baseline} (pt.Experiment, paired t-test, Holm)",
            "",
            f"AP@{preset.significance_depth} and R@10 over top-{preset.significance_depth} runs; qids of a setting "
            f"type's settings concatenated; cross-lingual: {pairs} language pairs"
            + (f" ({preset.significance_pairs_per_language} per query language, balanced)"
               if preset.significance_pairs_per_language is not None else " (all)")
            + ". Δ: difference to the baseline; p: Holm-corrected p-value, `*` significant at 0.05.",
            "",
            significance_md,
        ]
        if spread_md is not None:
            lines += ["", "### Hybrid against each baseline, over seeds", "",
                      "Difference of the seed means; `exceeds spread`: |difference| larger than both systems' seed "
                      "standard deviations; Welch p: two-sided Welch t-test over the seeds (little power with few "
                      "seeds)." + (" One seed: there is no spread to compare the differences with; the significance "
                                   "tests above measure the spread over questions, not over seeds."
                                   if len(preset.seeds) < 2 else ""), "", spread_md]
        if training_md is not None:
            lines += ["", "### Training runs", "",
                      "Held-out batches are drawn with each run's alpha (monolingual only for alpha 1, cross-lingual "
                      "only for alpha 0) and seed: a held-out loss compares the epochs of one run, not runs.", "",
                      training_md, "", f"Loss curves: {out / 'loss_curves.png'}"]
        if sweep_md is not None:
            lines += ["", "### Alpha sweep", "", sweep_md, "", f"Plot: {sweep_plot}"]
        lines += ["", "Plots: " + ", ".join(str(p) for p in plots)
                  + f"; mAP heatmaps: {out / 'systems'}/*/[seed-*/]map_heatmap.png", ""]
        markdown = "\n".join(lines)
        (out / "report.md").write_text(markdown, encoding="utf-8")
        return {"direction": direction.name, "markdown": markdown, "table_md": table_md, "plots": plots,
                "table": table}

    @staticmethod
    def write_seed_spread(main_runs: Sequence[SystemRun], out: Path) -> str | None:
        """``seed_spread.csv``: every hybrid alpha (strictly between 0 and 1) of the main systems against the
        baselines (alpha 1 and 0) present, over seeds; its Markdown, or None without a hybrid and a baseline."""
        plain = [r for r in main_runs if r.alpha is not None and not r.spec_options]
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

    @staticmethod
    def write_training_curves(main_runs: Sequence[SystemRun], out: Path) -> str | None:
        """``training_runs.csv`` and ``loss_curves.png`` of the trained main systems; the table's Markdown, or None
        when no trained model folder has a loss curve (e.g. the models were moved after the evaluation)."""
        trained = [r for r in main_runs if r.alpha is not None and not r.spec_options
                   and (Path(r.model) / LOSS_CURVE_CSV).is_file()]
        if not trained:
            return None
        table = training_runs_table(trained)
        table.to_csv(out / "training_runs.csv", index=False)
        plot_loss_curves(trained, out / "loss_curves.png")
        return markdown_table(table)

    def run(self) -> dict[str, Any]:
        """Checks the inputs, trains, evaluates every direction, writes ``paper_comparison.md`` and ``run.json``."""
        started = time.perf_counter()
        self.check_inputs()
        self.out.mkdir(parents=True, exist_ok=True)
        run_record = {
            "preset": self.preset.to_dict(), "git_commit": self.commit, "base_model": self.base_model,
            "train_langs": list(self.train_langs) if self.train_langs else None, "started": utc_now(),
            "command": command_line(), "versions": versions(), **machine(),
        }
        self.train_all()
        if self.sweep_only:
            return self.finish_sweep_only(started, run_record)
        reports = [self.evaluate_direction(direction) for direction in self.preset.directions]
        training = self.preset.training
        budget = (f"{training.max_steps} steps" if training.max_steps is not None else f"{training.epochs:g} epochs")
        header = [
            f"# The paper's comparison: preset `{self.preset.name}`",
            "",
            f"{self.preset.description}.",
            "",
            f"As run: base model `{self.base_model}`; every trained system {budget} of batch {training.batch_size}, "
            f"lr {training.learning_rate:g}, {training.candidate_text}, max_seq_length {training.max_seq_length}, "
            f"bf16 {training.bf16}, frozen word embeddings {training.freeze_word_embeddings}, training languages "
            f"{' '.join(self.train_langs) if self.train_langs else 'all'}; seeds "
            f"{', '.join(map(str, self.preset.seeds))}; retrieval on {self.preset.candidate_text}"
            + (f"; {self.preset.max_queries} parallel ids per evaluation collection"
               + (" with their answer paragraphs only" if self.preset.answer_paragraphs_only else "")
               if self.preset.max_queries is not None else "")
            + f". Git commit {self.commit}.",
            "",
            "",
        ]
        markdown = "\n".join(header) + "\n".join(r["markdown"] for r in reports)
        (self.out / "paper_comparison.md").write_text(markdown, encoding="utf-8")
        wall = time.perf_counter() - started
        # Written at the end only: a failed rerun leaves the record of the last finished run in place.
        run_record.update(status="finished", finished=utc_now(), wall_time_s=round(wall, 1),
                          training=self.training_summary())
        write_json(self.out / "run.json", run_record)
        return {"reports": reports, "markdown": markdown, "wall_time_s": wall}

    def training_summary(self) -> dict[str, dict[str, Any]]:
        """Wall time, reuse and steps of every training run, for the top-level run.json."""
        return {name: {k: r.get(k) for k in ("wall_time_s", "reused", "global_steps")}
                for name, r in self.training_records.items()}

    def finish_sweep_only(self, started: float, run_record: dict[str, Any]) -> dict[str, Any]:
        """Writes alpha_sweep.md and alpha_sweep_run.json; the main comparison's files are left as they are."""
        reports = [self.sweep_direction(direction) for direction in self.preset.sweep_directions]
        markdown = "\n".join([f"# Alpha sweep: preset `{self.preset.name}`", "", f"{self.preset.description}. "
                              f"Git commit {self.commit}.", "", ""]) + "\n".join(r["markdown"] for r in reports)
        (self.out / "alpha_sweep.md").write_text(markdown, encoding="utf-8")
        wall = time.perf_counter() - started
        run_record.update(status="finished", mode="sweep-only", finished=utc_now(), wall_time_s=round(wall, 1),
                          training=self.training_summary())
        write_json(self.out / "alpha_sweep_run.json", run_record)
        return {"reports": reports, "markdown": markdown, "wall_time_s": wall,
                "report_path": self.out / "alpha_sweep.md"}


