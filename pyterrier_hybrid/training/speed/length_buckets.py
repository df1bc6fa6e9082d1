"""Length-bucketed forward passes for training: less padding, the same loss.

A training batch is padded to its longest text. LAReQA's answer sentences vary a lot in length: in batches of 32
MLQA-R pairs (e5 tokenizer, 128 tokens at most) the padded passage column holds 2.4 times the real tokens and the
question column 1.8 times; every matrix product, and attention quadratically, pays for the padding. During
training, :func:`install_length_buckets` makes the encoder's transformer module sort each column's rows by length,
split them into ``buckets`` groups and run each group trimmed to its own longest text (4 groups: 1.3 and 1.2 times
the real tokens). The token embeddings are padded back and put in the original order, so pooling, the loss and the
gradients are those of the unbucketed batch up to floating-point rounding (tests/test_length_buckets.py); only
dropout masks are drawn per group. Why by hand: sentence-transformers pads each column of a batch as one block and
has no bucketing inside a batch (its samplers only group whole batches).

Only where it is exact: text inputs, right padding, 2-D ``input_ids`` / ``attention_mask``, no hidden states
requested, the module in training mode, at least ``2 * min_rows`` rows. Otherwise the stock forward runs.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

__all__ = ["bucket_rows", "install_length_buckets"]


def bucket_rows(lengths: torch.Tensor, buckets: int, min_rows: int) -> list[torch.Tensor]:
    """Row indices sorted by length and split into at most ``buckets`` groups of at least ``min_rows`` rows."""
    groups = max(1, min(buckets, lengths.numel() // max(1, min_rows)))
    order = torch.argsort(lengths, stable=True)
    return [part for part in torch.tensor_split(order, groups) if part.numel()]


def _bucketable(module: nn.Module, features: dict[str, Any]) -> bool:
    ids, mask = features.get("input_ids"), features.get("attention_mask")
    tokenizer = getattr(module, "tokenizer", None)
    config = getattr(getattr(module, "model", None), "config", None)
    return (
        module.training
        and features.get("modality", "text") == "text"
        and getattr(module, "module_output_name", None) == "token_embeddings"
        and isinstance(ids, torch.Tensor) and isinstance(mask, torch.Tensor)
        and ids.dim() == 2 and mask.shape == ids.shape
        and getattr(tokenizer, "padding_side", "right") == "right"
        and not getattr(config, "output_hidden_states", False)
    )


def install_length_buckets(model: nn.Module, buckets: int = 4, min_rows: int = 8) -> Callable[[], None]:
    """Bucket the rows of every training forward of ``model``'s first (transformer) module by length.

    Returns a function that restores the stock forward. ``buckets`` < 2 installs nothing.
    """
    transformer = model[0] if isinstance(model, nn.Sequential) else model
    if buckets < 2 or "forward" in vars(transformer):
        return lambda: None
    stock_forward = transformer.forward

    def bucketed_forward(features: dict[str, Any], **kwargs) -> dict[str, Any]:
        if not _bucketable(transformer, features):
            return stock_forward(features, **kwargs)
        ids, mask = features["input_ids"], features["attention_mask"]
        rows, width = ids.shape
        lengths = mask.sum(dim=1)
        groups = bucket_rows(lengths, buckets, min_rows)
        if len(groups) < 2:
            return stock_forward(features, **kwargs)
        pieces = []
        for rows_of_group in groups:
            length = int(lengths[rows_of_group].max())
            sub = {}
            for key, value in features.items():
                if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[:2] == (rows, width):
                    sub[key] = value[rows_of_group, :length]
                elif isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == rows:
                    sub[key] = value[rows_of_group]
                else:
                    sub[key] = value
            tokens = stock_forward(sub, **kwargs)["token_embeddings"]
            pieces.append(nn.functional.pad(tokens, (0, 0, 0, width - tokens.shape[1])))
        inverse = torch.empty(rows, dtype=torch.long, device=ids.device)
        inverse[torch.cat(groups)] = torch.arange(rows, device=ids.device)
        features["token_embeddings"] = torch.cat(pieces)[inverse]
        return features

    transformer.forward = bucketed_forward

    def restore() -> None:
        if vars(transformer).get("forward") is bucketed_forward:
            del transformer.forward

    return restore
