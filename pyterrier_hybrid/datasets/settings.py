"""The LAReQA evaluation settings: every monolingual language, every ordered cross-lingual pair, the multilingual pool.

For languages L1..Ln a LAReQA collection is evaluated in

- n **monolingual** settings ``de``: questions in de, candidates in de;
- n(n-1) **cross-lingual** settings ``de-en``: questions in de (those with an answer in en), candidates in en;
- one **multilingual** setting (n >= 2): questions in every language, one pool of the candidates of every language,
  and every parallel answer (the answer sentence in each language) relevant. This is LAReQA's own setting.

XQuAD-R (11 languages) has 11 + 110 + 1 = 122 settings. This module is the one definition of them: the ir_datasets
ids (``lareqa/<collection>/<name>``, :mod:`pyterrier_hybrid.datasets.irds`), the evaluation runner and the
comparison's significance test all enumerate settings with :func:`lareqa_settings`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MULTILINGUAL_SETTING_NAME",
    "POOL_DOC_LANG",
    "SETTING_TYPES",
    "EvaluationSetting",
    "lareqa_settings",
    "setting_type_of",
]

SettingType = Literal["monolingual", "cross-lingual", "multilingual"]
SETTING_TYPES: tuple[str, ...] = ("monolingual", "cross-lingual", "multilingual")

#: ``doc_lang`` of the multilingual pool in result frames (its candidates are in every evaluated language).
POOL_DOC_LANG = "all"
#: ``setting`` name of the multilingual pool in result frames.
MULTILINGUAL_SETTING_NAME = "multilingual"


def setting_type_of(query_langs: Sequence[str], doc_langs: Sequence[str]) -> str:
    """The setting type of questions in ``query_langs`` against candidates in ``doc_langs``: a pool of several
    candidate languages is multilingual, one language for both monolingual, else cross-lingual."""
    if len(doc_langs) > 1:
        return "multilingual"
    return "monolingual" if tuple(query_langs) == tuple(doc_langs) else "cross-lingual"


@dataclass(frozen=True)
class EvaluationSetting:
    """Which questions are asked against which candidates.

    Attributes:
        setting_type: ``"monolingual"``, ``"cross-lingual"`` or ``"multilingual"``.
        query_langs: languages of the questions (one, except for the multilingual pool).
        doc_langs: languages of the candidates (one, except for the multilingual pool).
    """

    setting_type: SettingType
    query_langs: tuple[str, ...]
    doc_langs: tuple[str, ...]

    def __post_init__(self):
        if self.setting_type not in SETTING_TYPES:
            raise ValueError(f"unknown setting type {self.setting_type!r}; expected one of {SETTING_TYPES}")
        if not self.query_langs or not self.doc_langs:
            raise ValueError("a setting needs at least one query language and one document language")
        one_language = len(self.query_langs) == 1 and self.query_langs == self.doc_langs
        if self.setting_type == "monolingual" and not one_language:
            raise ValueError(f"a monolingual setting has one language for questions and candidates, got {self}")
        if self.setting_type == "cross-lingual" and not (
            len(self.query_langs) == 1 and len(self.doc_langs) == 1 and self.query_langs != self.doc_langs
        ):
            raise ValueError(f"a cross-lingual setting has one question and one other candidate language, got {self}")

    @property
    def name(self) -> str:
        """``de`` (monolingual), ``de-en`` (questions de, candidates en) or ``multilingual``; the same suffix as the
        ir_datasets ids ``lareqa/<collection>/<name>`` (the pool is ``lareqa/<collection>``)."""
        if self.setting_type == "monolingual":
            return self.query_langs[0]
        if self.setting_type == "cross-lingual":
            return f"{self.query_langs[0]}-{self.doc_langs[0]}"
        return MULTILINGUAL_SETTING_NAME

    @property
    def doc_lang(self) -> str:
        """The candidates' language, or :data:`POOL_DOC_LANG` for the multilingual pool."""
        return self.doc_langs[0] if len(self.doc_langs) == 1 else POOL_DOC_LANG


def lareqa_settings(langs: Sequence[str], include_multilingual: bool = True,
                    cross_pairs: Iterable[tuple[str, str]] | None = None) -> list[EvaluationSetting]:
    """All settings for ``langs``, in order: monolingual, cross-lingual (query language major), multilingual.

    The multilingual pool is added when there are at least two languages (with one it is the monolingual setting).
    ``cross_pairs``: only these (query language, document language) pairs, in this order, instead of every ordered
    pair (e.g. a balanced sample for a significance test).
    """
    langs = tuple(langs)
    if not langs:
        raise ValueError("no languages to evaluate")
    if len(set(langs)) != len(langs):
        raise ValueError(f"duplicate languages in {list(langs)}")
    if cross_pairs is None:
        cross_pairs = [(q, d) for q in langs for d in langs if q != d]
    settings = [EvaluationSetting("monolingual", (lang,), (lang,)) for lang in langs]
    settings += [EvaluationSetting("cross-lingual", (q,), (d,)) for q, d in cross_pairs]
    if include_multilingual and len(langs) > 1:
        settings.append(EvaluationSetting("multilingual", langs, langs))
    return settings
