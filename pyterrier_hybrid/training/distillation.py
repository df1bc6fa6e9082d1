"""Distillation from the frozen starting model: keep what the base model knows while training on a small collection.

Two terms, both a cosine distance between the student's embedding of a text and a fixed target computed by the
frozen starting model (the *teacher*):

- **base distillation** (``distill_base_weight``): every text of every batch is pulled towards the teacher's
  embedding of the same text (a self-anchor against forgetting);
- **parallel distillation** (``distill_parallel_weight``, Reimers & Gurevych 2020, arXiv 2004.09813:
  student(translation) -> teacher(source)): each translation of a question and of its answer passage is pulled
  towards one language-agnostic target of its parallel group, the teacher's embedding of the English text
  (``distill_target="english"``; the group's mean where it has no English text) or the mean of the teacher's
  embeddings of the whole group (``"mean"``). These batches come from a second dataset of the training collection's
  parallel groups, trained by sentence-transformers' multi-dataset training (one dataset per step, in turn with the
  contrastive batches).

Why cosine distance rather than mean squared error: retrieval scores by cosine, so only the direction of an
embedding matters, and the group mean is not a unit vector (MSE to it would pull against the model's normalisation).
For unit vectors MSE is the cosine distance times 2 / dimension, so the two differ only by that scale.

The teacher's embeddings are computed once per distinct text before training, without gradients, in evaluation
mode (no dropout), and kept as one table (:class:`TeacherTable`). The datasets carry integer indices into that
table in their ``label`` column (the collator turns them into a tensor), so a step pays no teacher forward pass and
nothing of the teacher is saved with the model.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    EmbedDistillLoss,
    MultipleNegativesRankingLoss,
)
from torch import Tensor, nn

from pyterrier_hybrid.datasets.parallel import ParallelExample

from ..datasets.candidates import candidate_text
from ..errors import UserError
from .config import DISTILL_TARGETS

logger = logging.getLogger(__name__)

__all__ = [
    "DISTILL_TARGETS",
    "DistillationDataError",
    "DistilledCachedMNRL",
    "DistilledMNRL",
    "ParallelDistillationLoss",
    "ParallelGroups",
    "TeacherTable",
    "parallel_groups",
]

ENGLISH = "en"


class DistillationDataError(UserError, ValueError):
    """The training examples cannot give what the distillation asks for (e.g. no parallel groups)."""


# --- the teacher's embeddings -----------------------------------------------------------------------------------------


class TeacherTable:
    """The frozen starting model's normalised embeddings of distinct texts, computed once.

    ``index(texts)`` gives the rows of texts (prompt included) in ``embeddings`` (float32, unit length); rows may be
    appended for targets derived from them (:meth:`append`).
    """

    def __init__(self, texts: Sequence[str], embeddings: Tensor):
        if len(texts) != len(embeddings):
            raise ValueError(f"{len(texts)} texts for {len(embeddings)} embeddings")
        self.rows: dict[str, int] = {}
        for text in texts:
            self.rows.setdefault(text, len(self.rows))
        if len(self.rows) != len(texts):
            raise ValueError("TeacherTable texts must be distinct")
        self.embeddings = embeddings.float()

    def __len__(self) -> int:
        return len(self.embeddings)

    @classmethod
    def encode(cls, model, texts: Sequence[str], *, batch_size: int = 64, bf16: bool = False,
               show_progress: bool = True) -> TeacherTable:
        """Encode every distinct text of ``texts`` (prompts already included) with ``model`` as it is now, in
        evaluation mode and without gradients; the model's training mode is restored afterwards."""
        distinct = list(dict.fromkeys(texts))
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
                # prompt="" : the texts carry their prompt already; no default prompt may be added twice.
                embeddings = model.encode(distinct, prompt="", batch_size=batch_size, convert_to_tensor=True,
                                          normalize_embeddings=True, show_progress_bar=show_progress)
        finally:
            model.train(was_training)
        return cls(distinct, embeddings.detach().float().cpu().clone())

    def index(self, texts: Sequence[str]) -> np.ndarray:
        try:
            return np.fromiter((self.rows[t] for t in texts), dtype=np.int64, count=len(texts))
        except KeyError as e:
            raise KeyError(f"text not in the teacher table: {str(e)[:80]}") from None

    def append(self, embeddings: Tensor) -> np.ndarray:
        """Add target rows (not texts) and return their indices."""
        start = len(self.embeddings)
        self.embeddings = torch.cat([self.embeddings, embeddings.float().cpu()])
        return np.arange(start, len(self.embeddings), dtype=np.int64)


