"""The parallel groups of training examples: for every parallel id and language, the question asked in that language
and its answer passage in that language. Pooled batches are made of whole groups; the parallel distillation pulls
every member of a group towards one target of the group (the teacher's embedding of its English text, or the mean of
the teacher's embeddings of the group).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...datasets.candidates import candidate_text
from ...datasets.parallel import ParallelExample
from ...errors import UserError
from ..config import DISTILL_TARGETS

if TYPE_CHECKING:
    from ..losses.teacher import TeacherTable

__all__ = ["DistillationDataError", "ParallelGroups", "parallel_groups"]

ENGLISH = "en"


class DistillationDataError(UserError, ValueError):
    """The training examples cannot give what the distillation asks for (e.g. no parallel groups)."""


@dataclass(frozen=True)
class ParallelGroups:
    """One row per (parallel id, language) that has both the question and its answer passage in that language:
    the raw texts (the collator adds the prompts) and the group each row belongs to."""

    parallel_ids: tuple[str, ...]
    langs: tuple[str, ...]
    questions: tuple[str, ...]
    passages: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.parallel_ids)

    @property
    def num_groups(self) -> int:
        return len(set(self.parallel_ids))

    def target_rows(self, own_question: np.ndarray, own_passage: np.ndarray, table: TeacherTable,
                    target: str) -> tuple[np.ndarray, np.ndarray]:
        """Append each group's question and passage targets to ``table``; return per-row target indices."""
        import torch
        from torch import nn

        if target not in DISTILL_TARGETS:
            raise ValueError(f"unknown distillation target {target!r}; expected one of {DISTILL_TARGETS}")
        members: dict[str, list[int]] = defaultdict(list)
        for row, pid in enumerate(self.parallel_ids):
            members[pid].append(row)
        groups = list(members)
        result = []
        for own in (own_question, own_passage):
            vectors = table.embeddings[torch.as_tensor(own)]
            targets = []
            for pid in groups:
                rows = members[pid]
                english = [r for r in rows if self.langs[r] == ENGLISH]
                chosen = english if target == "english" and english else rows  # no English: the group mean
                targets.append(nn.functional.normalize(vectors[chosen].mean(0), dim=0))
            group_rows = table.append(torch.stack(targets))
            by_group = dict(zip(groups, group_rows.tolist()))
            result.append(np.array([by_group[pid] for pid in self.parallel_ids], dtype=np.int64))
        return result[0], result[1]


def parallel_groups(examples: Sequence[ParallelExample], candidate_text_mode: str) -> ParallelGroups:
    """The parallel groups of ``examples``: for every parallel id and language, the question asked in that language
    and the answer passage in that language (as ``candidate_text_mode`` builds it). Raises
    :class:`DistillationDataError` when no parallel id has texts in two languages."""
    questions: dict[tuple[str, str], str] = {}
    passages: dict[tuple[str, str], str] = {}
    for e in examples:
        questions.setdefault((e.parallel_id, e.query_lang), e.query)
        passages.setdefault((e.parallel_id, e.passage_lang),
                            candidate_text(e.passage_sentence, e.passage_context, candidate_text_mode))
    keys = sorted(k for k in questions if k in passages)
    langs_of: dict[str, set[str]] = defaultdict(set)
    for pid, lang in keys:
        langs_of[pid].add(lang)
    if not any(len(langs) > 1 for langs in langs_of.values()):
        raise DistillationDataError(
            "parallel distillation needs parallel groups (a question and its answer in two or more languages "
            "under one parallel id), but no parallel id of the training examples has texts in two languages"
        )
    return ParallelGroups(
        parallel_ids=tuple(k[0] for k in keys),
        langs=tuple(k[1] for k in keys),
        questions=tuple(questions[k] for k in keys),
        passages=tuple(passages[k] for k in keys),
    )
