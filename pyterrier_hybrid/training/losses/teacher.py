"""The frozen starting model (the *teacher*) of a distilling run: its embeddings of the training texts, computed
once (:class:`TeacherTable`), and the distillation term every distillation loss adds (:class:`TeacherTerm`).

The teacher's embeddings are computed once per distinct text before training, without gradients, in evaluation
mode (no dropout), and kept as one table. The datasets carry integer indices into that table in their ``label``
column (the collator turns them into a tensor), so a step pays no teacher forward pass and nothing of the teacher is
saved with the model.

Why cosine distance rather than mean squared error: retrieval scores by cosine, so only the direction of an
embedding matters, and the group mean is not a unit vector (MSE to it would pull against the model's normalisation).
For unit vectors MSE is the cosine distance times 2 / dimension, so the two differ only by that scale.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss
from torch import Tensor, nn

__all__ = ["TeacherTable", "TeacherTerm", "cosine_distance_term"]


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


def cosine_distance_term(embeddings: Sequence[Tensor], targets: Sequence[Tensor], weight: float,
                          metric: EmbedDistillLoss) -> Tensor:
    return weight * metric.compute_loss_from_embeddings(list(embeddings), list(targets))


class TeacherTerm(nn.Module):
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
        return cosine_distance_term(embeddings, targets, self.weight, self.metric)


