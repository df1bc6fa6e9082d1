"""Robustness of retrievers to perturbed queries on LAReQA (and, with --domain-shift, the cost of a collection shift).

Perturbation mode (default). For every system (``--systems NAME=MODEL``: ``bm25``, ``default`` for the embedded
multilingual-e5-small, or a sentence-transformers folder such as the alpha-sweep models of ``pyterrier-hybrid
train``) the LAReQA evaluation (:func:`pyterrier_hybrid.evaluation.evaluate_lareqa`: monolingual, cross-lingual and
multilingual-pool settings, exact full-pool ranks) runs once on clean queries and once per perturbation kind and
strength, with the *queries* perturbed (candidates are never touched):

  typo          CharacterNoise: random delete/insert/substitute/swap typos      strength: edits per query (--edits)
  keyboard      CharacterNoise(operations=keyboard): keyboard-neighbour typos   edits per query (de en es th tr vi)
  adversarial   AdversarialTypos: greedy white-box typos against the system's   edit budget (--edits); dense
                own pyterrier-dr text_scorer() on the relevant candidate of      systems only, on the adversarial
                each query's monolingual setting                                 subsample (--adversarial-max-...)
  diacritics    StripDiacritics                                                  fraction of changeable words
  romanize      Romanize (ar el hi ru th zh)                                     (--fractions)
  traditional   TraditionalChinese (zh)
  codeswitch    CodeSwitch into --codeswitch-to (words of the parallel question)

A perturbation applies only to the query languages it supports; the other languages' queries stay clean, and the
drop of a kind is averaged over the settings whose queries it perturbs (the same settings for the clean value).

Measures: mAP per setting type (monolingual: mean over languages, cross-lingual: over ordered pairs, multilingual:
over query languages), R@1 and R@10, and the pool's rank distance (lower is better). relative_drop is
(clean - perturbed) / clean for mAP and R@k and (perturbed - clean) / clean for the rank distance: positive means
worse in both.

Outputs in --out: robustness.csv (tidy: system, kind, strength, setting_type, measure, value, clean_value,
relative_drop, ...; clean rows have kind "clean"), robustness_per_language.csv, robustness.md, examples.csv
(perturbed queries), drop_vs_strength.png, per_language_drop.png, drop_vs_alpha.png (with two or more systems
whose training_config.json gives an alpha), run.json (commit, preset, seed, wall times, settings).

Domain-shift mode (--domain-shift): pairs of models named alike, ``--in-collection NAME=MODEL`` trained on the
evaluated collection with a held-out split by article and ``--cross NAME=MODEL`` trained on the other collection,
are evaluated on the same questions -- those of the in-collection model's held-out articles (reproduced from its
training_config.json, or read from --held-out-articles) -- against the full candidate pools. Outputs
domain_shift.csv / .md / .png and run.json: the cost of the shift is in-collection minus cross-collection.

Run (CPU smoke size; see benchmarks/README.md, section (c)):

    python benchmarks/robustness.py --systems bm25 tiny=/tmp/tiny --collection lareqa/xquad-r --langs de en zh \\
        --max-queries-per-lang 50 --kinds typo,adversarial --edits 1 2 3 --out benchmarks/results/robustness-smoke
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SHARED_LAREQA = REPO_ROOT.parent / "shared" / "datasets" / "lareqa"

KINDS = ("typo", "keyboard", "diacritics", "romanize", "traditional", "codeswitch", "adversarial")
EDIT_KINDS = ("typo", "keyboard", "adversarial")  # strength = edits per query; the others: fraction of words
PRESETS = {
    # max questions per language for the main runs / for the adversarial runs (None: all)
    "cpu": {"max_queries_per_lang": 50, "adversarial_max_queries_per_lang": 20},
    "full": {"max_queries_per_lang": None, "adversarial_max_queries_per_lang": 100},
}
SETTING_TYPES = ("monolingual", "cross-lingual", "multilingual")
EXAMPLES_PER_LANGUAGE = 25  # perturbed queries kept in examples.csv per system, kind, strength and language
HEADLINE = [("monolingual", "mAP"), ("cross-lingual", "mAP"), ("multilingual", "mAP"), ("multilingual", "RankDistance")]


# ---------------------------------------------------------------------------------------------------------------
# Arguments


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--systems", nargs="+", default=["bm25"], metavar="NAME=MODEL",
                        help="bm25, default, or a sentence-transformers folder / hub id, optionally named NAME=MODEL")
    parser.add_argument("--collection", default="lareqa/xquad-r", help="lareqa/xquad-r or lareqa/mlqa-r")
    parser.add_argument("--langs", nargs="+", default=None, help="languages (default: all of the collection)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                        help="subsample sizes: cpu = 50 questions per language (20 for adversarial), full = all "
                             "(100 for adversarial); --max-queries-per-lang and --adversarial-max-queries-per-lang "
                             "override it")
    parser.add_argument("--max-queries-per-lang", type=int, default=None,
                        help="at most N questions per language, the same parallel questions in every language "
                             "(deterministic given --seed); 0 = all")
    parser.add_argument("--adversarial-max-queries-per-lang", type=int, default=None,
                        help="subsample of the adversarial runs (the white-box search is expensive); 0 = all")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, among {','.join(KINDS)}")
    parser.add_argument("--edits", nargs="+", type=int, default=[1, 2, 3], help="strengths of typo kinds")
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.5, 1.0],
                        help="strengths of the word-level kinds (fraction of the changeable words)")
    parser.add_argument("--codeswitch-to", default="en",
                        help="language(s) code-switched into, comma-separated; 'all' = every evaluated language")
    parser.add_argument("--adversarial-candidates", type=int, default=32,
                        help="candidate edits scored per query and step of the adversarial search")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations and of the subsample")
    parser.add_argument("--candidate-text", choices=["sentence", "sentence+context"], default="sentence+context")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "robustness", help="output folder")
    shift = parser.add_argument_group("domain shift")
    shift.add_argument("--domain-shift", action="store_true", help="compare cross- and in-collection training")
    shift.add_argument("--cross", action="append", default=[], metavar="NAME=MODEL",
                       help="model trained on the other collection (repeatable)")
    shift.add_argument("--in-collection", action="append", default=[], metavar="NAME=MODEL",
                       help="model trained on the evaluated collection with a held-out split (repeatable)")
    shift.add_argument("--held-out-articles", type=Path, default=None,
                       help="file with one held-out article per line (default: reproduced from each in-collection "
                            "model's training_config.json)")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    for name in ("max_queries_per_lang", "adversarial_max_queries_per_lang"):
        value = getattr(args, name)
        setattr(args, name, preset[name] if value is None else (None if value == 0 else value))
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; choose among {list(KINDS)}")
    if any(e < 1 for e in args.edits):
        parser.error("--edits must be >= 1")
    if any(not 0 < f <= 1 for f in args.fractions):
        parser.error("--fractions must be in (0, 1]")
    args.collection = args.collection.removeprefix("irds:").removeprefix("lareqa/")
    if args.domain_shift and not (args.cross and args.in_collection):
        parser.error("--domain-shift needs --cross NAME=MODEL and --in-collection NAME=MODEL pairs")
    return args


# ---------------------------------------------------------------------------------------------------------------
# Run facts


def git_facts() -> dict[str, Any]:
    def git(*command):
        try:
            return subprocess.run(["git", *command], cwd=REPO_ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": None if status is None else bool(status)}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("pyterrier-hybrid", "python-terrier", "pyterrier-dr", "sentence-transformers", "transformers",
                    "torch", "bm25s", "ir-measures"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def training_alpha(model: str) -> float | None:
    """The hybrid-batch ratio alpha a model folder was trained with (its training_config.json), if any."""
    path = Path(model) / "training_config.json"
    if not path.is_file():
        return None
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["config"]["alpha"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None


# ---------------------------------------------------------------------------------------------------------------
# Systems and perturbations


@dataclass
class System:
    name: str
    model: str
    is_bm25: bool
    factory: Any  # ReusingFactory around the system's factory
    inner: Any  # the system's own factory (DenseRetrieverFactory has .encoder)
    alpha: float | None = None
    wall_s: float = 0.0


def build_system(spec_text: str, args) -> System:
    from pyterrier_hybrid.retrieval.systems import SystemOptions, SystemSpec, build_factory
    from pyterrier_hybrid.robustness.evaluation import ReusingFactory

    spec = SystemSpec.parse(spec_text)
    options = SystemOptions(candidate_text=args.candidate_text, precision=args.precision,
                            batch_size=args.batch_size, verbose=False)
    inner = build_factory(spec, options)
    return System(spec.name, spec.model, spec.is_bm25, ReusingFactory(inner), inner,
                  None if spec.is_bm25 else training_alpha(spec.model))


def strengths(kind: str, args) -> list:
    return list(args.edits) if kind in EDIT_KINDS else list(args.fractions)


def strength_unit(kind: str) -> str:
    return "edits per query" if kind in EDIT_KINDS else "fraction of changeable words"


class Perturbations:
    """The query perturbations of the study, built once and shared by the systems (their cached queries too)."""

    def __init__(self, collection, langs: tuple[str, ...], args):
        self.collection = collection
        self.langs = langs
        self.args = args
        self._cached: dict[tuple[str, Any], Any] = {}
        self._parallel = None

    def code_switch_targets(self) -> tuple[str, ...]:
        value = self.args.codeswitch_to
        if value == "all":
            return self.langs
        return tuple(self.collection.check_languages([t.strip() for t in value.split(",") if t.strip()]))

    def build(self, kind: str, strength):
        from pyterrier_hybrid import robustness as rb

        seed = self.args.seed
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
        from pyterrier_hybrid.robustness.evaluation import supported_languages

        langs = supported_languages(perturbation, self.langs)
        if kind == "codeswitch":
            targets = self.code_switch_targets()
            if len(targets) == 1:  # a query already in the only target language is not switched
                langs = tuple(lang for lang in langs if lang != targets[0])
        return langs

    def cached(self, kind: str, strength):
        """(CachedPerturbation, affected languages), shared by every system."""
        from pyterrier_hybrid.robustness.evaluation import CachedPerturbation

        key = (kind, strength)
        if key not in self._cached:
            perturbation = self.build(kind, strength)
            langs = self.affected_languages(kind, perturbation)
            self._cached[key] = (CachedPerturbation(perturbation, langs=langs) if langs else None, langs)
        return self._cached[key]


# ---------------------------------------------------------------------------------------------------------------
# The perturbation study


@dataclass
class Study:
    rows: list = field(default_factory=list)  # robustness.csv
    language_rows: list = field(default_factory=list)  # robustness_per_language.csv
    examples: list = field(default_factory=list)  # examples.csv
    notes: list = field(default_factory=list)
    attack_stats: list = field(default_factory=list)

    def note(self, text: str) -> None:
        print(f"note: {text}", file=sys.stderr)
        self.notes.append(text)


def evaluation_config():
    from pyterrier_hybrid.evaluation import LAReQAEvaluationConfig

    # cross_check off: it re-measures AP with ir_measures for every run (the runner's tests check the two agree)
    return LAReQAEvaluationConfig(show_progress=False, per_query=False, cross_check=False)


def changed_fractions(examples: pd.DataFrame, subset, langs) -> dict:
    """Fraction of the subset's questions whose text the perturbation changed, overall and per language."""
    frame = examples[examples["qid"].astype(str).isin(subset.qids) & examples["lang"].isin(set(langs))]
    per_lang = frame.groupby("lang")["changed"].mean().to_dict()
    return {"all": float(frame["changed"].mean()) if len(frame) else float("nan"), **per_lang}


