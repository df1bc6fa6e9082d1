"""Weight-space interpolation of a fine-tuned encoder with the model it started from (WiSE-FT, Wortsman et al.
2022, arXiv 2109.01903): ``start + weight * (trained - start)`` for every floating-point tensor, a plain
sentence-transformers model again.

Fine-tuning on a small collection moves a model away from what it knew; interpolating back towards the start is
the cheapest way to trade some of the gain for some of that knowledge (no training). Written here because
sentence-transformers has no model merging, and the arithmetic is one line per tensor once the two models are
checked to have the same weights.

    from pyterrier_hybrid.models.interpolation import interpolate_weights
    model = interpolate_weights("default", "runs/distilled", 0.5)
    model.save("runs/distilled-x0.5")
"""
from __future__ import annotations

from ..errors import UserError
from .resolve import load_sentence_transformer, resolve_model

__all__ = ["InterpolationError", "interpolate_weights"]


class InterpolationError(UserError, ValueError):
    """The two models cannot be interpolated, or the weight is not a number."""


def interpolate_weights(start, trained, weight: float, device: str | None = "cpu"):
    """The model ``trained`` with every floating-point weight ``w`` replaced by ``s + weight * (w - s)``, ``s`` the
    same weight of ``start`` (0: the start, 1: the trained model, between: WiSE-FT; above 1 extrapolates). Both are
    model arguments (a folder, a hub id, ``"default"``). Integer buffers (position ids) are the trained model's."""
    import math

    import torch

    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise InterpolationError(f"the interpolation weight must be a finite number, got {weight!r}")
    start_model = load_sentence_transformer(resolve_model(start), device=device)
    model = load_sentence_transformer(resolve_model(trained), device=device)
    start_weights, trained_weights = start_model.state_dict(), model.state_dict()
    if start_weights.keys() != trained_weights.keys():
        missing = sorted(start_weights.keys() ^ trained_weights.keys())
        raise InterpolationError(f"{start} and {trained} do not have the same weights (e.g. {missing[0]!r}): "
                                 "interpolate a fine-tuned model with the model it was trained from")
    mixed = {}
    for name, value in trained_weights.items():
        if start_weights[name].shape != value.shape:
            raise InterpolationError(f"weight {name!r} has shape {tuple(start_weights[name].shape)} in {start} and "
                                     f"{tuple(value.shape)} in {trained}")
        if value.is_floating_point():
            base = start_weights[name].to(value.dtype)
            mixed[name] = torch.lerp(base, value, float(weight))
        else:
            mixed[name] = value
    model.load_state_dict(mixed)
    return model
