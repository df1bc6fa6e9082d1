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

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ...datasets import lareqa_collection
from ...evaluation import LAReQAEvaluationConfig, evaluate_lareqa
from ...evaluation.cache import RetrieverCache
from ...evaluation.subsets import TopicSubset
from ...retrieval.system_specs import build_factory, check_systems, find_encoder
from ...robustness import AdversarialTypos
from ...robustness.evaluation import (
    CachedPerturbation,
    PerturbedFactory,
    QueryTable,
    adversarial_queries_by_budget,
    compare_per_language,
    compare_to_clean,
    dense_text_scorer,
    supported_languages,
)
from ..records import RunRecord, provenance
from ..system_records import SystemEntry, training_alpha
from .config import RobustnessConfig, RobustnessError, StudyOptions
from .plots import plot_drop_vs_alpha, plot_drop_vs_strength, plot_per_language
from .report import EDIT_KINDS, robustness_markdown, strength_unit

__all__ = ["build_system", "evaluation_config", "run_robustness", "run_study"]

EXAMPLES_PER_LANGUAGE = 25  # perturbed queries kept in examples.csv per system, kind, strength and language


def build_system(spec_text: str, config: StudyOptions) -> tuple[SystemEntry, RetrieverCache]:
    """The system of ``spec_text`` (labelled with its name; alpha: a trained model's) and its retriever factory,
    cached per candidate set, encoding / indexing as ``config`` says."""
    entry = SystemEntry.from_spec(check_systems([spec_text])[0])
    if not entry.is_bm25:
        entry = SystemEntry(entry.label, entry.slug, entry.model, None, training_alpha(entry.model),
                            entry.spec_options)
    return entry, RetrieverCache(build_factory(entry.spec(), config.system_options()))


def strengths(kind: str, config: RobustnessConfig) -> list:
    return list(config.edits) if kind in EDIT_KINDS else list(config.fractions)


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

@dataclass(frozen=True)
class Condition:
    """What one evaluation of a system measured: the perturbation kind (``clean``: none) and strength, the query
    languages it perturbs and the subsample's questions per language (None: all)."""

    system: str
    kind: str
    strength: float
    langs: tuple[str, ...]
    queries_per_lang: int | None


@dataclass
class Study:
    """What the study measured: the rows of its CSV files, examples of perturbed queries, notes and the adversarial
    search's statistics."""

    rows: list = field(default_factory=list)  # robustness.csv
    language_rows: list = field(default_factory=list)  # robustness_per_language.csv
    examples: list = field(default_factory=list)  # examples.csv
    notes: list = field(default_factory=list)
    attack_stats: list = field(default_factory=list)

    def note(self, text: str) -> None:
        tqdm.write(f"note: {text}", file=sys.stderr)
        self.notes.append(text)

    def record(self, condition: Condition, clean, result, changed: dict) -> None:
        """The rows of ``result`` against ``clean`` over the condition's languages (``changed``: the share of
        questions whose text the perturbation changed, overall as ``all`` and per language)."""
        common = {"system": condition.system, "kind": condition.kind, "strength": condition.strength,
                  "strength_unit": "" if condition.kind == "clean" else strength_unit(condition.kind)}
        langs = condition.langs
        for row in compare_to_clean(clean, result, langs).itertuples(index=False):
            self.rows.append({**common, **row._asdict(), "query_langs": " ".join(langs),
                              "queries_per_lang": condition.queries_per_lang or "all",
                              "changed": changed.get("all", 0.0)})
        for row in compare_per_language(clean, result, langs).itertuples(index=False):
            self.language_rows.append({**common, **row._asdict(), "changed": changed.get(row.query_lang, 0.0)})


def evaluation_config():
    # cross_check off: it re-measures AP with ir_measures for every run (the runner's tests check the two agree)
    return LAReQAEvaluationConfig(show_progress=False, per_query=False, cross_check=False)


def changed_fractions(examples: pd.DataFrame, subset, langs) -> dict:
    """Fraction of the subset's questions whose text the perturbation changed, overall and per language."""
    frame = examples[examples["qid"].astype(str).isin(subset.qids) & examples["lang"].isin(set(langs))]
    per_lang = frame.groupby("lang")["changed"].mean().to_dict()
    return {"all": float(frame["changed"].mean()) if len(frame) else float("nan"), **per_lang}