def record(study: Study, system: System, kind: str, strength, clean, result, langs, subset, changed: dict,
           queries_per_lang) -> None:
    from pyterrier_hybrid.robustness.evaluation import compare_per_language, compare_to_clean

    common = {"system": system.name, "kind": kind, "strength": strength,
              "strength_unit": "" if kind == "clean" else strength_unit(kind)}
    summary = compare_to_clean(clean, result, langs)
    for row in summary.itertuples(index=False):
        study.rows.append({**common, **row._asdict(), "query_langs": " ".join(langs),
                           "queries_per_lang": queries_per_lang or "all", "changed": changed.get("all", 0.0)})
    per_lang = compare_per_language(clean, result, langs)
    for row in per_lang.itertuples(index=False):
        study.language_rows.append({**common, **row._asdict(), "changed": changed.get(row.query_lang, 0.0)})


def run_study(args) -> tuple[Study, list[System], dict]:
    from pyterrier_hybrid.datasets import lareqa_collection
    from pyterrier_hybrid.evaluation import evaluate_lareqa
    from pyterrier_hybrid.robustness.evaluation import PerturbedFactory, TopicSubset
    from tqdm.auto import tqdm

    collection = lareqa_collection(args.collection)
    langs = collection.check_languages(args.langs)
    main_subset = TopicSubset.sample_per_language(collection, args.max_queries_per_lang, args.seed, langs)
    adversarial_subset = TopicSubset.sample_per_language(collection, args.adversarial_max_queries_per_lang,
                                                         args.seed, langs)
    perturbations = Perturbations(collection, langs, args)
    config = evaluation_config()
    study = Study()
    systems = []
    generic_kinds = [k for k in args.kinds if k != "adversarial"]
    for spec_text in args.systems:
        system = build_system(spec_text, args)
        if any(s.name == system.name for s in systems):
            raise SystemExit(f"two systems are named {system.name!r}: name them with NAME=MODEL")
        systems.append(system)
        started = time.perf_counter()
        runs = [(k, s) for k in generic_kinds for s in strengths(k, args)]
        do_adversarial = "adversarial" in args.kinds and not system.is_bm25
        if "adversarial" in args.kinds and system.is_bm25:
            study.note(f"{system.name}: adversarial typos are white-box against a dense encoder's text_scorer(); "
                       "not run for BM25")
        total = 1 + len(runs) + (1 + len(args.edits) if do_adversarial else 0)
        bar = tqdm(total=total, desc=system.name, unit="run")

        def evaluate(factory, subset):
            return evaluate_lareqa(factory, subset, langs, system=system.name, config=config)

        bar.set_postfix_str("clean")
        clean = evaluate(system.factory, main_subset)
        record(study, system, "clean", 0, clean, clean, langs, main_subset, {}, args.max_queries_per_lang)
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
                   changed_fractions(examples, main_subset, affected), args.max_queries_per_lang)
            if system is systems[0]:
                study.examples += [{"system": "", "kind": kind, "strength": strength, **e}
                                   for e in examples.to_dict("records")]
            bar.update()
        if do_adversarial:
            run_adversarial(study, system, collection, langs, adversarial_subset, evaluate, args, bar)
        bar.close()
        system.wall_s = time.perf_counter() - started
    facts = {"main_subset": f"{len(main_subset.qids)} questions ({main_subset.description})",
             "adversarial_subset": f"{len(adversarial_subset.qids)} questions ({adversarial_subset.description})",
             "langs": list(langs), "questions_main": len(main_subset.qids),
             "questions_adversarial": len(adversarial_subset.qids)}
    return study, systems, facts


