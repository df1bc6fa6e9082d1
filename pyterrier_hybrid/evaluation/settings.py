"""The LAReQA evaluation settings as the runner uses them: grouped by candidate set.

The settings themselves (monolingual, cross-lingual, the multilingual pool) are defined once, in
:mod:`pyterrier_hybrid.datasets.settings`, and re-exported here. The settings that share a candidate set (a
monolingual setting and the cross-lingual settings into the same document language) are grouped, so that a
retriever is built once per candidate set (see :func:`group_by_candidates`).
"""
from __future__ import annotations

from typing import Sequence

# The settings are defined once, with the datasets (whose ir_datasets ids name them); the evaluation groups them.
from ..datasets.settings import (
    MULTILINGUAL_SETTING_NAME,
    POOL_DOC_LANG,
    SETTING_TYPES,
    EvaluationSetting,
    SettingType,
    lareqa_settings,
)

__all__ = [
    "MULTILINGUAL_SETTING_NAME",
    "POOL_DOC_LANG",
    "SETTING_TYPES",
    "EvaluationSetting",
    "SettingType",
    "group_by_candidates",
    "lareqa_settings",
]


def group_by_candidates(settings: Sequence[EvaluationSetting]) -> dict[tuple[str, ...], list[EvaluationSetting]]:
    """Settings grouped by their candidate languages, groups in order of first appearance.

    The runner builds one retriever per group: every setting with candidates in ``en`` (``en``, ``de-en``, ...)
    shares the index of the English candidates, and the pool gets its own.
    """
    groups: dict[tuple[str, ...], list[EvaluationSetting]] = {}
    for setting in settings:
        groups.setdefault(setting.doc_langs, []).append(setting)
    return groups
