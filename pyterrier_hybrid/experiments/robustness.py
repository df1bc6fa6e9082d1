"""Robustness of retrievers to perturbed queries on LAReQA: every system on clean queries and on each perturbation
kind and strength, the *queries* perturbed (candidates are never touched), as a library.

For every system of a :class:`RobustnessConfig` (``bm25``, ``default`` for the embedded multilingual-e5-small, or a
sentence-transformers folder such as the alpha-sweep models of ``pyterrier-hybrid train``) the LAReQA evaluation
(:func:`pyterrier_hybrid.evaluation.evaluate_lareqa`: monolingual, cross-lingual and multilingual-pool settings,
exact full-pool ranks) runs once on clean queries and once per perturbation kind and strength:

  typo          CharacterNoise: random delete/insert/substitute/swap typos      strength: edits per query
  keyboard      CharacterNoise(operations=keyboard): keyboard-neighbour typos   edits per query (de en es th tr vi)
  adversarial   AdversarialTypos: greedy white-box typos against the system's   edit budget; dense systems only, on
                own pyterrier-dr text_scorer() on the relevant candidate of      the adversarial subsample
                each query's monolingual setting
  diacritics    StripDiacritics                                                  fraction of changeable words
  romanize      Romanize (ar el hi ru th zh)
  traditional   TraditionalChinese (zh)
  codeswitch    CodeSwitch into ``codeswitch_to`` (words of the parallel question)

A perturbation applies only to the query languages it supports; the other languages' queries stay clean, and the
drop of a kind is averaged over the settings whose queries it perturbs (the same settings for the clean value).
relative_drop is (clean - perturbed) / clean for mAP and R@k and (perturbed - clean) / clean for the rank distance:
positive means worse in both. :func:`run_robustness` writes the tables, plots and run.json; ``pyterrier-hybrid
robustness`` drives it::

    from pyterrier_hybrid.experiments.robustness import RobustnessConfig, run_robustness
    run_robustness(RobustnessConfig(systems=("bm25",), langs=("de", "en"), kinds=("typo",)), "results/robustness")
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..datasets import lareqa_collection
from ..datasets.candidates import CANDIDATE_TEXT_OPTIONS
from ..datasets.settings import SETTING_TYPES
from ..errors import UserError
from ..evaluation import LAReQAEvaluationConfig, evaluate_lareqa
from ..evaluation.cache import RetrieverCache
from ..evaluation.plots import new_figure, save_figure
from ..evaluation.report import markdown_table
from ..evaluation.subsets import TopicSubset
from ..provenance import command_line, git_facts, machine, utc_now, versions, write_json
from ..retrieval.systems import SystemOptions, SystemSpec, build_factory
from ..robustness import AdversarialTypos
from ..robustness.evaluation import (
    CachedPerturbation,
    PerturbedFactory,
    QueryTable,
    adversarial_queries_by_budget,
    compare_per_language,
    compare_to_clean,
    dense_text_scorer,
    supported_languages,
)

__all__ = [
    "EDIT_KINDS",
    "KINDS",
    "PRESETS",
    "RobustnessConfig",
    "RobustnessError",
    "StudyOptions",
    "build_system",
    "check_system_models",
    "run_robustness",
    "run_study",
]

#: The perturbation kinds, in report order.
KINDS = ("typo", "keyboard", "diacritics", "romanize", "traditional", "codeswitch", "adversarial")
EDIT_KINDS = ("typo", "keyboard", "adversarial")  # strength = edits per query; the others: fraction of words
#: Subsample sizes of the named robustness presets.
PRESETS = {
    # max questions per language for the main runs / for the adversarial runs (None: all)
    "cpu": {"max_queries_per_lang": 50, "adversarial_max_queries_per_lang": 20},
    "full": {"max_queries_per_lang": None, "adversarial_max_queries_per_lang": 100},
}
EXAMPLES_PER_LANGUAGE = 25  # perturbed queries kept in examples.csv per system, kind, strength and language
HEADLINE = [("monolingual", "mAP"), ("cross-lingual", "mAP"), ("multilingual", "mAP"), ("multilingual", "RankDistance")]


class RobustnessError(UserError, ValueError):
    """A robustness or domain-shift run that cannot run as asked; names the problem."""


@dataclass(frozen=True)
class StudyOptions:
    """What every robustness-type run shares: the collection and languages, the subsample, the seed, and how the
    systems encode or index candidates.

    Attributes:
        collection: ``xquad-r`` or ``mlqa-r`` (``lareqa/`` and ``irds:`` prefixes are dropped).
        langs: evaluated languages (None: all of the collection's).
        max_queries_per_lang: at most this many questions per language, the same parallel questions in every
            language (None: all); see :data:`PRESETS`.
        seed: of the perturbations and of the subsample.
        candidate_text / precision / batch_size: how the systems encode or index candidates.
        preset: the name of the subsample sizes' preset, recorded in run.json.
    """

    collection: str = "xquad-r"
    langs: tuple[str, ...] | None = None
    max_queries_per_lang: int | None = PRESETS["cpu"]["max_queries_per_lang"]
    seed: int = 0
    candidate_text: str = "sentence+context"
    precision: str = "auto"
    batch_size: int = 64
    preset: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "collection", self.collection.removeprefix("irds:").removeprefix("lareqa/"))
        problems = self.problems()
        if problems:
            raise RobustnessError("; ".join(problems))

    def problems(self) -> list[str]:
        """What is wrong with the values (empty: nothing); subclasses add their own."""
        problems = []
        if self.max_queries_per_lang is not None and self.max_queries_per_lang < 1:
            problems.append(f"max_queries_per_lang must be >= 1 or None (all), got {self.max_queries_per_lang}")
        if self.candidate_text not in CANDIDATE_TEXT_OPTIONS:
            problems.append(f"candidate_text must be one of {CANDIDATE_TEXT_OPTIONS}, got {self.candidate_text!r}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        return problems

    def system_options(self) -> SystemOptions:
        """How :func:`build_system` builds the systems."""
        return SystemOptions(candidate_text=self.candidate_text, precision=self.precision,
                             batch_size=self.batch_size, verbose=False)


@dataclass(frozen=True)
class RobustnessConfig(StudyOptions):
    """What a perturbation study runs (besides :class:`StudyOptions`).

    Attributes:
        systems: ``NAME=SPEC`` system specs (``bm25``, ``default``, a model folder or hub id).
        adversarial_max_queries_per_lang: questions per language of the adversarial runs (None: all).
        kinds: perturbation kinds, among :data:`KINDS`.
        edits: strengths of the typo kinds (edits per query); fractions: of the word-level kinds.
        codeswitch_to: language(s) code-switched into, comma-separated; ``all`` = every evaluated language.
        adversarial_candidates: candidate edits scored per query and step of the adversarial search.
    """

    systems: tuple[str, ...] = ("bm25",)
    adversarial_max_queries_per_lang: int | None = PRESETS["cpu"]["adversarial_max_queries_per_lang"]
    kinds: tuple[str, ...] = KINDS
    edits: tuple[int, ...] = (1, 2, 3)
    fractions: tuple[float, ...] = (0.5, 1.0)
    codeswitch_to: str = "en"
    adversarial_candidates: int = 32

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.systems:
            problems.append("no systems")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            problems.append(f"unknown kinds {unknown}; choose among {list(KINDS)}")
        if any(e < 1 for e in self.edits):
            problems.append(f"edits must be >= 1, got {list(self.edits)}")
        if any(not 0 < f <= 1 for f in self.fractions):
            problems.append(f"fractions must be in (0, 1], got {list(self.fractions)}")
        if self.adversarial_max_queries_per_lang is not None and self.adversarial_max_queries_per_lang < 1:
            problems.append("adversarial_max_queries_per_lang must be >= 1 or None (all), got "
                            f"{self.adversarial_max_queries_per_lang}")
        if self.adversarial_candidates < 1:
            problems.append(f"adversarial_candidates must be >= 1, got {self.adversarial_candidates}")
        return problems

    def check(self) -> tuple[str, ...]:
        """Fail before any model is built (a user error naming the problem) on an unknown collection or language, a
        model that does not exist, two systems with one name, or a code-switching target the collection lacks;
        returns the evaluated languages."""
        collection = lareqa_collection(self.collection)
        langs = tuple(collection.check_languages(self.langs))
        specs = check_system_models(self.systems)
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise RobustnessError(f"two systems share a name ({', '.join(names)}): name them with NAME=MODEL")
        if "codeswitch" in self.kinds and self.codeswitch_to != "all":
            collection.check_languages([t.strip() for t in self.codeswitch_to.split(",") if t.strip()])
        return langs


def check_system_models(systems) -> list[SystemSpec]:
    """The parsed system specs; a spec that does not parse, or names a model folder that does not exist, is a user
    error (``default`` is accepted without building it)."""
    from ..models import resolve_model

    specs = []
    for text in systems:
        try:
            spec = SystemSpec.parse(text)
        except ValueError as error:
            raise RobustnessError(f"system {text!r}: {error}") from error
        if not spec.is_bm25 and spec.model != "default":
            resolve_model(spec.model)
        specs.append(spec)
    return specs


def training_alpha(model: str) -> float | None:
    """The hybrid-batch ratio alpha a model folder was trained with (its training_config.json), if any."""
    path = Path(model) / "training_config.json"
    if not path.is_file():
        return None
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["config"]["alpha"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None


@dataclass
class System:
    """A system of the study: its retriever factory (cached per candidate set) and, for a trained model, alpha."""

    name: str
    model: str
    is_bm25: bool
    factory: Any  # RetrieverCache around the system's factory
    inner: Any  # the system's own factory (DenseRetrieverFactory has .encoder)
    alpha: float | None = None
    wall_s: float = 0.0


def build_system(spec_text: str, config: StudyOptions) -> System:
    """The system of ``spec_text``, encoding / indexing as ``config`` says."""
    spec = SystemSpec.parse(spec_text)
    inner = build_factory(spec, config.system_options())
    return System(spec.name, spec.model, spec.is_bm25, RetrieverCache(inner), inner,
                  None if spec.is_bm25 else training_alpha(spec.model))


def strengths(kind: str, config: RobustnessConfig) -> list:
    return list(config.edits) if kind in EDIT_KINDS else list(config.fractions)


def strength_unit(kind: str) -> str:
    return "edits per query" if kind in EDIT_KINDS else "fraction of changeable words"


class Perturbations:
    """The query perturbations of the study, built once and shared by the systems (their cached queries too)."""

    def __init__(self, collection, langs: tuple[str, ...], config):
        self.collection = collection
        self.langs = langs
        self.config = config
        self._cached: dict[tuple[str, Any], Any] = {}
        self._parallel = None

    def code_switch_targets(self) -> tuple[str, ...]:
        value = self.config.codeswitch_to
        if value == "all":
            return self.langs
        return tuple(self.collection.check_languages([t.strip() for t in value.split(",") if t.strip()]))

    def build(self, kind: str, strength):
        from pyterrier_hybrid import robustness as rb

        seed = self.config.seed
        if kind == "typo":
            return rb.CharacterNoise(edits=strength, operations=rb.DEFAULT_OPERATIONS, seed=seed)
        if kind == "keyboard":
            return rb.CharacterNoise(edits=strength, operations=("keyboard",), seed=seed)
        if kind == "diacritics":
            return rb.StripDiacritics(strength, seed=seed)
        if kind == "romanize":
            return rb.Romanize(strength, seed=seed)
        if kind == "traditional":
            return rb.TraditionalChinese(strength, seed=seed)
        if kind == "codeswitch":
            if self._parallel is None:  # every language of the collection: a target need not be evaluated
                self._parallel = rb.parallel_questions(self.collection.topics())
            return rb.CodeSwitch(self._parallel, self.code_switch_targets(), strength, on_missing="keep", seed=seed)
        raise ValueError(f"no generic perturbation for kind {kind!r}")

    def affected_languages(self, kind: str, perturbation) -> tuple[str, ...]:
        langs = supported_languages(perturbation, self.langs)
        if kind == "codeswitch":
            targets = self.code_switch_targets()
            if len(targets) == 1:  # a query already in the only target language is not switched
                langs = tuple(lang for lang in langs if lang != targets[0])
        return langs

    def cached(self, kind: str, strength):
        """(CachedPerturbation, affected languages), shared by every system."""
        key = (kind, strength)
        if key not in self._cached:
            perturbation = self.build(kind, strength)
            langs = self.affected_languages(kind, perturbation)
            self._cached[key] = (CachedPerturbation(perturbation, langs=langs) if langs else None, langs)
        return self._cached[key]

@dataclass
class Study:
    rows: list = field(default_factory=list)  # robustness.csv
    language_rows: list = field(default_factory=list)  # robustness_per_language.csv
    examples: list = field(default_factory=list)  # examples.csv
    notes: list = field(default_factory=list)
    attack_stats: list = field(default_factory=list)

    def note(self, text: str) -> None:
        tqdm.write(f"note: {text}", file=sys.stderr)
        self.notes.append(text)


def evaluation_config():
    # cross_check off: it re-measures AP with ir_measures for every run (the runner's tests check the two agree)
    return LAReQAEvaluationConfig(show_progress=False, per_query=False, cross_check=False)


def changed_fractions(examples: pd.DataFrame, subset, langs) -> dict:
    """Fraction of the subset's questions whose text the perturbation changed, overall and per language."""
    frame = examples[examples["qid"].astype(str).isin(subset.qids) & examples["lang"].isin(set(langs))]
    per_lang = frame.groupby("lang")["changed"].mean().to_dict()
    return {"all": float(frame["changed"].mean()) if len(frame) else float("nan"), **per_lang}


def record(study: Study, system: System, kind: str, strength, clean, result, langs, subset, changed: dict,
           queries_per_lang) -> None:
    common = {"system": system.name, "kind": kind, "strength": strength,
              "strength_unit": "" if kind == "clean" else strength_unit(kind)}
    summary = compare_to_clean(clean, result, langs)
    for row in summary.itertuples(index=False):
        study.rows.append({**common, **row._asdict(), "query_langs": " ".join(langs),
                           "queries_per_lang": queries_per_lang or "all", "changed": changed.get("all", 0.0)})
    per_lang = compare_per_language(clean, result, langs)
    for row in per_lang.itertuples(index=False):
        study.language_rows.append({**common, **row._asdict(), "changed": changed.get(row.query_lang, 0.0)})


def run_study(config: RobustnessConfig) -> tuple[Study, list[System], dict]:
    """Every system on clean and perturbed queries: the rows of robustness.csv and its per-language rows, examples
    of perturbed queries, notes; the systems (with wall times) and facts about the subsets."""
    collection = lareqa_collection(config.collection)
    langs = collection.check_languages(config.langs)
    main_subset = TopicSubset.sample_per_language(collection, config.max_queries_per_lang, config.seed, langs)
    adversarial_subset = TopicSubset.sample_per_language(collection, config.adversarial_max_queries_per_lang,
                                                         config.seed, langs)
    perturbations = Perturbations(collection, langs, config)
    eval_config = evaluation_config()
    study = Study()
    systems = []
    generic_kinds = [k for k in config.kinds if k != "adversarial"]
    for spec_text in config.systems:
        system = build_system(spec_text, config)
        if any(s.name == system.name for s in systems):
            raise SystemExit(f"two systems are named {system.name!r}: name them with NAME=MODEL")
        systems.append(system)
        started = time.perf_counter()
        runs = [(k, s) for k in generic_kinds for s in strengths(k, config)]
        do_adversarial = "adversarial" in config.kinds and not system.is_bm25
        if "adversarial" in config.kinds and system.is_bm25:
            study.note(f"{system.name}: adversarial typos are white-box against a dense encoder's text_scorer(); "
                       "not run for BM25")
        total = 1 + len(runs) + (1 + len(config.edits) if do_adversarial else 0)
        bar = tqdm(total=total, desc=system.name, unit="run")

        def evaluate(factory, subset):
            return evaluate_lareqa(factory, subset, langs, system=system.name, config=eval_config)

        bar.set_postfix_str("clean")
        clean = evaluate(system.factory, main_subset)
        record(study, system, "clean", 0, clean, clean, langs, main_subset, {}, config.max_queries_per_lang)
        bar.update()
        for kind, strength in runs:
            bar.set_postfix_str(f"{kind} {strength}")
            cached, affected = perturbations.cached(kind, strength)
            if not affected:
                if system is systems[0]:
                    study.note(f"{kind}: no evaluated language is supported ({' '.join(langs)}); skipped")
                bar.update()
                continue
            result = evaluate(PerturbedFactory(system.factory, cached), main_subset)
            examples = cached.examples()
            record(study, system, kind, strength, clean, result, affected, main_subset,
                   changed_fractions(examples, main_subset, affected), config.max_queries_per_lang)
            if system is systems[0]:
                study.examples += [{"system": "", "kind": kind, "strength": strength, **e}
                                   for e in examples.to_dict("records")]
            bar.update()
        if do_adversarial:
            run_adversarial(study, system, collection, langs, adversarial_subset, evaluate, config, bar)
        bar.close()
        system.wall_s = time.perf_counter() - started
    facts = {"main_subset": f"{len(main_subset.qids)} questions ({main_subset.description})",
             "adversarial_subset": f"{len(adversarial_subset.qids)} questions ({adversarial_subset.description})",
             "langs": list(langs), "questions_main": len(main_subset.qids),
             "questions_adversarial": len(adversarial_subset.qids)}
    return study, systems, facts


def run_adversarial(study: Study, system: System, collection, langs, subset, evaluate, config: RobustnessConfig,
                    bar) -> None:
    """Greedy white-box typos against the system's own text_scorer(), one search at the largest budget giving every
    budget (see adversarial_queries_by_budget), evaluated on the adversarial subsample."""
    encoder = getattr(system.inner, "encoder", None)
    if encoder is None:
        study.note(f"{system.name}: no encoder to attack; adversarial typos not run")
        bar.update(1 + len(config.edits))
        return
    bar.set_postfix_str("adversarial clean")
    clean = evaluate(system.factory, subset)
    record(study, system, "clean", 0, clean, clean, langs, subset, {}, config.adversarial_max_queries_per_lang)
    bar.update()
    # the relevant candidate(s) of each query in its monolingual setting
    qrels = pd.concat([subset.qrels([lang], [lang]) for lang in langs], ignore_index=True)
    candidates = collection.candidates(langs)
    candidates = candidates[candidates["docno"].isin(set(qrels["docno"]))].reset_index(drop=True)
    attacker = AdversarialTypos(dense_text_scorer(encoder, candidates), qrels, candidates, budget=max(config.edits),
                                candidates_per_step=config.adversarial_candidates, seed=config.seed, verbose=False)
    affected = supported_languages(attacker, langs)
    bar.set_postfix_str("adversarial search")
    topics = subset.topics(affected)
    attack = attacker.attack(topics)
    for lang, part in attack.groupby("lang", sort=False):
        study.attack_stats.append({
            "system": system.name, "lang": lang, "queries": len(part), "mean_edits": float(part["n_edits"].mean()),
            "mean_score_0": float(part["score_0"].mean()), "mean_score": float(part["score"].mean()),
        })
    by_budget = adversarial_queries_by_budget(attack, config.edits)
    for budget in config.edits:
        bar.set_postfix_str(f"adversarial {budget}")
        table = QueryTable(by_budget[budget], missing="keep")
        factory = PerturbedFactory(system.factory, table, langs=affected)
        result = evaluate(factory, subset)
        examples = factory.perturbation.examples()
        record(study, system, "adversarial", budget, clean, result, affected, subset,
               changed_fractions(examples, subset, affected), config.adversarial_max_queries_per_lang)
        study.examples += [{"system": system.name, "kind": "adversarial", "strength": budget, **e}
                           for e in examples.to_dict("records")]
        bar.update()

def percent(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{100 * value:+.1f}%"


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
    pool = language_rows[(language_rows["setting_type"] == "multilingual") & (language_rows["measure"] == "mAP")
                         & (language_rows["kind"] != "clean")]
    if pool.empty:
        return pd.DataFrame()
    largest = pool.groupby(["system", "kind"])["strength"].transform("max")
    pool = pool[pool["strength"] == largest]
    table = pool.pivot_table(index=["system", "kind", "strength"], columns="query_lang", values="relative_drop",
                             sort=False)
    table = table.apply(lambda column: column.map(percent)).reset_index()
    table["strength"] = table["strength"].map(lambda s: f"{s:g}")
    return table


def write_markdown(path: Path, rows: pd.DataFrame, language_rows: pd.DataFrame, study: Study, run: dict) -> None:
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
    if study.attack_stats:
        lines += ["## Adversarial search (relevant-candidate score before / after, mean per language)", "",
                  markdown_table(pd.DataFrame(study.attack_stats)), ""]
    if study.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in study.notes] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


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
    pool = language_rows[(language_rows["setting_type"] == "multilingual") & (language_rows["measure"] == "mAP")
                         & (language_rows["kind"] != "clean")]
    if pool.empty:
        return
    largest = pool.groupby(["system", "kind"])["strength"].transform("max")
    pool = pool[pool["strength"] == largest]
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


def plot_drop_vs_alpha(rows: pd.DataFrame, systems: list[System], path: Path) -> bool:
    """Relative drop of the pool's and the monolingual mAP against the training ratio alpha, at each kind's largest
    strength (systems with a training_config.json). Returns whether a plot was written."""
    alpha = {s.name: s.alpha for s in systems if s.alpha is not None}
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

def run_robustness(config: RobustnessConfig, out: str | Path) -> dict[str, Any]:
    """Runs the perturbation study and writes its results to ``out``: robustness.csv, robustness_per_language.csv,
    examples.csv, robustness.md, drop_vs_strength.png, per_language_drop.png, drop_vs_alpha.png (two or more systems
    with a training alpha) and run.json. Returns ``{"markdown", "run", "rows", "language_rows"}``."""
    started = time.perf_counter()
    config.check()
    study, systems, facts = run_study(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame(study.rows)
    language_rows = pd.DataFrame(study.language_rows)
    rows.to_csv(out / "robustness.csv", index=False)
    language_rows.to_csv(out / "robustness_per_language.csv", index=False)
    examples = pd.DataFrame(study.examples)
    if not examples.empty:  # a sample to read, not every query of a full run
        examples = examples.groupby(["system", "kind", "strength", "lang"], sort=False, dropna=False).head(
            EXAMPLES_PER_LANGUAGE)
    examples.to_csv(out / "examples.csv", index=False)
    run = {
        "mode": "perturbation", **git_facts(), "preset": config.preset, "seed": config.seed,
        "collection": config.collection, "langs": facts["langs"], "kinds": list(config.kinds),
        "edits": list(config.edits), "fractions": list(config.fractions), "codeswitch_to": config.codeswitch_to,
        "max_queries_per_lang": config.max_queries_per_lang,
        "adversarial_max_queries_per_lang": config.adversarial_max_queries_per_lang,
        "adversarial_candidates_per_step": config.adversarial_candidates, "candidate_text": config.candidate_text,
        "precision": config.precision, "facts": facts,
        "systems": [{"name": s.name, "model": s.model, "alpha": s.alpha, "wall_time_s": round(s.wall_s, 1)}
                    for s in systems],
        "wall_time_s": round(time.perf_counter() - started, 1),
        "date": utc_now(), **machine(), "versions": versions(), "command": command_line(), "notes": study.notes,
    }
    plot_drop_vs_strength(rows, out / "drop_vs_strength.png")
    plot_per_language(language_rows, out / "per_language_drop.png")
    run["drop_vs_alpha_plot"] = plot_drop_vs_alpha(rows, systems, out / "drop_vs_alpha.png")
    write_markdown(out / "robustness.md", rows, language_rows, study, run)
    write_json(out / "run.json", run)
    return {"markdown": (out / "robustness.md").read_text(encoding="utf-8"), "run": run, "rows": rows,
            "language_rows": language_rows}
