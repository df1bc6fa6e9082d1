"""Code-switching: part of a query's words replaced by words of its translation in another language.

LAReQA questions are parallel (XQuAD-R: every question in all 11 languages; MLQA-R: in a subset), so the
translation is at hand: ``parallel_questions(topics)`` builds ``parallel_id -> {lang: question}`` from topics such
as ``lareqa_collection(name).topics()``.

Which target word replaces a source word needs a word alignment. No aligner is available offline here (SimAlign
and awesome-align need multilingual models), so the default aligns by relative position (source word i of n ->
target word round(i * (m - 1) / (n - 1)) of m): crude across word orders (SOV Hindi, VSO Arabic), but
deterministic and model-free; pass ``aligner`` for a better one. The switched words are real words of the
parallel question, which is what matters for a robustness study of mixed-language queries.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import pandas as pd

from .base import QueryPerturbation
from .text import SegmentedText, check_language_code, round_half_up, topic_rng

__all__ = ["CodeSwitch", "parallel_questions", "positional_alignment"]

Aligner = Callable[[Sequence[str], Sequence[str]], Sequence[int | None]]


def parallel_questions(topics: pd.DataFrame) -> dict[str, dict[str, str]]:
    """``parallel_id -> {lang: query}`` from topics with ``parallel_id``, ``lang`` and ``query`` columns."""
    missing = [c for c in ("parallel_id", "lang", "query") if c not in topics.columns]
    if missing:
        raise KeyError(f"parallel_questions needs topic columns parallel_id, lang, query; missing {missing}")
    out: dict[str, dict[str, str]] = {}
    for parallel_id, lang, query in zip(topics["parallel_id"], topics["lang"], topics["query"]):
        translations = out.setdefault(str(parallel_id), {})
        if lang in translations and translations[lang] != query:
            raise ValueError(f"two different {lang!r} questions share parallel_id {parallel_id!r}")
        translations[lang] = query
    return out


def positional_alignment(source: Sequence[str], target: Sequence[str]) -> list[int | None]:
    """Source word i -> the target word at the same relative position."""
    n, m = len(source), len(target)
    if m == 0:
        return [None] * n
    if n == 1:
        return [0]
    return [round_half_up(i * (m - 1) / (n - 1)) for i in range(n)]


class CodeSwitch(QueryPerturbation):
    """Replace a fraction of each query's words by the aligned words of its parallel question in another language.

    parallel: ``parallel_id -> {lang: question}`` (see ``parallel_questions``).
    to: the language to switch into, or several (one drawn per query by (seed, qid) among those other than the
        query's own language). A query whose language is the only target is left unchanged.
    strength: the fraction of the query's words to replace, in [0, 1] (rounded half up). Only words whose aligned
        target word differs (case-folded) and is not already linked to an earlier source word count as
        replaceable; a query has at most that many switched words.
    on_missing: "error" (default) raises when a query's parallel question in the drawn language is missing;
        "keep" leaves such a query unchanged (MLQA-R questions do not exist in every language).
    aligner: ``(source_words, target_words) -> target index or None per source word``; default
        ``positional_alignment``.

    Input: topics with ``qid``, ``query``, ``parallel_id`` and ``lang`` (or ``lang=``); output: see
    ``QueryPerturbation``. In Chinese and Thai queries, switched-in words are separated by spaces.
    """

    required_columns = ("qid", "query", "parallel_id")

    def __init__(
        self,
        parallel: Mapping[str, Mapping[str, str]],
        to: str | Sequence[str],
        strength: float = 0.5,
        *,
        on_missing: Literal["error", "keep"] = "error",
        aligner: Aligner | None = None,
        seed: int = 0,
        lang: str | None = None,
    ):
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength (fraction of words switched) must be in [0, 1], got {strength!r}")
        if on_missing not in ("error", "keep"):
            raise ValueError(f"on_missing must be 'error' or 'keep', got {on_missing!r}")
        targets = (to,) if isinstance(to, str) else tuple(to)
        if not targets:
            raise ValueError("to must name at least one language to switch into")
        self.targets = tuple(check_language_code(t) for t in targets)
        self.parallel = parallel
        self.strength = float(strength)
        self.on_missing = on_missing
        self.aligner = aligner or positional_alignment
        super().__init__(seed=seed, lang=lang)

    def __repr__(self) -> str:
        return f"CodeSwitch(to={list(self.targets)}, strength={self.strength}, seed={self.seed})"

    def target_language(self, lang: str, qid: str) -> str | None:
        choices = [t for t in self.targets if t != lang]
        if not choices:
            return None
        return topic_rng(self.seed, qid, "code-switch-language").choice(choices)

    def switch(self, query: str, lang: str, qid: str, parallel_id: str) -> tuple[str, dict[int, str]]:
        """The code-switched query and its switched words (source word index -> target word)."""
        target_lang = self.target_language(lang, qid)
        if target_lang is None:
            return query, {}
        translations = self.parallel.get(str(parallel_id), {})
        if target_lang not in translations:
            if self.on_missing == "keep":
                return query, {}
            raise KeyError(
                f"no {target_lang!r} question for parallel_id {parallel_id!r} (topic {qid!r}); it has "
                f"{sorted(translations)}. Pass on_missing='keep' to leave such queries unchanged"
            )
        source = SegmentedText.of(query, lang)
        target_words = SegmentedText.of(translations[target_lang], target_lang).words
        alignment = list(self.aligner(source.words, target_words))
        if len(alignment) != len(source.words):
            raise ValueError(f"the aligner returned {len(alignment)} links for {len(source.words)} source words")
        # A target word replaces at most one source word (the first aligned to it): when the source has more
        # words than the target, positional alignment links several source words to one target word.
        first_link: dict[int, int] = {}
        for i, j in enumerate(alignment):
            if j is not None:
                first_link.setdefault(j, i)
        replaceable = [
            i
            for j, i in sorted(first_link.items(), key=lambda link: link[1])
            if target_words[j].casefold() != source.words[i].casefold()
        ]
        count = min(round_half_up(self.strength * len(source.words)), len(replaceable))
        chosen = sorted(topic_rng(self.seed, qid, "code-switch-words").sample(replaceable, count))
        replacements = {i: target_words[alignment[i]] for i in chosen}
        return source.replace_words(replacements, space_out=True), replacements

    def perturb(self, topic: Mapping[str, Any]) -> str:
        return self.switch(topic["query"], topic["lang"], topic["qid"], topic["parallel_id"])[0]
