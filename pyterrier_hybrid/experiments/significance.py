"""Paired significance tests of a comparison through ``pt.Experiment``, with multiple-testing correction.

Per setting type, the qids of the type's settings are prefixed by the setting name (``de-en/<qid>``) so that they
form one topic set (:class:`TestSet`, :func:`build_test_sets`); each system's top-``depth`` runs are kept as
:class:`~pyterrier_hybrid.evaluation.runs.TopRun` (:func:`top_runs`); :func:`significance_tests` then runs
``pt.Experiment`` against a baseline (AP@depth and R@10, paired t-test, Holm correction over the systems) per seed
and setting type, and :func:`significance_markdown` writes the result as a table. The cross-lingual test can use a
balanced subsample of language pairs (:func:`balanced_pairs`) to bound its cost.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from ..datasets import lareqa_collection
from ..datasets.settings import lareqa_settings
from ..evaluation.cache import RetrieverCache
from ..evaluation.report import markdown_table
from ..evaluation.runs import TopRun, score_matrix_top_run

__all__ = [
    "TestSet",
    "balanced_pairs",
    "build_test_sets",
    "paired_significance",
    "significance_markdown",
    "significance_tests",
    "top_runs",
]


def balanced_pairs(langs: Sequence[str], per_language: int | None) -> list[tuple[str, str]]:
    """Cross-lingual (query, document) language pairs: all ordered pairs, or ``per_language`` per query language
    chosen by offsets spread over 1..n-1 in the language list, so that every language is a query language and a
    document language equally often."""
    langs = list(langs)
    n = len(langs)
    if n < 2 or per_language == 0:
        return []
    if per_language is None or per_language >= n - 1:
        offsets = list(range(1, n))
    else:
        # midpoints of per_language equal bins of 1..n-1: distinct because each bin holds at least one offset
        offsets = [1 + ((2 * i + 1) * (n - 1)) // (2 * per_language) for i in range(per_language)]
    return [(langs[i], langs[(i + offset) % n]) for i in range(n) for offset in offsets]


@dataclass
class TestSet:
    """The topics and qrels of one setting type for the significance test: qids are ``<setting>/<qid>`` so that
    the type's settings concatenate into one topic set; ``settings`` lists (name, query langs, doc langs)."""

    setting_type: str
    settings: list[tuple[str, tuple[str, ...], tuple[str, ...]]]
    topics: pd.DataFrame  # qid (prefixed), query, lang, plus original_qid
    qrels: pd.DataFrame   # qid (prefixed), docno, label

    def settings_topics(self):
        for name, query_langs, doc_langs in self.settings:
            yield name, query_langs, doc_langs, self.topics[self.topics["setting"] == name]


def build_test_sets(collection, langs: Sequence[str], pairs_per_language: int | None) -> list[TestSet]:
    """The significance test's settings: every monolingual one, the balanced cross-lingual pairs
    (:func:`balanced_pairs`), the pool; one :class:`TestSet` per setting type that has a setting."""
    langs = tuple(langs)
    by_type: dict[str, list[tuple[str, tuple[str, ...], tuple[str, ...]]]] = {}
    for setting in lareqa_settings(langs, cross_pairs=balanced_pairs(langs, pairs_per_language)):
        by_type.setdefault(setting.setting_type, []).append((setting.name, setting.query_langs, setting.doc_langs))
    test_sets = []
    for setting_type, settings in by_type.items():
        topic_frames, qrel_frames = [], []
        for name, query_langs, doc_langs in settings:
            topics = collection.topics(query_langs, doc_langs)
            qrels = collection.qrels(query_langs, doc_langs)
            qrels = qrels[qrels["label"] > 0]
            topics = topics[topics["qid"].isin(set(qrels["qid"]))]
            topic_frames.append(pd.DataFrame({
                "qid": name + "/" + topics["qid"].astype(str), "query": topics["query"], "lang": topics["lang"],
                "original_qid": topics["qid"], "setting": name,
            }))
            qrel_frames.append(pd.DataFrame({
                "qid": name + "/" + qrels["qid"].astype(str), "docno": qrels["docno"], "label": qrels["label"],
            }))
        test_sets.append(TestSet(setting_type, settings, pd.concat(topic_frames, ignore_index=True),
                                 pd.concat(qrel_frames, ignore_index=True)))
    return test_sets


def top_runs(factory, collection, test_sets: Sequence[TestSet], depth: int,
             query_batch_size: int = 1024) -> dict[str, TopRun]:
    """Each test set's top-``depth`` run of a system (qids prefixed by their setting), from its retrievers' score
    matrices (the fast path of the retriever factory protocol), ties in trec_eval's order."""
    runs = {}
    for test_set in test_sets:
        run = TopRun()
        for _, _, doc_langs, topics in test_set.settings_topics():
            retriever = factory(collection.candidates(doc_langs))
            queries = pd.DataFrame({"qid": topics["original_qid"].to_numpy(object),
                                    "query": topics["query"].to_numpy(object),
                                    "lang": topics["lang"].to_numpy(object)})
            score_matrix_top_run(retriever, queries, depth, run_qids=topics["qid"].to_numpy(object),
                                 query_batch_size=query_batch_size, into=run)
        runs[test_set.setting_type] = run
    return runs


