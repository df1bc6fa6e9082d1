"""Will a training batch fit in memory? A memory model of a bi-encoder training step and the decision it drives.

InfoNCE with in-batch negatives (MultipleNegativesRankingLoss) keeps the activations of every text of the batch
until the backward pass: batch 100 of passages with their paragraph at 512 tokens needs an estimated 88 GiB in
float32 (each 512-token passage keeps about 0.6 GiB of activations), and the kernel kills the process without a
message. sentence-transformers' CachedMultipleNegativesRankingLoss
(GradCache, Gao et al. 2021) computes the same loss and the same gradients in mini-batches: it embeds the whole
batch without a graph, computes the loss and the gradient of every embedding, then re-encodes one mini-batch at a
time with a graph and back-propagates its embeddings' gradients. Its activations are those of one mini-batch of one
column. So before training, :func:`plan_batch_memory` estimates the peak and keeps MNRL when it fits, else picks the
cached loss with the largest mini-batch that fits, else stops with a :class:`MemoryBudgetError` naming the options
to change.

The model (:func:`estimate_peak_bytes`)::

    peak = resident + trainable x 4 bytes x 3 (gradient, AdamW's two moments)
           + sum over the columns encoded with a graph at once of
             sequences x L x layers x (a x hidden + b x heads x L)        [activations; L: padded length]

where ``layers`` counts the layers from the lowest trained one up (frozen lower layers keep no activations, so a
run with most layers frozen may fit the one-pass loss where full fine-tuning needs the cached one).

``resident`` is measured (the process after loading the model and data); the parameter term is exact; ``a`` and
``b`` (bytes per token, layer and hidden unit / per head and key position) are fitted to peaks measured with
``benchmarks/training_memory.py --calibrate`` on multilingual-e5-small (BERT, 12 layers, 384 hidden, 12 heads), for
float32 and bfloat16 autocast separately. The ``b`` term is attention: its scores, softmax and dropout mask are
L x L per head. Padded lengths come from tokenising a sample of each column (sentence-transformers pads a batch
to its longest text, so a batch of 100 nearly always reaches the longest texts of the data, up to the token limit).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyterrier_hybrid.errors import UserError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

__all__ = [
    "ACTIVATION_COEFFICIENTS",
    "ActivationCoefficients",
    "EncoderShape",
    "MINI_BATCH_TOKENS",
    "MemoryBudgetError",
    "MemoryPlan",
    "SAFETY_FRACTION",
    "activation_bytes",
    "available_memory_bytes",
    "current_resident_bytes",
    "estimate_peak_bytes",
    "fit_coefficients",
    "memory_budget_bytes",
    "padded_lengths",
    "plan_batch_memory",
    "text_sample",
]

GIB = 2**30
# Share of the available memory a training run may plan to use: the estimate is a model, the allocator fragments,
# and other processes' use moves while training runs.
SAFETY_FRACTION = 0.8
# Upper bound on the padded tokens of a mini-batch the plan picks when it switches to the cached loss (8 passages
# of 512 tokens: matrix products of 4,096 rows, already large enough for the CPU's and GPU's kernels).
MINI_BATCH_TOKENS = 4096


class MemoryBudgetError(UserError, ValueError):
    """No batch layout of the configured training fits in the memory budget (the message names the options)."""


@dataclass(frozen=True)
class ActivationCoefficients:
    """Bytes kept for the backward pass per token and layer: ``per_hidden`` x hidden size + ``per_attention`` x
    heads x padded length."""

    per_hidden: float
    per_attention: float


# Fitted by `python benchmarks/training_memory.py --calibrate` to the measured one-step peaks of
# multilingual-e5-small (4 float32 points, 4,096-8,192 tokens at lengths 128-512; least squares, then scaled up 1.3x
# so that no point is under-estimated; points and fit in benchmarks/results/training_memory/calibration.*). Per token
# and layer that is 106 KB at 128 tokens (measured 63) and 141 KB at 512 (measured 104-107): conservative.
# bfloat16 autocast keeps *more* than float32 at the same shapes (its bf16 copies beside the float32 tensors): two
# points measured after the runs, 4x512 and 16x128, hold 4.89 and 3.85 GiB of activations against float32's 4.78 and
# 2.89; the float32 coefficients in use give 6.48 and 4.86 for them, a 25-32% margin, so bf16 uses them too (its own
# two-point fit, 199.4 / 4.91, would have no margin at all).
ACTIVATION_COEFFICIENTS: dict[str, ActivationCoefficients] = {
    "fp32": ActivationCoefficients(per_hidden=245.9, per_attention=7.66),
    "bf16": ActivationCoefficients(per_hidden=245.9, per_attention=7.66),
}


@dataclass(frozen=True)
class EncoderShape:
    """What the memory model needs to know of the encoder."""

    layers: int
    hidden_size: int
    heads: int
    trainable_parameters: int
    #: Layers whose activations the backward pass needs: those from the lowest trained layer up (None: all). Below
    #: it nothing requires a gradient, so autograd keeps nothing (frozen lower layers).
    graph_layers: int | None = None

    @property
    def layers_with_graph(self) -> int:
        return self.layers if self.graph_layers is None else self.graph_layers

    @classmethod
    def of(cls, model: SentenceTransformer) -> EncoderShape:
        auto_model = model[0].auto_model
        config = auto_model.config
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return cls(config.num_hidden_layers, config.hidden_size, config.num_attention_heads, trainable,
                   _layers_from_lowest_trained(auto_model))


def _layers_from_lowest_trained(auto_model) -> int | None:
    """How many transformer layers lie at or above the lowest one with a trained weight; None when the embeddings
    train or the layers cannot be found (every layer keeps its activations)."""
    from .trainable import transformer_layers

    layers = transformer_layers(auto_model)
    embeddings = getattr(auto_model, "embeddings", None)
    if layers is None or embeddings is None or any(w.requires_grad for w in embeddings.parameters()):
        return None
    for index, layer in enumerate(layers):
        if any(w.requires_grad for w in layer.parameters()):
            return len(layers) - index
    return 0


@dataclass(frozen=True)
class MemoryPlan:
    """The loss and mini-batch a run uses, and why (recorded in ``training_config.json`` under run.memory_plan)."""

    loss: str
    mini_batch_size: int | None
    estimated_peak_gib: float
    budget_gib: float
    configured_loss: str
    column_lengths: tuple[int, ...]
    reason: str

    @property
    def switched(self) -> bool:
        return self.loss != self.configured_loss

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["column_lengths"] = list(self.column_lengths)
        return data


def activation_bytes(
    encoder: EncoderShape, sequences: int, length: int, precision: str,
    coefficients: dict[str, ActivationCoefficients] | None = None,
) -> float:
    """Bytes of activations kept for the backward pass when ``sequences`` texts padded to ``length`` tokens are
    encoded with a graph."""
    c = (coefficients or ACTIVATION_COEFFICIENTS)[precision]
    per_token_layer = c.per_hidden * encoder.hidden_size + c.per_attention * encoder.heads * length
    return float(sequences) * length * encoder.layers_with_graph * per_token_layer


def estimate_peak_bytes(
    encoder: EncoderShape,
    column_lengths: Sequence[int],
    batch_size: int,
    *,
    bf16: bool,
    loss: str,
    mini_batch_size: int | None = None,
    resident_bytes: float = 0.0,
) -> float:
    """Estimated peak resident bytes of a training step (see the module docstring). ``column_lengths``: padded
    tokens of each text column (anchor, positive[, negative]); ``loss``: "mnrl" or "cached-mnrl"."""
    precision = "bf16" if bf16 else "fp32"
    parameters = 3.0 * 4 * encoder.trainable_parameters
    if loss == "mnrl":
        activations = sum(activation_bytes(encoder, batch_size, length, precision) for length in column_lengths)
    elif loss == "cached-mnrl":
        if not mini_batch_size:
            raise ValueError("cached-mnrl needs a mini-batch size")
        sequences = min(mini_batch_size, batch_size)
        # One mini-batch of one column has a graph at a time; the cached embeddings are batch x hidden (tiny).
        activations = max(activation_bytes(encoder, sequences, length, precision) for length in column_lengths)
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return resident_bytes + parameters + activations


def plan_batch_memory(
    encoder: EncoderShape,
    column_lengths: Sequence[int],
    batch_size: int,
    *,
    bf16: bool,
    loss: str,
    mini_batch_size: int,
    resident_bytes: float,
    budget_bytes: float,
    budget_source: str = "",
) -> MemoryPlan:
    """The loss and mini-batch size to train with inside ``budget_bytes`` (a pure function of its arguments).

    - "mnrl" that fits: kept.
    - "mnrl" that does not fit: "cached-mnrl" with the largest mini-batch that fits (a multiple of 8 from 8 up) and
      holds at most ``MINI_BATCH_TOKENS`` padded tokens.
    - "cached-mnrl": the configured mini-batch if it fits, else the largest smaller one that fits.
    - nothing fits (a mini-batch of one text is too large): :class:`MemoryBudgetError` naming the options.
    """
    lengths = tuple(int(length) for length in column_lengths)

    def estimate(loss_name: str, mini: int | None = None) -> float:
        return estimate_peak_bytes(encoder, lengths, batch_size, bf16=bf16, loss=loss_name, mini_batch_size=mini,
                                   resident_bytes=resident_bytes)

    def plan(loss_name: str, mini: int | None, reason: str) -> MemoryPlan:
        return MemoryPlan(loss_name, mini, round(estimate(loss_name, mini) / GIB, 2), round(budget_bytes / GIB, 2),
                          loss, lengths, reason)

    budget_text = f"{budget_bytes / GIB:.1f} GiB{f' ({budget_source})' if budget_source else ''}"
    if loss == "mnrl" and estimate("mnrl") <= budget_bytes:
        return plan("mnrl", None,
                    f"batch {batch_size} fits: estimated {estimate('mnrl') / GIB:.1f} GiB of {budget_text}")
    if loss == "cached-mnrl":
        largest = min(batch_size, mini_batch_size)
    else:
        # Chosen here: no more texts per mini-batch than MINI_BATCH_TOKENS tokens, since larger mini-batches use
        # more memory without making the matrix products faster.
        largest = min(batch_size, max(1, MINI_BATCH_TOKENS // max(lengths)))
    fitting = [m for m in range(largest, 0, -1) if estimate("cached-mnrl", m) <= budget_bytes]
    if not fitting:
        raise MemoryBudgetError(
            f"training does not fit in {budget_text}: even one text at a time (cached-mnrl, mini-batch 1) needs an "
            f"estimated {estimate('cached-mnrl', 1) / GIB:.1f} GiB with padded lengths {'/'.join(map(str, lengths))} "
            "tokens; lower --max-seq-length, use --bf16 or --freeze-word-embeddings, or raise --max-memory-gb if "
            "more memory is really free"
        )
    mini = fitting[0]
    if mini >= 8:
        mini -= mini % 8  # multiples of 8 keep the mini-batches' matrix shapes friendly to the kernels
    if loss == "cached-mnrl" and mini == min(batch_size, mini_batch_size):
        return plan("cached-mnrl", mini, f"cached-mnrl mini-batch {mini} fits: estimated "
                    f"{estimate('cached-mnrl', mini) / GIB:.1f} GiB of {budget_text}")
    before = (f"batch {batch_size} with mnrl needs an estimated {estimate('mnrl') / GIB:.1f} GiB" if loss == "mnrl"
              else f"cached-mnrl mini-batch {mini_batch_size} needs an estimated "
                   f"{estimate('cached-mnrl', mini_batch_size) / GIB:.1f} GiB")
    return plan("cached-mnrl", mini, f"{before}, more than {budget_text}: training with cached-mnrl (same loss and "
                f"gradients) in mini-batches of {mini} (estimated {estimate('cached-mnrl', mini) / GIB:.1f} GiB)")


# --- the machine --------------------------------------------------------------------------------------------------


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory_bytes() -> int:
    """Memory this process may still take: MemAvailable of /proc/meminfo (psutil elsewhere), and no more than a
    cgroup (v2) limit leaves, where a container sets one."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if available is None:
        import psutil

        available = int(psutil.virtual_memory().available)
    limit = _read_int(Path("/sys/fs/cgroup/memory.max"))
    usage = _read_int(Path("/sys/fs/cgroup/memory.current"))
    if limit is not None and usage is not None:
        available = min(available, max(0, limit - usage))
    return available