def run_adversarial(study: Study, system: System, collection, langs, subset, evaluate, args, bar) -> None:
    """Greedy white-box typos against the system's own text_scorer(), one search at the largest budget giving every
    budget (see adversarial_queries_by_budget), evaluated on the adversarial subsample."""
    from pyterrier_hybrid.robustness import AdversarialTypos
    from pyterrier_hybrid.robustness.evaluation import (
        PerturbedFactory,
        QueryTable,
        adversarial_queries_by_budget,
        dense_text_scorer,
    )

    encoder = getattr(system.inner, "encoder", None)
    if encoder is None:
        study.note(f"{system.name}: no encoder to attack; adversarial typos not run")
        bar.update(1 + len(args.edits))
        return
    bar.set_postfix_str("adversarial clean")
    clean = evaluate(system.factory, subset)
    record(study, system, "clean", 0, clean, clean, langs, subset, {}, args.adversarial_max_queries_per_lang)
    bar.update()
    # the relevant candidate(s) of each query in its monolingual setting
    qrels = pd.concat([subset.qrels([lang], [lang]) for lang in langs], ignore_index=True)
    candidates = collection.candidates(langs)
    candidates = candidates[candidates["docno"].isin(set(qrels["docno"]))].reset_index(drop=True)
    attacker = AdversarialTypos(dense_text_scorer(encoder, candidates), qrels, candidates, budget=max(args.edits),
                                candidates_per_step=args.adversarial_candidates, seed=args.seed, verbose=False)
    from pyterrier_hybrid.robustness.evaluation import supported_languages

    affected = supported_languages(attacker, langs)
    bar.set_postfix_str("adversarial search")
    topics = subset.topics(affected)
    attack = attacker.attack(topics)
    for lang, part in attack.groupby("lang", sort=False):
        study.attack_stats.append({
            "system": system.name, "lang": lang, "queries": len(part), "mean_edits": float(part["n_edits"].mean()),
            "mean_score_0": float(part["score_0"].mean()), "mean_score": float(part["score"].mean()),
        })
    by_budget = adversarial_queries_by_budget(attack, args.edits)
    for budget in args.edits:
        bar.set_postfix_str(f"adversarial {budget}")
        table = QueryTable(by_budget[budget], missing="keep")
        factory = PerturbedFactory(system.factory, table, langs=affected)
        result = evaluate(factory, subset)
        examples = factory.perturbation.examples()
        record(study, system, "adversarial", budget, clean, result, affected, subset,
               changed_fractions(examples, subset, affected), args.adversarial_max_queries_per_lang)
        study.examples += [{"system": system.name, "kind": "adversarial", "strength": budget, **e}
                           for e in examples.to_dict("records")]
        bar.update()


