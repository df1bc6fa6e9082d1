"""The cost of a collection shift: models trained on the evaluated collection against models trained on the other.

Pairs of models named alike, an *in-collection* one trained on the evaluated collection with a held-out split by
article and a *cross-collection* one trained on the other collection, are evaluated on the same questions -- those of
the in-collection model's held-out articles (reproduced from its training_config.json with the training code's own
split, :func:`held_out_articles`, or given) -- against the full candidate pools. :func:`run_domain_shift` writes
domain_shift.csv / .md / .png and run.json: the cost of the shift is in-collection minus cross-collection.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from ...datasets import lareqa_collection
from ...evaluation import evaluate_lareqa
from ...evaluation.subsets import TopicSubset
from ...retrieval.system_specs import SystemSpec, check_systems
from ...robustness.evaluation import relative_drop
from ...training.config import CONFIG_FILE, HybridTrainingConfig
from ..records import RunRecord, provenance
from .config import RobustnessError, StudyOptions
from .plots import plot_domain_shift
from .report import domain_shift_markdown
from .study import build_system, evaluation_config

__all__ = ["DomainShiftConfig", "held_out_articles", "plot_domain_shift", "run_domain_shift"]  # the plot: re-exported


@dataclass(frozen=True)
class DomainShiftConfig(StudyOptions):
    """What a domain-shift run compares (besides :class:`~.config.StudyOptions`: collection, languages,
    subsample of the held-out questions, seed, encoding).

    Attributes:
        in_collection / cross: ``NAME=MODEL`` specs; the same names on both sides form the pairs.
        held_out_articles: the articles to evaluate on (None: each in-collection model's own held-out split).
    """

    in_collection: tuple[str, ...] = ()
    cross: tuple[str, ...] = ()
    held_out_articles: tuple[str, ...] | None = None

    def problems(self) -> list[str]:
        problems = super().problems()
        if not (self.in_collection and self.cross):
            problems.append("the domain shift needs --cross NAME=MODEL and --in-collection NAME=MODEL pairs")
        if self.held_out_articles is not None and not self.held_out_articles:
            problems.append("the list of held-out articles is empty")
        return problems

    def pairs(self) -> dict[str, tuple[SystemSpec, SystemSpec]]:
        """name -> (in-collection spec, cross-collection spec)."""
        cross = {s.name: s for s in check_systems(self.cross)}
        in_collection = {s.name: s for s in check_systems(self.in_collection)}
        if set(cross) != set(in_collection):
            raise RobustnessError(f"--cross and --in-collection must name the same pairs: {sorted(cross)} vs "
                                  f"{sorted(in_collection)}")
        return {name: (in_collection[name], cross[name]) for name in cross}

    def check(self) -> tuple[str, ...]:
        """Fail before any model is built on an unknown collection or language, a missing model or an unpaired
        name; returns the evaluated languages."""
        langs = tuple(lareqa_collection(self.collection).check_languages(self.langs))
        self.pairs()
        return langs


def held_out_articles(model: str, collection: str) -> list[str]:
    """The articles an in-collection model was NOT trained on: its training run's held-out split by article,
    reproduced from its training_config.json with the training code's own split_by_article."""
    from ...training.sources.data import configured_training_data, split_by_article

    path = Path(model) / CONFIG_FILE
    if not path.is_file():
        raise RobustnessError(f"{model} has no {CONFIG_FILE} to reproduce its held-out split from; pass "
                              "--held-out-articles FILE")
    config = HybridTrainingConfig.load(path)
    if config.train != f"lareqa/{collection}":
        raise RobustnessError(f"{model} was trained on {config.train!r}, not on lareqa/{collection}: it is not an "
                              "in-collection model for this evaluation")
    if config.eval_fraction == 0:
        raise RobustnessError(f"{model} was trained without a held-out split (eval_fraction 0): every article was "
                              "seen")
    data = configured_training_data(config)
    _, held_out = split_by_article(data, config.eval_fraction, config.seed)
    return sorted({example.article for example in held_out.examples})


def run_domain_shift(config: DomainShiftConfig, out: str | Path) -> dict[str, Any]:
    """Evaluates every pair on its held-out questions and writes domain_shift.csv / .md / .png and run.json to
    ``out``. Returns ``{"markdown", "table", "run"}``."""
    started = time.perf_counter()
    langs = config.check()
    collection = lareqa_collection(config.collection)
    eval_config = evaluation_config()
    rows, pairs = [], []
    for name, (in_spec, cross_spec) in config.pairs().items():
        articles = list(config.held_out_articles or held_out_articles(in_spec.model, config.collection))
        held_out = TopicSubset.of_articles(collection, articles, langs)
        subset = TopicSubset.sample_per_language(held_out, config.max_queries_per_lang, config.seed, langs,
                                                 answer_paragraphs_only=config.answer_paragraphs_only)
        results = {}
        for role, spec in (("in_collection", in_spec), ("cross_collection", cross_spec)):
            system, factory = build_system(f"{name}-{role}={spec.model}", config)
            tqdm.write(f"{name}: {role} model {spec.model} on {subset!r}")
            results[role] = evaluate_lareqa(factory, subset, langs, system=system.label, config=eval_config)
        merged = results["in_collection"].summary.merge(
            results["cross_collection"].summary, on=["setting_type", "measure"], suffixes=("_in", "_cross"))
        for row in merged.itertuples(index=False):
            rows.append({"name": name, "setting_type": row.setting_type, "measure": row.measure,
                         "in_collection": row.value_in, "cross_collection": row.value_cross,
                         "difference": row.value_cross - row.value_in,
                         "relative_cost": relative_drop(row.value_cross, row.value_in, row.measure),
                         "held_out_articles": len(articles), "questions": len(subset.qids)})
        pairs.append({"name": name, "in_collection": in_spec.model, "cross": cross_spec.model,
                      "held_out_articles": articles, "questions": len(subset.qids)})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "domain_shift.csv", index=False)
    record = RunRecord({"mode": "domain-shift", "preset": config.preset, "seed": config.seed,
                        "collection": config.collection, "langs": list(langs),
                        "max_queries_per_lang": config.max_queries_per_lang,
                        "answer_paragraphs_only": config.answer_paragraphs_only, "pairs": pairs},
                       {"wall_time_s": round(time.perf_counter() - started, 1), **provenance()})
    record.write(out)
    run = record.to_dict()
    markdown = domain_shift_markdown(run, table)
    (out / "domain_shift.md").write_text(markdown, encoding="utf-8")
    plot_domain_shift(table, out / "domain_shift.png")
    return {"markdown": markdown, "table": table, "run": run}


def read_articles(path: str | Path) -> tuple[str, ...]:
    """One article per line (blank lines skipped); a missing file is a user error."""
    path = Path(path)
    if not path.is_file():
        raise RobustnessError(f"held-out articles file {str(path)!r} does not exist")
    return tuple(a.strip() for a in path.read_text(encoding="utf-8").splitlines() if a.strip())