def _cosine_distance_term(embeddings: Sequence[Tensor], targets: Sequence[Tensor], weight: float,
                          metric: EmbedDistillLoss) -> Tensor:
    return weight * metric.compute_loss_from_embeddings(list(embeddings), list(targets))


class _TeacherTerm(nn.Module):
    """``weight`` x the mean cosine distance between each column's student embeddings and the teacher rows named by
    the matching column of ``labels`` (B x columns indices into the table)."""

    def __init__(self, model, table: TeacherTable, weight: float):
        super().__init__()
        self.weight = float(weight)
        self.register_buffer("table", table.embeddings, persistent=False)
        # sentence-transformers' own reduction (mean over columns of the mean cosine distance per column).
        self.metric = EmbedDistillLoss(model, distance_metric="cosine")

    def forward(self, embeddings: Sequence[Tensor], labels: Tensor | None) -> Tensor:
        if labels is None or labels.dim() != 2 or labels.size(1) < len(embeddings):
            raise ValueError("distillation needs a label column of teacher-table indices, one per text column")
        targets = [self.table[labels[:, column].long()] for column in range(len(embeddings))]
        return _cosine_distance_term(embeddings, targets, self.weight, self.metric)


class DistilledMNRL(MultipleNegativesRankingLoss):
    """InfoNCE (sentence-transformers' MultipleNegativesRankingLoss) plus ``weight`` x the cosine distance of every
    text's embedding to the frozen base model's embedding of it. The dataset's ``label`` column holds, per row, the
    teacher-table index of each text column; with weight 0 this is exactly MultipleNegativesRankingLoss."""

    def __init__(self, model, table: TeacherTable, weight: float, **kwargs):
        super().__init__(model, **kwargs)
        self.teacher = _TeacherTerm(model, table, weight)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        loss = super().compute_loss_from_embeddings(embeddings, labels)
        if self.teacher.weight == 0:
            return loss
        return loss + self.teacher(embeddings, labels)


class DistilledCachedMNRL(CachedMultipleNegativesRankingLoss):
    """The cached (GradCache) form of :class:`DistilledMNRL`: the term is added where the cached loss computes its
    value and the gradients it caches for the embeddings, so both terms reach the encoder through the same
    mini-batch re-forward."""

    def __init__(self, model, table: TeacherTable, weight: float, **kwargs):
        super().__init__(model, **kwargs)
        self.teacher = _TeacherTerm(model, table, weight)

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        loss = super().calculate_loss(reps, labels, with_backward=with_backward)
        if self.teacher.weight == 0:
            return loss
        term = self.teacher([torch.cat(column) for column in reps], labels)
        if with_backward:
            term.backward()
            term = term.detach()
        return loss + term


class ParallelDistillationLoss(nn.Module):
    """The loss of the parallel distillation batches: for each text column (question, answer passage),
    ``parallel_weight`` x cosine distance to the group's target plus ``base_weight`` x cosine distance to the
    teacher's embedding of the text itself. ``labels``: B x 4 table indices (question target, passage target,
    question's own, passage's own)."""

    def __init__(self, model, table: TeacherTable, parallel_weight: float, base_weight: float = 0.0):
        super().__init__()
        self.model = model
        self.parallel_weight = float(parallel_weight)
        self.base_weight = float(base_weight)
        self.register_buffer("table", table.embeddings, persistent=False)
        self.metric = EmbedDistillLoss(model, distance_metric="cosine")

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        embeddings = embed_columns(self.model, list(sentence_features))
        columns = len(embeddings)
        if labels is None or labels.dim() != 2 or labels.size(1) != 2 * columns:
            raise ValueError(f"parallel distillation expects {2 * columns} label indices per row")
        labels = labels.long()
        targets = [self.table[labels[:, c]] for c in range(columns)]
        loss = _cosine_distance_term(embeddings, targets, self.parallel_weight, self.metric)
        if self.base_weight:
            own = [self.table[labels[:, columns + c]] for c in range(columns)]
            loss = loss + _cosine_distance_term(embeddings, own, self.base_weight, self.metric)
        return loss


# --- parallel groups -------------------------------------------------------------------------------------------------


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
