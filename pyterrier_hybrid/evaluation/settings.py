"""The LAReQA evaluation settings: every monolingual language, every ordered cross-lingual pair, the multilingual pool.

For languages L1..Ln a LAReQA collection is evaluated in

- n **monolingual** settings ``de``: questions in de, candidates in de;
- n(n-1) **cross-lingual** settings ``de-en``: questions in de (those with an answer in en), candidates in en;
- one **multilingual** setting (n >= 2): questions in every language, one pool of the candidates of every language,
  and every parallel answer (the answer sentence in each language) relevant. This is LAReQA's own setting.

XQuAD-R (11 languages) has 11 + 110 + 1 = 122 settings. The settings that share a candidate set (a monolingual
setting and the cross-lingual settings into the same document language) are grouped, so that a retriever is built
once per candidate set (see :func:`group_by_candidates`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

SettingType = Literal["monolingual", "cross-lingual", "multilingual"]
SETTING_TYPES: tuple[str, ...] = ("monolingual", "cross-lingual", "multilingual")

#: ``doc_lang`` of the multilingual pool in result frames (its candidates are in every evaluated language).
POOL_DOC_LANG = "all"
#: ``setting`` name of the multilingual pool in result frames.
MULTILINGUAL_SETTING_NAME = "multilingual"


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


def lareqa_settings(langs: Sequence[str], include_multilingual: bool = True) -> list[EvaluationSetting]:
    """All settings for ``langs``, in order: monolingual, cross-lingual (query language major), multilingual.

    The multilingual pool is added when there are at least two languages (with one it is the monolingual setting).
    """
    langs = tuple(langs)
    if not langs:
        raise ValueError("no languages to evaluate")
    if len(set(langs)) != len(langs):
        raise ValueError(f"duplicate languages in {list(langs)}")
    settings = [EvaluationSetting("monolingual", (lang,), (lang,)) for lang in langs]
    settings += [
        EvaluationSetting("cross-lingual", (query_lang,), (doc_lang,))
        for query_lang in langs
        for doc_lang in langs
        if query_lang != doc_lang
    ]
    if include_multilingual and len(langs) > 1:
        settings.append(EvaluationSetting("multilingual", langs, langs))
    return settings


def group_by_candidates(settings: Sequence[EvaluationSetting]) -> dict[tuple[str, ...], list[EvaluationSetting]]:
    """Settings grouped by their candidate languages, groups in order of first appearance.

    The runner builds one retriever per group: every setting with candidates in ``en`` (``en``, ``de-en``, ...)
    shares the index of the English candidates, and the pool gets its own.
    """
    groups: dict[tuple[str, ...], list[EvaluationSetting]] = {}
    for setting in settings:
        groups.setdefault(setting.doc_langs, []).append(setting)
    return groups
