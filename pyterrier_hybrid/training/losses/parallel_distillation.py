"""The loss of the parallel distillation batches (``distill_parallel_weight``, Reimers & Gurevych 2020, arXiv
2004.09813: student(translation) -> teacher(source)): each translation of a question and of its answer passage is
pulled towards one language-agnostic target of its parallel group
(:mod:`pyterrier_hybrid.training.sources.parallel_groups`), as a cosine distance
(:mod:`pyterrier_hybrid.training.losses.teacher`).
"""
from __future__ import annotations

from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss
from torch import Tensor, nn

from .teacher import TeacherTable, cosine_distance_term

__all__ = ["ParallelDistillationLoss"]


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
        embeddings = embed_columns(self.model, list(sentence_features))
        columns = len(embeddings)
        if labels is None or labels.dim() != 2 or labels.size(1) != 2 * columns:
            raise ValueError(f"parallel distillation expects {2 * columns} label indices per row")
        labels = labels.long()
        targets = [self.table[labels[:, c]] for c in range(columns)]
        loss = cosine_distance_term(embeddings, targets, self.parallel_weight, self.metric)
        if self.base_weight:
            own = [self.table[labels[:, columns + c]] for c in range(columns)]
            loss = loss + cosine_distance_term(embeddings, own, self.base_weight, self.metric)
        return loss
