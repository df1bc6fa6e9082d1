"""What a robustness study runs: the options every study shares and the perturbation study's own, checked early.

:class:`StudyOptions` (collection, languages, subsample, seed, encoding) is shared by the perturbation study
(:class:`RobustnessConfig`, :mod:`.study`) and the domain shift (:mod:`.domain_shift`). Every value is checked
when the object is built, and :meth:`RobustnessConfig.check` checks what needs the data (languages, models) before
any model is built; problems are :class:`RobustnessError`, a user error naming them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...datasets import lareqa_collection
from ...datasets.candidates import CANDIDATE_TEXT_OPTIONS
from ...errors import UserError
from ...retrieval.system_specs import SystemOptions, check_systems, check_unique_names
from .report import KINDS

__all__ = ["PRESETS", "RobustnessConfig", "RobustnessError", "StudyOptions", "below_minimum"]

#: Subsample sizes of the named robustness presets.
PRESETS = {
    # max questions per language for the main runs / for the adversarial runs (None: all)
    "cpu": {"max_queries_per_lang": 50, "adversarial_max_queries_per_lang": 20},
    "full": {"max_queries_per_lang": None, "adversarial_max_queries_per_lang": 100},
}


class RobustnessError(UserError, ValueError):
    """A robustness or domain-shift run that cannot run as asked; names the problem."""


def below_minimum(values: dict[str, tuple[Any, int, bool]]) -> list[str]:
    """One problem per ``name: (value, minimum, None allowed)`` whose value is below its minimum."""
    return [f"{name} must be >= {minimum}{' or None (all)' if optional else ''}, got {value}"
            for name, (value, minimum, optional) in values.items()
            if not (optional and value is None) and value < minimum]


@dataclass(frozen=True)
class StudyOptions:
    """What every robustness-type run shares: the collection and languages, the subsample, the seed, and how the
    systems encode or index candidates.

    Attributes:
        collection: ``xquad-r`` or ``mlqa-r`` (``lareqa/`` and ``irds:`` prefixes are dropped).
        langs: evaluated languages (None: all of the collection's).
        max_queries_per_lang: at most this many questions per language, the same parallel questions in every
            language (None: all); see :data:`PRESETS`.
        answer_paragraphs_only: with ``max_queries_per_lang``, keep only the candidates of the sampled questions'
            answer paragraphs (tiny pools: smoke tests only; by default every candidate is kept).
        seed: of the perturbations and of the subsample.
        candidate_text / precision / batch_size: how the systems encode or index candidates.
        preset: the name of the subsample sizes' preset, recorded in run.json.
    """

    collection: str = "xquad-r"
    langs: tuple[str, ...] | None = None
    max_queries_per_lang: int | None = PRESETS["cpu"]["max_queries_per_lang"]
    answer_paragraphs_only: bool = False
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
        problems = below_minimum({"max_queries_per_lang": (self.max_queries_per_lang, 1, True),
                                  "batch_size": (self.batch_size, 1, False)})
        if self.candidate_text not in CANDIDATE_TEXT_OPTIONS:
            problems.append(f"candidate_text must be one of {CANDIDATE_TEXT_OPTIONS}, got {self.candidate_text!r}")
        if self.answer_paragraphs_only and self.max_queries_per_lang is None:
            problems.append("answer_paragraphs_only keeps the answer paragraphs of sampled questions: give "
                            "max_queries_per_lang (--max-queries-per-lang N) with it")
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
        return problems + below_minimum({
            "adversarial_max_queries_per_lang": (self.adversarial_max_queries_per_lang, 1, True),
            "adversarial_candidates": (self.adversarial_candidates, 1, False)})

    def check(self) -> tuple[str, ...]:
        """Fail before any model is built (a user error naming the problem) on an unknown collection or language, a
        model that does not exist, two systems with one name, or a code-switching target the collection lacks;
        returns the evaluated languages."""
        collection = lareqa_collection(self.collection)
        langs = tuple(collection.check_languages(self.langs))
        check_unique_names(check_systems(self.systems))
        if "codeswitch" in self.kinds and self.codeswitch_to != "all":
            collection.check_languages([t.strip() for t in self.codeswitch_to.split(",") if t.strip()])
        return langs


