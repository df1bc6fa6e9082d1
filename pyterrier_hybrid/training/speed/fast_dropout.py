"""Dropout with a cheap random mask, for training on CPU.

Why by hand: on CPU, torch draws a dropout mask one 32-bit Mersenne-Twister number per element, on one thread
(``bernoulli_``, ~10 ns per element). Profiled on the CPU preset's training step (e5-small, batch 32, bf16
autocast, two cores; benchmarks/README.md (e)), drawing the masks of the hidden and attention dropouts took 40% of
the step, more than all matrix products together. :func:`fast_dropout` draws the same Bernoulli mask from 15-bit
slices of 64-bit random words (``random_`` on an int64 tensor: one draw gives four mask elements), still from
torch's generator, so ``torch.manual_seed`` / the training seed make it reproducible.

What changes: a unit is dropped with probability round(p * 2**15) / 2**15 (p = 0.1: 0.1000061 instead of 0.1) and
the masks come from a different random stream than torch's, so a run is not bit-identical to one with
``torch.nn.Dropout``: the same recipe, another draw of its randomness (benchmarks/training_speed.py compares the
loss curves). What does not: the expectation (kept units are scaled by 1 / (1 - p)), the mask kept for the backward
pass (one byte per element, as torch's), evaluation (no dropout).

:func:`install_fast_dropout` swaps a model's ``nn.Dropout`` modules for :class:`FastDropout` and, for the encoder
families whose attention is the standard scaled dot product (BERT, RoBERTa, XLM-RoBERTa, ELECTRA), selects the
eager attention with the fast mask for its attention dropout (``transformers.AttentionInterface``); it returns a
function that puts the stock modules and attention back (the trainer calls it before saving the model). On CPU this
eager attention is also faster than the fused SDPA path, whose CPU kernels fall back to the unfused math when
dropout is on.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = ["FAST_ATTENTION", "FastDropout", "fast_dropout", "install_fast_dropout"]

_MASK_BITS = 15
#: Name under which the attention with the fast mask is registered with transformers.
FAST_ATTENTION = "eager_fast_dropout"
#: Model types whose attention modules call ``ALL_ATTENTION_FUNCTIONS`` with the standard eager signature.
STANDARD_ATTENTION_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "electra"})


class _MaskedScale(torch.autograd.Function):
    """``x * keep / (1 - p)`` keeping only the boolean mask for the backward pass (as ``native_dropout`` does)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x * keep * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return grad * keep * ctx.scale, None, None


def keep_mask(shape: torch.Size, p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A boolean mask of ``shape``: each element True (kept) with probability 1 - round(p * 2**15) / 2**15."""
    numel = math.prod(shape)
    # random_() on int64 gives uniform values in [0, 2**63): every bit but the top one is uniform, so each of the
    # four 16-bit slices of a word is uniform once its top bit is masked off.
    words = torch.empty((numel + 3) // 4, dtype=torch.int64, device=device).random_()
    slices = words.view(torch.int16)[:numel].reshape(shape) & ((1 << _MASK_BITS) - 1)
    return slices >= round(p * (1 << _MASK_BITS))


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Dropout of ``x`` with probability ``p`` (see the module docstring); ``x`` itself when not training."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    return _MaskedScale.apply(x, keep_mask(x.shape, p, x.device), 1.0 / (1.0 - p))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with the mask of :func:`fast_dropout` (same ``p``, same train / eval behaviour)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def eager_attention_fast_dropout(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 attention_mask: torch.Tensor | None, scaling: float | None = None,
                                 dropout: float = 0.0, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' eager attention (``modeling_bert.eager_attention_forward``) with :func:`fast_dropout`."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1)
    weights = fast_dropout(weights, dropout, module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(FAST_ATTENTION, eager_attention_fast_dropout)
    # Without a mask function of its own, transformers builds no padding mask at all for an attention it does not
    # know (it assumes an external backend): the eager attention needs the eager (additive) mask.
    AttentionMaskInterface.register(FAST_ATTENTION, eager_mask)


def install_fast_dropout(model: nn.Module) -> Callable[[], None]:
    """Use :class:`FastDropout` everywhere in ``model`` (and the fast attention where it is standard).

    Returns a function that restores the original modules and attention implementation.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                replacement = FastDropout(child.p, child.inplace)
                replacement.train(child.training)
                setattr(parent, name, replacement)
                swapped.append((parent, name, child))
    configs = []
    for module in model.modules():
        config = getattr(module, "config", None)
        if (getattr(config, "model_type", None) in STANDARD_ATTENTION_MODEL_TYPES
                and getattr(config, "_attn_implementation", None) in ("eager", "sdpa")
                and all(c is not config for c, _ in configs)):
            configs.append((config, config._attn_implementation))
    if configs:
        _register_attention()
        for config, _ in configs:
            config._attn_implementation = FAST_ATTENTION

    def restore() -> None:
        for parent, name, original in swapped:
            original.train(getattr(parent, name).training)
            setattr(parent, name, original)
        for config, implementation in configs:
            config._attn_implementation = implementation

    return restore
