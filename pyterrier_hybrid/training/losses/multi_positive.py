"""Multi-positive InfoNCE, the loss of pooled batches (:mod:`pyterrier_hybrid.training.regimes.pooled`).

In the multilingual setting a question's answer exists in every language of the pool and all of them must rank above
every other sentence. In a pooled batch every translation of the answer is a positive of every translation of the
question, and every sentence of the other groups, in every language, is a negative.

- :class:`MultiPositiveRankingLoss`: InfoNCE with several positives per query (sentence-transformers has none): each
  positive is scored against the query's negatives only (other positives are not negatives), and the loss is the mean
  over positives of ``-log(exp(s_p) / (exp(s_p) + sum_n exp(s_n)))``. With one positive per query it is exactly
  MultipleNegativesRankingLoss. The ``label`` column holds each row's group code.
- :class:`CachedMultiPositiveRankingLoss`: the same loss with GradCache (sentence-transformers' ``CachedLossMixin``,
  the machinery of its CachedMultipleNegativesRankingLoss): texts are embedded in mini-batches, so a batch of many
  groups fits in memory; the loss and its gradients are those of the one-pass loss.
"""
from __future__ import annotations

import torch
from sentence_transformers.base.losses.gradcache import CachedLossMixin
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.util import cos_sim
from torch import Tensor, nn

__all__ = ["CachedMultiPositiveRankingLoss", "MultiPositiveRankingLoss"]


class MultiPositiveRankingLoss(nn.Module):
    """InfoNCE over in-batch candidates where every candidate with the query's label is a positive (see the module
    docstring). Inputs: (anchor, positive) columns and a ``label`` column of group codes."""

    def __init__(self, model, scale: float = 20.0, similarity_fct=cos_sim):
        super().__init__()
        self.model = model
        self.scale = float(scale)
        self.similarity_fct = similarity_fct

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        embeddings = embed_columns(self.model, list(sentence_features))
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        queries, candidates = embeddings[0], embeddings[1]
        scores = self.similarity_fct(queries, candidates) * self.scale  # (queries, candidates)
        labels = labels.to(scores.device).view(-1)
        positive = labels[:, None] == labels[None, :]
        # log of the sum over negatives, per query: every positive is set against the same negatives
        negatives_lse = torch.logsumexp(scores.masked_fill(positive, float("-inf")), dim=1, keepdim=True)
        # -log(e^s / (e^s + N)) = log(e^s + N) - s = logaddexp(s, log N) - s
        per_pair = torch.logaddexp(scores, negatives_lse) - scores
        per_query = (per_pair * positive).sum(1) / positive.sum(1)
        return per_query.mean()

    def get_config_dict(self) -> dict:
        return {"scale": self.scale, "similarity_fct": self.similarity_fct.__name__}


class CachedMultiPositiveRankingLoss(CachedLossMixin, MultiPositiveRankingLoss):
    """:class:`MultiPositiveRankingLoss` with gradient caching (GradCache, Gao et al. 2021): every column is embedded
    without a graph in mini-batches of ``mini_batch_size`` texts, the loss over the whole batch gives the gradients
    of the embeddings, and each mini-batch is embedded again with a graph to carry them into the model. Memory grows
    with the mini-batch, not the batch; the loss and gradients equal the one-pass loss's (dropout replayed)."""

    def __init__(self, model, scale: float = 20.0, similarity_fct=cos_sim, mini_batch_size: int = 32):
        super().__init__(model, scale=scale, similarity_fct=similarity_fct)
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be at least 1, got {mini_batch_size}")
        self.mini_batch_size = int(mini_batch_size)

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        return self.forward_cached(sentence_features, labels)

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        # The score matrix of a pooled batch (a few hundred rows) is small: the loss is computed in one piece.
        loss = self.compute_loss_from_embeddings([torch.cat(column) for column in reps], labels)
        if with_backward:
            loss.backward()
            loss = loss.detach()
        return loss

    def get_config_dict(self) -> dict:
        return {**super().get_config_dict(), "mini_batch_size": self.mini_batch_size}