def current_resident_bytes() -> int:
    """Resident memory of this process now."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import psutil

        return int(psutil.Process().memory_info().rss)


def memory_budget_bytes(max_memory_gb: float | None, resident: int) -> tuple[float, str]:
    """(budget in bytes, where it comes from): ``max_memory_gb`` GiB if given, else what this process holds plus
    ``SAFETY_FRACTION`` of the memory still available."""
    if max_memory_gb is not None:
        return max_memory_gb * GIB, "--max-memory-gb"
    available = available_memory_bytes()
    return resident + SAFETY_FRACTION * available, f"{SAFETY_FRACTION:.0%} of {available / GIB:.1f} GiB available"


def padded_lengths(
    model: SentenceTransformer, columns: Sequence[Sequence[str]], prompts: Sequence[str], sample: int = 2000,
    seed: int = 0,
) -> tuple[int, ...]:
    """Longest token count (capped at the model's token limit) of a seeded sample of each text column, prompt
    included: the padded length a large batch reaches."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tokenizer = model.tokenizer
    limit = model.max_seq_length or tokenizer.model_max_length
    lengths = []
    for texts, prompt in zip(columns, prompts):
        picks = rng.choice(len(texts), size=min(sample, len(texts)), replace=False) if len(texts) else []
        encoded = tokenizer([prompt + texts[int(i)] for i in picks], truncation=True, max_length=limit)["input_ids"]
        lengths.append(min(limit, max((len(ids) for ids in encoded), default=1)))
    return tuple(lengths)


def fit_coefficients(points: Sequence[dict[str, Any]], encoder: EncoderShape) -> ActivationCoefficients:
    """Least-squares ``a``, ``b`` from measured points (dicts with sequences, length and activation_bytes: the peak
    minus the resident memory before the step minus the exact parameter term)."""
    import numpy as np

    rows = [[p["sequences"] * p["length"] * encoder.layers * encoder.hidden_size,
             p["sequences"] * p["length"] * encoder.layers * encoder.heads * p["length"]] for p in points]
    (a, b), *_ = np.linalg.lstsq(np.array(rows, float), np.array([p["activation_bytes"] for p in points], float),
                                 rcond=None)
    return ActivationCoefficients(per_hidden=max(0.0, float(a)), per_attention=max(0.0, float(b)))


def text_sample(dataset, size: int = 2000, seed: int = 0) -> dict[str, list[str]]:
    """Texts of each loss column of ``dataset`` (a Dataset, a streamed one, or a DatasetDict of them), for the
    memory planner: all of an in-memory dataset's, a seeded sample of ``size`` keys of a streamed one's (reading
    every key would read every document)."""
    import numpy as np
    from datasets import DatasetDict

    parts = list(dataset.values()) if isinstance(dataset, DatasetDict) else [dataset]
    columns: dict[str, list[str]] = {}
    rng = np.random.default_rng(seed)
    for part in parts:
        if "row" in part.column_names and "pair" in part.column_names:
            keys = rng.choice(len(part), size=min(size, len(part)), replace=False)
            texts = part[[int(k) for k in keys]]
        else:
            texts = {c: part[c] for c in ("anchor", "positive", "negative") if c in part.column_names}
        for column, values in texts.items():
            columns.setdefault(column, []).extend(values)
    return columns