@dataclass
class StudyRun:
    """What the systems of one study share: the configuration, the collection and its subsamples, the perturbations
    (built once) and the study being filled."""

    config: RobustnessConfig
    collection: Any
    langs: tuple[str, ...]
    main_subset: Any
    adversarial_subset: Any
    perturbations: Perturbations
    study: Study = field(default_factory=Study)

    @classmethod
    def start(cls, config: RobustnessConfig) -> "StudyRun":
        collection = lareqa_collection(config.collection)
        langs = tuple(collection.check_languages(config.langs))
        return cls(config, collection, langs,
                   TopicSubset.sample_per_language(collection, config.max_queries_per_lang, config.seed, langs,
                                                   answer_paragraphs_only=config.answer_paragraphs_only),
                   TopicSubset.sample_per_language(collection, config.adversarial_max_queries_per_lang, config.seed,
                                                   langs, answer_paragraphs_only=config.answer_paragraphs_only),
                   Perturbations(collection, langs, config))

    def evaluate(self, system: SystemEntry, factory, subset):
        return evaluate_lareqa(factory, subset, self.langs, system=system.label, config=evaluation_config())

    def facts(self) -> dict[str, Any]:
        main, adversarial = self.main_subset, self.adversarial_subset
        return {"main_subset": f"{len(main.qids)} questions ({main.description})",
                "adversarial_subset": f"{len(adversarial.qids)} questions ({adversarial.description})",
                "langs": list(self.langs), "questions_main": len(main.qids),
                "questions_adversarial": len(adversarial.qids)}

    def run_system(self, system: SystemEntry, factory, first: bool) -> None:
        """Clean and every generic perturbation on the main subsample, then the adversarial typos; ``first``: the
        study's first system (it notes skipped kinds and keeps the shared examples)."""
        config, study = self.config, self.study
        runs = [(k, s) for k in config.kinds if k != "adversarial" for s in strengths(k, config)]
        do_adversarial = "adversarial" in config.kinds and not system.is_bm25
        if "adversarial" in config.kinds and system.is_bm25:
            study.note(f"{system.label}: adversarial typos are white-box against a dense encoder's text_scorer(); "
                       "not run for BM25")
        bar = tqdm(total=1 + len(runs) + (1 + len(config.edits) if do_adversarial else 0), desc=system.label,
                   unit="run")
        bar.set_postfix_str("clean")
        clean = self.evaluate(system, factory, self.main_subset)
        study.record(Condition(system.label, "clean", 0, self.langs, config.max_queries_per_lang), clean, clean, {})
        bar.update()
        for kind, strength in runs:
            bar.set_postfix_str(f"{kind} {strength}")
            self.run_perturbation(system, factory, kind, strength, clean, first)
            bar.update()
        if do_adversarial:
            self.run_adversarial(system, factory, bar)
        bar.close()

    def run_perturbation(self, system: SystemEntry, factory, kind: str, strength, clean, first: bool) -> None:
        cached, affected = self.perturbations.cached(kind, strength)
        if not affected:
            if first:
                self.study.note(f"{kind}: no evaluated language is supported ({' '.join(self.langs)}); skipped")
            return
        result = self.evaluate(system, PerturbedFactory(factory, cached), self.main_subset)
        examples = cached.examples()
        self.study.record(Condition(system.label, kind, strength, affected, self.config.max_queries_per_lang),
                          clean, result, changed_fractions(examples, self.main_subset, affected))
        if first:
            self.study.examples += [{"system": "", "kind": kind, "strength": strength, **e}
                                    for e in examples.to_dict("records")]

    def run_adversarial(self, system: SystemEntry, factory, bar) -> None:
        """Greedy white-box typos against the system's own text_scorer(), one search at the largest budget giving
        every budget (see adversarial_queries_by_budget), evaluated on the adversarial subsample."""
        config, study, subset, langs = self.config, self.study, self.adversarial_subset, self.langs
        # The system's own encoder only: a wrapped system (e.g. debiased) scores otherwise than its base encoder.
        encoder = find_encoder(factory.factory, through_wrappers=False)
        if encoder is None:
            study.note(f"{system.label}: no encoder to attack; adversarial typos not run")
            bar.update(1 + len(config.edits))
            return
        bar.set_postfix_str("adversarial clean")
        clean = self.evaluate(system, factory, subset)
        queries_per_lang = config.adversarial_max_queries_per_lang
        study.record(Condition(system.label, "clean", 0, langs, queries_per_lang), clean, clean, {})
        bar.update()
        attacker, affected, attack = self.attack(system, encoder, bar)
        by_budget = adversarial_queries_by_budget(attack, config.edits)
        for budget in config.edits:
            bar.set_postfix_str(f"adversarial {budget}")
            perturbed = PerturbedFactory(factory, QueryTable(by_budget[budget], missing="keep"), langs=affected)
            result = self.evaluate(system, perturbed, subset)
            examples = perturbed.perturbation.examples()
            study.record(Condition(system.label, "adversarial", budget, affected, queries_per_lang), clean, result,
                         changed_fractions(examples, subset, affected))
            study.examples += [{"system": system.label, "kind": "adversarial", "strength": budget, **e}
                               for e in examples.to_dict("records")]
            bar.update()

    def attack(self, system: SystemEntry, encoder, bar):
        """The adversarial search on the relevant candidate(s) of each query in its monolingual setting: (attacker,
        affected languages, the attack's frame); its statistics go to the study."""
        config, subset, langs = self.config, self.adversarial_subset, self.langs
        qrels = pd.concat([subset.qrels([lang], [lang]) for lang in langs], ignore_index=True)
        candidates = self.collection.candidates(langs)
        candidates = candidates[candidates["docno"].isin(set(qrels["docno"]))].reset_index(drop=True)
        attacker = AdversarialTypos(dense_text_scorer(encoder, candidates), qrels, candidates,
                                    budget=max(config.edits), candidates_per_step=config.adversarial_candidates,
                                    seed=config.seed, verbose=False)
        affected = supported_languages(attacker, langs)
        bar.set_postfix_str("adversarial search")
        attack = attacker.attack(subset.topics(affected))
        for lang, part in attack.groupby("lang", sort=False):
            self.study.attack_stats.append({
                "system": system.label, "lang": lang, "queries": len(part),
                "mean_edits": float(part["n_edits"].mean()), "mean_score_0": float(part["score_0"].mean()),
                "mean_score": float(part["score"].mean()),
            })
        return attacker, affected, attack