# ---------------------------------------------------------------------------------------------------------------
# Reports


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
    from pyterrier_hybrid.evaluation.report import markdown_table

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


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_drop_vs_strength(rows: pd.DataFrame, path: Path) -> None:
    """One row of panels per kind, one panel per headline measure; one line per system; strength 0 is clean."""
    from matplotlib.ticker import MaxNLocator

    perturbed = rows[rows["kind"] != "clean"]
    kinds = list(dict.fromkeys(perturbed["kind"]))
    if not kinds:
        return
    figure = _figure(3.2 * len(HEADLINE), 2.6 * len(kinds))
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
    figure.savefig(path, dpi=120)


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
    figure = _figure(max(6.0, 0.5 * pool["query_lang"].nunique() * len(systems) + 2), 2.4 * len(kinds))
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
    figure.savefig(path, dpi=120)


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
    figure = _figure(9.0, 3.2)
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
    figure.savefig(path, dpi=120)
    return True


def perturbation_main(args) -> int:
    started = time.perf_counter()
    study, systems, facts = run_study(args)
    out = Path(args.out)
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
        "mode": "perturbation", **git_facts(), "preset": args.preset, "seed": args.seed,
        "collection": args.collection, "langs": facts["langs"], "kinds": args.kinds, "edits": args.edits,
        "fractions": args.fractions, "codeswitch_to": args.codeswitch_to,
        "max_queries_per_lang": args.max_queries_per_lang,
        "adversarial_max_queries_per_lang": args.adversarial_max_queries_per_lang,
        "adversarial_candidates_per_step": args.adversarial_candidates, "candidate_text": args.candidate_text,
        "precision": args.precision, "facts": facts,
        "systems": [{"name": s.name, "model": s.model, "alpha": s.alpha, "wall_time_s": round(s.wall_s, 1)}
                    for s in systems],
        "wall_time_s": round(time.perf_counter() - started, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "versions": versions(),
        "command": " ".join(sys.argv), "notes": study.notes,
    }
    plot_drop_vs_strength(rows, out / "drop_vs_strength.png")
    plot_per_language(language_rows, out / "per_language_drop.png")
    run["drop_vs_alpha_plot"] = plot_drop_vs_alpha(rows, systems, out / "drop_vs_alpha.png")
    write_markdown(out / "robustness.md", rows, language_rows, study, run)
    (out / "run.json").write_text(json.dumps(run, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print((out / "robustness.md").read_text(encoding="utf-8"))
    print(f"results in {out}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Domain shift


def held_out_articles(model: str, collection: str) -> list[str]:
    """The articles an in-collection model was NOT trained on: its training run's held-out split by article,
    reproduced from its training_config.json with the training code's own split_by_article."""
    from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig
    from pyterrier_hybrid.training.data import load_training_data, split_by_article

    path = Path(model) / CONFIG_FILE
    if not path.is_file():
        raise SystemExit(f"{model} has no {CONFIG_FILE} to reproduce its held-out split from; pass "
                         "--held-out-articles FILE")
    config = HybridTrainingConfig.load(path)
    if config.train != f"lareqa/{collection}":
        raise SystemExit(f"{model} was trained on {config.train!r}, not on lareqa/{collection}: it is not an "
                         "in-collection model for this evaluation")
    if config.eval_fraction == 0:
        raise SystemExit(f"{model} was trained without a held-out split (eval_fraction 0): every article was seen")
    data = load_training_data(config.train, config.train_langs, config.hard_negatives, config.seed)
    _, held_out = split_by_article(data, config.eval_fraction, config.seed)
    return sorted({example.article for example in held_out.examples})


def domain_shift_main(args) -> int:
    from pyterrier_hybrid.datasets import lareqa_collection
    from pyterrier_hybrid.evaluation import evaluate_lareqa
    from pyterrier_hybrid.evaluation.report import markdown_table
    from pyterrier_hybrid.retrieval.systems import SystemSpec
    from pyterrier_hybrid.robustness.evaluation import TopicSubset, relative_drop

    started = time.perf_counter()
    collection = lareqa_collection(args.collection)
    langs = collection.check_languages(args.langs)
    cross = {s.name: s for s in map(SystemSpec.parse, args.cross)}
    in_collection = {s.name: s for s in map(SystemSpec.parse, args.in_collection)}
    if set(cross) != set(in_collection):
        raise SystemExit(f"--cross and --in-collection must name the same pairs: {sorted(cross)} vs "
                         f"{sorted(in_collection)}")
    fixed_articles = None
    if args.held_out_articles is not None:
        fixed_articles = [a.strip() for a in args.held_out_articles.read_text(encoding="utf-8").splitlines()
                          if a.strip()]
    config = evaluation_config()
    rows, pairs = [], []
    for name in cross:
        articles = fixed_articles or held_out_articles(in_collection[name].model, args.collection)
        held_out = TopicSubset.of_articles(collection, articles, langs)
        subset = TopicSubset.sample_per_language(held_out, args.max_queries_per_lang, args.seed, langs)
        results = {}
        for role, spec in (("in_collection", in_collection[name]), ("cross_collection", cross[name])):
            system = build_system(f"{name}-{role}={spec.model}", args)
            print(f"{name}: {role} model {spec.model} on {subset!r}", file=sys.stderr)
            results[role] = evaluate_lareqa(system.factory, subset, langs, system=system.name, config=config)
        merged = results["in_collection"].summary.merge(
            results["cross_collection"].summary, on=["setting_type", "measure"], suffixes=("_in", "_cross"))
        for row in merged.itertuples(index=False):
            rows.append({"name": name, "setting_type": row.setting_type, "measure": row.measure,
                         "in_collection": row.value_in, "cross_collection": row.value_cross,
                         "difference": row.value_cross - row.value_in,
                         "relative_cost": relative_drop(row.value_cross, row.value_in, row.measure),
                         "held_out_articles": len(articles), "questions": len(subset.qids)})
        pairs.append({"name": name, "in_collection": in_collection[name].model, "cross": cross[name].model,
                      "held_out_articles": articles, "questions": len(subset.qids)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "domain_shift.csv", index=False)
    run = {"mode": "domain-shift", **git_facts(), "preset": args.preset, "seed": args.seed,
           "collection": args.collection, "langs": list(langs), "max_queries_per_lang": args.max_queries_per_lang,
           "pairs": pairs, "wall_time_s": round(time.perf_counter() - started, 1),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "versions": versions(), "command": " ".join(sys.argv)}
    (out / "run.json").write_text(json.dumps(run, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shown = table.assign(relative_cost=table["relative_cost"].map(percent))
    lines = [f"# Domain shift on {args.collection} ({' '.join(langs)})", "",
             f"Commit `{run['commit']}`, seed {args.seed}. Each pair is evaluated on the questions of the "
             "in-collection model's held-out articles (full candidate pools). *difference* = cross - in-collection; "
             "*relative_cost* = relative drop from in-collection to cross-collection training (positive: the shift "
             "costs). Wall time {:.0f} s.".format(run["wall_time_s"]), "", markdown_table(shown), ""]
    (out / "domain_shift.md").write_text("\n".join(lines), encoding="utf-8")
    plot_domain_shift(table, out / "domain_shift.png")
    print("\n".join(lines))
    print(f"results in {out}")
    return 0


def plot_domain_shift(table: pd.DataFrame, path: Path) -> None:
    data = table[table["measure"] == "mAP"]
    if data.empty:
        return
    names = list(dict.fromkeys(data["name"]))
    types = [t for t in SETTING_TYPES if t in set(data["setting_type"])]
    figure = _figure(max(5.0, 2.2 * len(names) + 2), 3.6)
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
    figure.savefig(path, dpi=120)


def main(argv=None) -> int:
    args = parse_args(argv)
    if SHARED_LAREQA.is_dir():
        os.environ.setdefault("PYTERRIER_HYBRID_LAREQA_DIR", str(SHARED_LAREQA))
    os.environ.setdefault("IR_DATASETS_HOME", str(REPO_ROOT / ".cache" / "ir_datasets"))
    warnings.filterwarnings("ignore", message=".*queries without a relevant candidate.*")
    return domain_shift_main(args) if args.domain_shift else perturbation_main(args)


if __name__ == "__main__":
    sys.exit(main())
