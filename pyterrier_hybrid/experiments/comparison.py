"""The comparison of systems across LAReQA collections (arXiv 2408.10536, Table 1), zero-shot, as a library.

For every *direction* of a :class:`~pyterrier_hybrid.experiments.presets.ComparisonPreset` (train on one LAReQA
collection, evaluate on the other, which is never seen in training), :class:`Comparison` evaluates

- BM25; the base encoder without training; the preset's extra systems (any
  :class:`~pyterrier_hybrid.retrieval.system_specs.SystemSpec` string); and the base encoder trained with hybrid batches
  at each alpha of ``main_systems`` (1: X-X-mono, 0: X-Y, 0.5: hybrid), all with the same budget, data, seeds and
  hyperparameters; the preset's ``recipe_systems``, each trained with its own configuration on the same data and
  seeds (e.g. the distilled system of ``demo``); with ``debias``, a debiased variant of the base and of every
  trained system;

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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..datasets import lareqa_collection
from ..evaluation import EvaluationResult, LAReQAEvaluationConfig, evaluate_lareqa
from ..evaluation.cache import RetrieverCache
from ..evaluation.runs import load_top_runs, save_top_runs
from ..evaluation.subsets import TopicSubset
from ..models import resolve_model
from ..provenance import git_commit, utc_now, write_json
from ..retrieval.system_specs import SystemOptions, SystemSpec, check_model, find_encoder, parse_system
from .comparison_report import (
    comparison_markdown,
    direction_markdown,
    direction_tables,
    sweep_direction_markdown,
    sweep_only_markdown,
    write_sweep,
)
from .presets import ComparisonPreset, Direction, PresetError
from .records import RunRecord, provenance, read_record
from .significance import TestSet, build_test_sets, top_runs
from .system_records import SharedEncodings, SystemEntry, SystemRun, system_factory
from .training_runs import ModelFolderError, ModelStore, alpha_label, model_name, plan_training, recipe_model_name

__all__ = [
    "Comparison",
    "DirectionSetup",
    "SystemEntry",
    "SystemRun",
    "check_model",
    "find_encoder",
    "parse_system",
    "system_factory",
]

#: A system's top runs for the significance test, beside its saved result (see :meth:`Comparison.evaluate_system`).
TOP_RUNS_FILE = "top_runs.npz"


@dataclass(frozen=True)
class DirectionSetup:
    """What every system of one direction is evaluated with: the evaluation collection (or its subset) and
    languages, the languages seen in training, how systems encode and how the evaluation measures."""

    direction: Direction
    collection: Any
    langs: tuple[str, ...]
    seen: frozenset[str]
    options: SystemOptions
    eval_config: LAReQAEvaluationConfig


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
            self.training_runs = [r for r in self.training_runs if r.recipe is None
                                  and r.config.train in sweep_train and r.config.alpha in preset.sweep_alphas]
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
            check_model(parse_system(text).model)
        if self.preset.debias is not None:
            SystemSpec("base", "default").with_options((("debias", self.preset.debias),))
        if self.store.skip_training:
            missing = self.store.missing(self.training_runs)
            if missing:
                raise ModelFolderError("--skip-training, but these models are not finished: "
                                       + ", ".join(str(r.path) for r in missing))

    def train_all(self) -> None:
        """Trains every model the run needs (or reuses the finished ones); records each in ``training_records``."""
        for run in tqdm(self.training_runs, desc="training runs", unit="model", disable=not self.progress):
            kind = f"recipe system {run.recipe}" if run.recipe is not None else f"alpha {run.config.alpha:g}"
            tqdm.write(f"model {run.name}: {kind}, seed {run.config.seed}, {run.config.train}")
            self.training_records[run.name] = self.store.ensure(run)

    def untrained_systems(self) -> list[SystemEntry]:
        """BM25, the base, the preset's extra systems and, with ``preset.debias``, the debiased base."""
        debias = (("debias", self.preset.debias),) if self.preset.debias is not None else ()
        systems = [SystemEntry("BM25", "bm25", "bm25"), SystemEntry("base (untrained)", "base", self.base_model)]
        if debias:
            systems.append(SystemEntry("base (untrained) + debias", "base-debias", self.base_model, None, None, debias))
        base_resolved = resolve_model(self.base_model)
        for text in self.preset.encoders:
            entry = SystemEntry.from_spec(parse_system(text))
            if not entry.spec_options and (entry.is_bm25 or resolve_model(entry.model) == base_resolved):
                tqdm.write(f"encoder {entry.label} ({entry.model}) is the base model or BM25: already in the table")
                continue
            systems.append(entry)
        return systems

    def systems_for(self, direction: Direction) -> list[SystemEntry]:
        """Every system evaluated on ``direction``: BM25, the base, the preset's extra systems, the trained alphas per
        seed, the recipe systems per seed, and with ``preset.debias`` a debiased variant of the base and of every
        trained system."""
        debias = (("debias", self.preset.debias),) if self.preset.debias is not None else ()
        systems = self.untrained_systems()
        alphas = {alpha: label for label, alpha in self.preset.main_systems}
        if direction in self.preset.sweep_directions:
            for alpha in self.preset.sweep_alphas:
                alphas.setdefault(alpha, alpha_label(alpha))
        for alpha, label in alphas.items():
            shown = label if label.startswith("alpha=") else f"{label} ({alpha_label(alpha)})"
            for seed in self.preset.seeds:
                model = str(self.out / "models" / model_name(direction.train, alpha, seed))
                systems.append(SystemEntry(shown, f"alpha-{alpha:g}", model, seed, alpha))
                if debias and alpha in self.main_alphas:
                    systems.append(SystemEntry(f"{shown} + debias", f"alpha-{alpha:g}-debias", model, seed, alpha,
                                               debias))
        for recipe in self.preset.recipe_systems:
            alpha = recipe.training.alpha
            for seed in self.preset.seeds:
                model = str(self.out / "models" / recipe_model_name(direction.train, recipe.label, seed))
                systems.append(SystemEntry(recipe.label, recipe.label, model, seed, alpha, own_recipe=True))
                if debias:
                    systems.append(SystemEntry(f"{recipe.label} + debias", f"{recipe.label}-debias", model, seed,
                                               alpha, debias, own_recipe=True))
        return systems

    @property
    def main_alphas(self) -> set[float]:
        return {alpha for _, alpha in self.preset.main_systems}

    def direction_setup(self, direction: Direction) -> DirectionSetup:
        """What every system of ``direction`` is evaluated with."""
        preset = self.preset
        collection = lareqa_collection(direction.evaluate)
        langs = collection.check_languages(preset.langs_for(direction.evaluate))
        if preset.max_queries is not None:
            collection = TopicSubset.sample_parallel_ids(collection, langs, preset.max_queries,
                                                         answer_paragraphs_only=preset.answer_paragraphs_only)
        train_collection = lareqa_collection(direction.train)
        seen = set(self.train_langs or train_collection.languages) & set(train_collection.languages)
        return DirectionSetup(
            direction, collection, tuple(langs), frozenset(seen),
            SystemOptions(candidate_text=preset.candidate_text, precision=preset.precision,
                          batch_size=preset.encode_batch_size, verbose=self.progress),
            LAReQAEvaluationConfig(per_query=self.per_query, show_progress=self.progress))

    def evaluate_direction(self, direction: Direction) -> dict[str, Any]:
        """Evaluates every system on ``direction`` and writes its report (``<out>/<direction>/``)."""
        setup = self.direction_setup(direction)
        test_sets = build_test_sets(setup.collection, setup.langs, self.preset.significance_pairs_per_language)
        system_runs = []
        base_max_length = None  # set by the "base" system, evaluated before the trained ones
        shared = SharedEncodings()
        for system in tqdm(self.systems_for(direction), desc=f"systems on {direction.name}", unit="system",
                           disable=not self.progress):
            # Only the systems of the table take part in the significance test (the sweep's extra alphas do not).
            in_test = not system.by_alpha or system.alpha in self.main_alphas
            run = self.evaluate_system(setup, system, base_max_length, test_sets if in_test else None,
                                       shared=shared)
            if system.slug == "base":
                base_max_length = run.record["encoder_max_length"]
            system_runs.append(run)
        return self.report_direction(setup, system_runs, test_sets)

    def report_direction(self, setup: DirectionSetup, system_runs: list[SystemRun],
                         test_sets: list[TestSet]) -> dict[str, Any]:
        """Table 1, the seen/unseen split, the significance tests, the plots and (on a sweep direction) the sweep of
        one direction: ``<out>/<direction>/report.md`` and its CSVs and PNGs."""
        direction, out = setup.direction, self.out / setup.direction.name
        tables = direction_tables(self.preset, system_runs, test_sets, set(setup.seen), setup.langs, out)
        if direction in self.preset.sweep_directions:
            tables.sweep_md, tables.sweep_plot = write_sweep(self.preset, direction, system_runs, self.out)
            tables.plots.append(tables.sweep_plot)
        markdown = direction_markdown(self.preset, direction, setup.langs, tables, out)
        (out / "report.md").write_text(markdown, encoding="utf-8")
        return {"direction": direction.name, "markdown": markdown, "table_md": tables.table_md,
                "plots": tables.plots, "table": tables.table}

    # -- one system ------------------------------------------------------------------------------------------------

    def system_folder(self, direction: Direction, system: SystemEntry) -> Path:
        """Where a system's result and run.json live: ``<out>/<direction>/systems/<slug>/[seed-N/]``."""
        seed_part = f"seed-{system.seed}" if system.seed is not None else ""
        return self.out / direction.name / "systems" / system.slug / seed_part

    def evaluation_record(self, setup: DirectionSetup, system: SystemEntry, max_length: int | None) -> RunRecord:
        """The record of an evaluation of ``system``, before it runs. Its identity is what makes two evaluations the
        same: the preset, the model (a trained one by folder name, since a comparison's folder may move with its
        models, and the time its training finished, so that a retrained model is evaluated again), the languages,
        the token limit and the preset's evaluation settings."""
        preset, direction = self.preset, setup.direction
        identity = {
            "preset": preset.name,
            "model_name": Path(system.model).name if system.alpha is not None else system.model,
            "langs": list(setup.langs), "candidate_text": preset.candidate_text, "precision": preset.precision,
            "max_queries": preset.max_queries, "answer_paragraphs_only": preset.answer_paragraphs_only,
            "max_length": max_length, "significance_depth": preset.significance_depth,
            "significance_pairs_per_language": preset.significance_pairs_per_language,
        }
        if system.spec_options:
            identity["system_options"] = dict(system.spec_options)
        facts = {"git_commit": self.commit, "system": system.label, "model": system.model, "seed": system.seed,
                 "alpha": system.alpha, "direction": direction.name, "train_collection": direction.train,
                 "eval_collection": direction.evaluate, "seen_langs": sorted(setup.seen)}
        if system.alpha is not None:
            training = self.training_records.get(Path(system.model).name, {})
            identity["training_finished"] = training.get("finished")
            facts.update(training_wall_time_s=training.get("wall_time_s"), training_reused=training.get("reused"),
                         base_model=self.base_model)
        return RunRecord(identity, facts)

    def evaluate_system(self, setup: DirectionSetup, system: SystemEntry, base_max_length: int | None,
                        test_sets: list[TestSet] | None, *, shared: SharedEncodings | None = None) -> SystemRun:
        """Evaluates one system in every setting (and, given ``test_sets``, keeps its top runs for the significance
        test); saves its result and run.json under ``<out>/<direction>/systems/<slug>/[seed-N/]``. A result an
        earlier run saved with the same record is read instead. ``shared``: the encodings of the model evaluated
        just before, which a debiased variant of it reuses instead of encoding the same texts again."""
        # Trained models keep the training token limit (e.g. 96 or 128 on CPU) as their own; they are evaluated
        # at the base model's limit, so that the base and its trained versions read the same texts.
        max_length = base_max_length if system.alpha is not None else None
        folder = self.system_folder(setup.direction, system)
        record = self.evaluation_record(setup, system, max_length)
        reused = self.finished_evaluation(system, folder, record, test_sets)
        shown = system.shown(setup.direction.name)
        if reused is not None:
            tqdm.write(f"{shown}: evaluated earlier with the same model and settings, read from {folder}")
            return reused
        tqdm.write(shown)
        started = time.perf_counter()
        dense_factories = (shared or SharedEncodings()).for_model(system.model, max_length)
        factory = RetrieverCache(system_factory(system.spec(), setup.options, max_length,
                                                dense_factories=dense_factories))
        encoder_max_length = getattr(find_encoder(factory), "max_length", None)
        result = evaluate_lareqa(factory, setup.collection, setup.langs, system=system.label,
                                 config=setup.eval_config)
        runs = (top_runs(factory, setup.collection, test_sets, self.preset.significance_depth)
                if test_sets is not None else {})
        del factory  # frees the indexes before the next system (``shared`` keeps the last model's encodings)
        result.save(folder)
        if runs:
            save_top_runs(runs, folder / TOP_RUNS_FILE)
        record.facts.update(encoder_max_length=encoder_max_length, wall_time_s=round(time.perf_counter() - started, 1),
                            finished=utc_now(), top_runs=sorted(runs))
        record.write(folder)  # written last: a run.json means the result and top runs beside it are complete
        return SystemRun(system, result, runs, record.to_dict())

    def finished_evaluation(self, system: SystemEntry, folder: Path, record: RunRecord,
                            test_sets: list[TestSet] | None) -> SystemRun | None:
        """The saved evaluation of ``system`` in ``folder`` when an earlier run saved it with the same identity (and,
        when the significance test needs them, its top runs); else None."""
        saved = read_record(folder)
        if not record.matches(saved):
            return None
        runs = {}
        if test_sets is not None:
            if set(saved.get("top_runs", ())) != {t.setting_type for t in test_sets}:
                return None
            if not (folder / TOP_RUNS_FILE).is_file():
                # Top runs are not committed with the results (.gitignore), so a clone of them lacks the file:
                # the system is evaluated again rather than the comparison stopped.
                tqdm.write(f"{folder / TOP_RUNS_FILE} is missing (the significance test needs it): evaluating again")
                return None
            runs = load_top_runs(folder / TOP_RUNS_FILE)
        return SystemRun(system, EvaluationResult.load(folder), runs, {**saved, "evaluation_reused": True})

    def saved_run(self, setup: DirectionSetup, system: SystemEntry, max_length: int | None) -> SystemRun:
        """A system's result as an earlier run of this preset saved it (the --sweep-only run reads the main systems'
        results); a missing one, or one whose record differs, is a :class:`ModelFolderError`."""
        folder = self.system_folder(setup.direction, system)
        saved = read_record(folder)
        if saved is None:
            raise ModelFolderError(f"--sweep-only reads the main systems' results of an earlier run of preset "
                                   f"{self.preset.name!r}, but {folder / 'run.json'} does not exist: run the preset "
                                   "without --sweep-only first")
        changed = self.evaluation_record(setup, system, max_length).differences(saved)
        if changed:
            raise ModelFolderError(f"{folder} was evaluated differently ({'; '.join(changed)}); run the preset again")
        return SystemRun(system, EvaluationResult.load(folder), {}, {**saved, "evaluation_reused": True})

    def sweep_direction(self, direction: Direction) -> dict[str, Any]:
        """--sweep-only: evaluates the sweep's alphas that are not main systems; the main alphas' results are read
        from an earlier full run of the same preset in the same folder (not evaluated again)."""
        setup = self.direction_setup(direction)
        systems = self.systems_for(direction)
        # The extra alphas are evaluated at the token limit the main run evaluated its trained systems at: the base's.
        base = self.saved_run(setup, next(s for s in systems if s.slug == "base"), None)
        max_length = base.record.get("encoder_max_length")
        trained = [s for s in systems if s.by_alpha and s.alpha in self.preset.sweep_alphas and not s.spec_options]
        system_runs = [self.saved_run(setup, s, max_length) for s in trained if s.alpha in self.main_alphas]
        for system in tqdm([s for s in trained if s.alpha not in self.main_alphas], desc=f"sweep on {direction.name}",
                           unit="system", disable=not self.progress):
            system_runs.append(self.evaluate_system(setup, system, max_length, None))
        sweep_md, sweep_plot = write_sweep(self.preset, direction, system_runs, self.out)
        markdown = sweep_direction_markdown(self.preset, direction, setup.langs, sweep_md, sweep_plot)
        return {"direction": direction.name, "markdown": markdown, "table_md": sweep_md, "plots": [sweep_plot]}

    # -- the whole run ---------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Checks the inputs, trains, evaluates every direction, writes ``paper_comparison.md`` and ``run.json``."""
        started = time.perf_counter()
        self.check_inputs()
        self.out.mkdir(parents=True, exist_ok=True)
        run_record = {
            "preset": self.preset.to_dict(), "git_commit": self.commit, "base_model": self.base_model,
            "train_langs": list(self.train_langs) if self.train_langs else None, "started": utc_now(),
            **provenance(),
        }
        self.train_all()
        if self.sweep_only:
            return self.finish_sweep_only(started, run_record)
        reports = [self.evaluate_direction(direction) for direction in self.preset.directions]
        markdown = comparison_markdown(self.preset, reports, base_model=self.base_model,
                                       train_langs=self.train_langs, commit=self.commit)
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
        markdown = sweep_only_markdown(self.preset, reports, commit=self.commit)
        (self.out / "alpha_sweep.md").write_text(markdown, encoding="utf-8")
        wall = time.perf_counter() - started
        run_record.update(status="finished", mode="sweep-only", finished=utc_now(), wall_time_s=round(wall, 1),
                          training=self.training_summary())
        write_json(self.out / "alpha_sweep_run.json", run_record)
        return {"reports": reports, "markdown": markdown, "wall_time_s": wall,
                "report_path": self.out / "alpha_sweep.md"}