def run_study(config: RobustnessConfig) -> tuple[Study, list[tuple[SystemEntry, float]], dict]:
    """Every system on clean and perturbed queries: the rows of robustness.csv and its per-language rows, examples
    of perturbed queries, notes; the systems with their wall times; facts about the subsets."""
    run = StudyRun.start(config)
    systems: list[tuple[SystemEntry, float]] = []
    for spec_text in config.systems:
        system, factory = build_system(spec_text, config)
        if any(s.label == system.label for s, _ in systems):
            raise RobustnessError(f"two systems are named {system.label!r}: name them with NAME=MODEL")
        started = time.perf_counter()
        run.run_system(system, factory, first=not systems)
        systems.append((system, time.perf_counter() - started))
    return run.study, systems, run.facts()


def study_record(config: RobustnessConfig, systems: list[tuple[SystemEntry, float]], facts: dict,
                 notes: list[str], wall: float) -> RunRecord:
    """The run.json of a perturbation study: what was run, then how it went."""
    identity = {
        "mode": "perturbation", "preset": config.preset, "seed": config.seed, "collection": config.collection,
        "langs": facts["langs"], "kinds": list(config.kinds), "edits": list(config.edits),
        "fractions": list(config.fractions), "codeswitch_to": config.codeswitch_to,
        "max_queries_per_lang": config.max_queries_per_lang,
        "adversarial_max_queries_per_lang": config.adversarial_max_queries_per_lang,
        "answer_paragraphs_only": config.answer_paragraphs_only,
        "adversarial_candidates_per_step": config.adversarial_candidates, "candidate_text": config.candidate_text,
        "precision": config.precision,
        "systems": [{"name": s.label, "model": s.model, "alpha": s.alpha} for s, _ in systems],
    }
    for entry, (_, seconds) in zip(identity["systems"], systems):
        entry["wall_time_s"] = round(seconds, 1)
    return RunRecord(identity, {"facts": facts, "wall_time_s": round(wall, 1), **provenance(), "notes": notes})


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
    record = study_record(config, systems, facts, study.notes, time.perf_counter() - started)
    plot_drop_vs_strength(rows, out / "drop_vs_strength.png")
    plot_per_language(language_rows, out / "per_language_drop.png")
    record.facts["drop_vs_alpha_plot"] = plot_drop_vs_alpha(rows, {s.label: s.alpha for s, _ in systems},
                                                            out / "drop_vs_alpha.png")
    run = record.to_dict()
    markdown = robustness_markdown(run, rows, language_rows, study.attack_stats, study.notes)
    (out / "robustness.md").write_text(markdown, encoding="utf-8")
    record.write(out)
    return {"markdown": markdown, "run": run, "rows": rows, "language_rows": language_rows}
