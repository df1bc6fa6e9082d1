"""Adversarial typos: the typos, within an edit budget, that most lower a retriever's score for the relevant
candidates.

Random typos (``CharacterNoise``) measure an average drop; this measures a worst case under the same typo
protocol (same operations, same editable words, one grapheme edit per word) and a budget of ``budget`` edits.
The search is greedy and white-box through the pipeline's own scores, as in the adversarial-typo studies of
dense retrieval (e.g. Sidiropoulos & Kanoulas, SIGIR 2022; Zhuang & Zuccon, SIGIR 2022): at each step every query
tries up to ``candidates_per_step`` single edits (sampled by (seed, qid, step), round-robin over the operations so
that the few deletions and swaps are not drowned by the many substitutions and insertions), the scorer scores
each edited query against the query's relevant candidates, and the edit with the lowest score is kept if it
lowers the score; otherwise the query's search stops. So the relevant score never increases, and the result is a
greedy (not exhaustive) worst case.

The scorer is any ``pt.Transformer`` that scores given (qid, query, docno, text) rows and returns them with a
``score`` column: pyterrier_dr's ``encoder.text_scorer()``, a BM25 re-ranker, a cross-encoder. All candidate edits
of all queries of a batch go to the scorer in one call per step (``query_batch_size`` queries per call).

TextAttack offers greedy word/character attacks, but against a classifier's goal function and with its own
tokenisation (whitespace words, no graphemes); wrapping a retrieval score and ICU/grapheme edits into it would be
more code than this search, so it is written here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyterrier as pt
from tqdm.auto import tqdm

from .base import QueryPerturbation
from .keyboards import keyboard_layout
from .text import SegmentedText, WordFilter, graphemes, topic_rng
from .typos import (
    DEFAULT_OPERATIONS,
    GraphemeEdit,
    WordEdit,
    candidate_edits,
    check_operation_language,
    check_operations,
    is_clean_edit,
    query_alphabet,
)

__all__ = ["AdversarialTypos"]

_AGGREGATES = {"mean": np.mean, "max": np.max, "min": np.min}


@dataclass
class _QueryState:
    qid: str
    lang: str
    query: str
    segmented: SegmentedText
    word_graphemes: list[list[str]]
    editable: list[int]
    alphabet: tuple[str, ...]
    relevant: list[str]
    edits: list[WordEdit] = field(default_factory=list)
    score_0: float = float("nan")
    score: float = float("nan")
    active: bool = True

    @property
    def edited_words(self) -> set[int]:
        return {e.word_index for e in self.edits}

    def text_with(self, extra: WordEdit | None = None) -> str:
        edits = self.edits if extra is None else [*self.edits, extra]
        return self.segmented.replace_words({e.word_index: e.edited for e in edits})


class AdversarialTypos(QueryPerturbation):
    """Greedy worst-case typos against ``scorer`` for the relevant candidates of each query.

    scorer: a ``pt.Transformer`` scoring (qid, query, docno, text[, lang]) rows; returns them with ``score``.
    qrels: qid, docno, label; candidates with label > 0 are the relevant ones. Queries without a relevant
        candidate are left unchanged (their scores are NaN in ``attack``).
    documents: docno -> text, as a mapping or a frame with ``docno`` and ``text`` (e.g. ``candidates``; to attack a
        retriever that encodes ``text + " " + context``, pass that text).
    budget: the strength, the most edits per query (>= 1); the search stops earlier when no edit lowers the score.
    candidates_per_step: the most candidate edits scored per query and step (>= 1).
    operations, word_filter: the typo protocol, as in ``CharacterNoise``.
    aggregate: how the scores of a query's relevant candidates combine into the objective ("mean", "max", "min").
    query_batch_size: queries whose candidate edits go to one scorer call.
    verbose: show progress.

    Input/output: see ``QueryPerturbation``; ``attack`` returns the search's record as well.
    """

    def __init__(
        self,
        scorer: pt.Transformer,
        qrels: pd.DataFrame,
        documents: pd.DataFrame | Mapping[str, str],
        budget: int = 1,
        *,
        candidates_per_step: int = 32,
        operations: Sequence[str] = DEFAULT_OPERATIONS,
        word_filter: WordFilter | None = None,
        aggregate: Literal["mean", "max", "min"] = "mean",
        query_batch_size: int = 256,
        verbose: bool = True,
        seed: int = 0,
        lang: str | None = None,
    ):
        for name, value in (("budget", budget), ("candidates_per_step", candidates_per_step),
                            ("query_batch_size", query_batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate must be one of {list(_AGGREGATES)}, got {aggregate!r}")
        if not callable(getattr(scorer, "transform", None)):
            raise TypeError(f"scorer must be a pt.Transformer, got {type(scorer).__name__}")
        missing = [c for c in ("qid", "docno", "label") if c not in qrels.columns]
        if missing:
            raise KeyError(f"qrels need columns qid, docno, label; missing {missing}")
        self.scorer = scorer
        relevant = qrels[qrels["label"] > 0]
        self.relevant: dict[str, list[str]] = {}
        for qid, docno in zip(relevant["qid"].astype(str), relevant["docno"].astype(str)):
            self.relevant.setdefault(qid, []).append(docno)
        if isinstance(documents, pd.DataFrame):
            missing = [c for c in ("docno", "text") if c not in documents.columns]
            if missing:
                raise KeyError(f"documents need columns docno, text; missing {missing}")
            documents = dict(zip(documents["docno"].astype(str), documents["text"]))
        self.documents: Mapping[str, str] = documents
        self.budget = budget
        self.candidates_per_step = candidates_per_step
        self.operations = check_operations(operations)
        self.word_filter = word_filter or WordFilter()
        self.aggregate = aggregate
        self.query_batch_size = query_batch_size
        self.verbose = verbose
        super().__init__(seed=seed, lang=lang)

    def __repr__(self) -> str:
        return (f"AdversarialTypos({self.scorer!r}, budget={self.budget}, candidates_per_step="
                f"{self.candidates_per_step}, operations={list(self.operations)}, seed={self.seed})")

    def check_language(self, lang: str) -> None:
        check_operation_language(self.operations, lang)
        self.word_filter.check_language(lang)

    # --- search -------------------------------------------------------------------------------------------------
    def _state(self, record: Mapping[str, Any]) -> _QueryState:
        lang, query = record["lang"], record["query"]
        segmented = SegmentedText.of(query, lang)
        words = segmented.words
        relevant = self.relevant.get(record["qid"], [])
        unknown = [d for d in relevant if d not in self.documents]
        if unknown:
            raise KeyError(f"relevant candidates of topic {record['qid']!r} are not in documents: {unknown[:5]}")
        return _QueryState(
            qid=record["qid"],
            lang=lang,
            query=query,
            segmented=segmented,
            word_graphemes=[graphemes(w, lang) for w in words],
            editable=self.word_filter.editable_indices(words, lang),
            alphabet=query_alphabet(words, lang),
            relevant=relevant,
        )

    def _candidates(self, state: _QueryState, step: int) -> list[WordEdit]:
        """Up to ``candidates_per_step`` clean single edits of not-yet-edited words, sampled by (seed, qid, step)."""
        rng = topic_rng(self.seed, state.qid, "adversarial", step)
        keyboard = keyboard_layout(state.lang) if "keyboard" in self.operations else None
        done = state.edited_words
        per_operation: list[list[tuple[int, GraphemeEdit]]] = []
        for operation in self.operations:
            pool = [
                (i, edit)
                for i in state.editable
                if i not in done
                for edit in candidate_edits(state.word_graphemes[i], operation, state.alphabet, keyboard)
            ]
            rng.shuffle(pool)
            per_operation.append(pool)
        chosen: list[WordEdit] = []
        seen: set[tuple[int, str]] = set()
        cursors = [0] * len(per_operation)
        while len(chosen) < self.candidates_per_step and any(c < len(p) for c, p in zip(cursors, per_operation)):
            for k, pool in enumerate(per_operation):  # round-robin over the operations
                while cursors[k] < len(pool) and len(chosen) < self.candidates_per_step:
                    i, edit = pool[cursors[k]]
                    cursors[k] += 1
                    if not is_clean_edit(state.word_graphemes[i], edit, state.lang):
                        continue
                    edited = "".join(edit.apply(state.word_graphemes[i]))
                    if (i, edited) in seen:  # e.g. deleting either of two equal neighbours
                        continue
                    seen.add((i, edited))
                    chosen.append(WordEdit(i, state.segmented.words[i], edited, edit))
                    break
        return chosen

    def _score(self, variants: list[tuple[_QueryState, str]]) -> list[float]:
        """The aggregated relevant-candidate score of each (state, query text), in one scorer call."""
        rows = []
        for k, (state, text) in enumerate(variants):
            for docno in state.relevant:
                rows.append({"qid": f"{state.qid}\x1f{k}", "query": text, "lang": state.lang, "docno": docno,
                             "text": self.documents[docno]})
        scored = self.scorer.transform(pd.DataFrame(rows))
        if "score" not in scored.columns:
            raise KeyError(f"the scorer returned no 'score' column (columns: {list(scored.columns)})")
        lookup = {(str(q), str(d)): float(s) for q, d, s in zip(scored["qid"], scored["docno"], scored["score"])}
        aggregate = _AGGREGATES[self.aggregate]
        out = []
        for k, (state, _) in enumerate(variants):
            try:
                scores = [lookup[(f"{state.qid}\x1f{k}", docno)] for docno in state.relevant]
            except KeyError as missing:
                raise KeyError(
                    f"the scorer dropped the row {missing.args[0]!r}: it must score every given row"
                ) from None
            out.append(float(aggregate(scores)))
        return out

    def _search(self, states: list[_QueryState], progress: tqdm | None) -> None:
        scores = self._score([(s, s.query) for s in states])
        for state, score in zip(states, scores):
            state.score_0 = state.score = score
        for step in range(self.budget):
            active = [s for s in states if s.active]
            variants: list[tuple[_QueryState, WordEdit]] = []
            for state in active:
                candidates = self._candidates(state, step)
                if not candidates:
                    state.active = False
                variants.extend((state, c) for c in candidates)
            if variants:
                scores = self._score([(state, state.text_with(edit)) for state, edit in variants])
                best: dict[int, tuple[float, WordEdit]] = {}  # keyed by id(state): qids may repeat
                for (state, edit), score in zip(variants, scores):
                    if id(state) not in best or score < best[id(state)][0]:  # first of equal scores: deterministic
                        best[id(state)] = (score, edit)
                for state in active:
                    if id(state) in best and best[id(state)][0] < state.score:
                        state.score, edit = best[id(state)]
                        state.edits.append(edit)
                    else:
                        state.active = False
            if progress is not None:
                progress.update(len(active))

    def attack(self, topics: pd.DataFrame) -> pd.DataFrame:
        """The search's record per topic, in topic order.

        Columns: qid, lang, query (attacked), query_0 (original), n_edits, edits (``WordEdit`` list), score_0 (the
        original query's aggregated relevant score), score (the attacked query's; <= score_0).
        """
        records = self.topic_records(topics)
        states = [self._state(r) for r in records]
        attackable = [s for s in states if s.relevant]
        for s in states:
            s.active = bool(s.relevant)
        progress = tqdm(total=len(attackable) * self.budget, desc="adversarial typos", unit="query-step",
                        disable=not self.verbose)
        for start in range(0, len(attackable), self.query_batch_size):
            self._search(attackable[start : start + self.query_batch_size], progress)
        progress.close()
        return pd.DataFrame(
            {
                "qid": [s.qid for s in states],
                "lang": [s.lang for s in states],
                "query": [s.text_with() for s in states],
                "query_0": [s.query for s in states],
                "n_edits": [len(s.edits) for s in states],
                "edits": [list(s.edits) for s in states],
                "score_0": [s.score_0 for s in states],
                "score": [s.score for s in states],
            }
        )

    def perturb(self, topic: Mapping[str, Any]) -> str:
        return self.attack(pd.DataFrame([topic]))["query"].iloc[0]

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        return self.with_queries(topics, list(self.attack(topics)["query"]))