def significance_tests(system_runs: Sequence[Any], test_sets: Sequence[TestSet], baseline_label: str,
                       depth: int, seeds: Sequence[int]) -> pd.DataFrame:
    """``pt.Experiment`` per seed and setting type: AP@depth and R@10 of every system against the baseline (paired
    t-test, Holm correction over the systems compared with it).

    ``system_runs``: objects with ``label``, ``seed`` (None: untrained, part of every seed's test) and ``runs``
    (setting type -> :class:`~pyterrier_hybrid.evaluation.runs.TopRun`), e.g.
    :class:`~pyterrier_hybrid.experiments.system_records.SystemRun`.
    """
    import pyterrier as pt
    from pyterrier.measures import AP, R

    measures = [AP @ depth, R @ 10]
    frames = []
    for seed in seeds:
        # Untrained systems (seed None) take part in every seed's comparison.
        runs = [r for r in system_runs if r.seed in (None, seed)]
        labels = [r.label for r in runs]
        if baseline_label not in labels:
            continue
        for test_set in test_sets:
            experiment = pt.Experiment(
                [r.runs[test_set.setting_type].frame() for r in runs],
                test_set.topics[["qid", "query"]], test_set.qrels, eval_metrics=measures, names=labels,
                baseline=labels.index(baseline_label), correction="holm", verbose=False,
            )
            experiment.insert(0, "setting_type", test_set.setting_type)
            experiment.insert(1, "seed", seed)
            experiment.insert(2, "settings", len(test_set.settings))
            experiment.insert(3, "queries", len(test_set.topics))
            frames.append(experiment.rename(columns={"name": "System"}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def significance_markdown(frame: pd.DataFrame, baseline_label: str, depth: int) -> str:
    """One row per setting type, seed and system: each measure, its difference to the baseline and the
    Holm-corrected p-value (``*``: significant at 0.05)."""
    if frame.empty:
        return f"(no significance test: the baseline {baseline_label!r} is not among the systems)"
    measures = (f"AP@{depth}", "R@10")
    rows = []
    for (setting_type, seed), group in frame.groupby(["setting_type", "seed"], sort=False):
        baseline = group[group["System"] == baseline_label].iloc[0]
        for row in group.to_dict("records"):
            out = {"setting type": setting_type, "seed": seed, "System": row["System"], "queries": row["queries"]}
            for measure in measures:
                out[measure] = row[measure]
                if row["System"] == baseline_label:
                    out[f"Δ{measure}"] = "baseline"
                    out[f"p {measure}"] = ""
                    continue
                out[f"Δ{measure}"] = f"{row[measure] - baseline[measure]:+.4f}"
                p = row.get(f"{measure} p-value corrected")
                out[f"p {measure}"] = "" if p is None or pd.isna(p) else f"{p:.2g}" + (
                    " *" if row[f"{measure} reject"] else "")
            rows.append(out)
    return markdown_table(pd.DataFrame(rows))


class _SystemRuns(NamedTuple):
    label: str
    seed: None
    runs: dict[str, TopRun]


def paired_significance(factories: Mapping[str, Callable], collection, langs: Sequence[str], baseline: str, *,
                        depth: int = 100, pairs_per_language: int | None = 1) -> pd.DataFrame:
    """Every system against ``baseline`` in each LAReQA setting type: ``pt.Experiment`` on AP@depth and R@10 (paired
    t-test, Holm correction over the systems), qids of a type's settings concatenated.

    ``factories``: name -> retriever factory (``factory(candidates) -> retriever`` with the ``score_matrix`` fast
    path, e.g. :func:`~pyterrier_hybrid.retrieval.system_specs.build_factory`); ``collection``: a LAReQA collection or
    its name; ``pairs_per_language``: cross-lingual pairs per query language (:func:`balanced_pairs`; None: all).
    Returns one row per setting type and system: the measures, their p-values (raw and corrected) and whether the
    difference is significant at 0.05.
    """
    if baseline not in factories:
        raise ValueError(f"the baseline {baseline!r} is not among the systems {sorted(factories)}")
    if isinstance(collection, str):
        collection = lareqa_collection(collection.removeprefix("lareqa/"))
    langs = collection.check_languages(langs)
    test_sets = build_test_sets(collection, langs, pairs_per_language)
    systems = [_SystemRuns(name, None, top_runs(RetrieverCache(factory), collection, test_sets, depth))
               for name, factory in factories.items()]
    frame = significance_tests(systems, test_sets, baseline, depth, seeds=[None])
    return frame.drop(columns=["seed"])

