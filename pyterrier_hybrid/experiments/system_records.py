"""The systems an experiment evaluates: one record type for what a system is, one for what its evaluation gave.

A :class:`SystemEntry` describes a system (label, folder name, model, seed and training alpha for a trained model,
whether it was trained with a recipe of its own, extra :class:`~pyterrier_hybrid.retrieval.system_specs.SystemSpec`
options such as debiasing); the comparison and the robustness study both plan their systems as entries. A
:class:`SystemRun` is an entry with its evaluation: the result, the top runs kept for significance tests and the
run record saved beside them.

Parsing and checking a system string, and finding a system's encoder, live in
:mod:`pyterrier_hybrid.retrieval.system_specs`; they are re-exported here for the experiments' callers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..retrieval.system_specs import (
    SystemOptions,
    SystemSpec,
    build_factory,
    check_model,
    find_encoder,
    parse_system,
)

__all__ = [
    "SharedEncodings",
    "SystemEntry",
    "SystemRun",
    "check_model",
    "find_encoder",
    "parse_system",
    "slug",
    "system_factory",
    "training_alpha",
]


def slug(text: str) -> str:
    """``text`` as a folder name: letters, digits, ``-_.`` kept, anything else ``-``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "system"


def training_alpha(model: str) -> float | None:
    """The hybrid-batch ratio alpha a model folder was trained with (its ``training_config.json``), if any."""
    path = Path(model) / "training_config.json"
    if not path.is_file():
        return None
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["config"]["alpha"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class SystemEntry:
    """One system to evaluate; ``seed`` and ``alpha`` are None for BM25 and untrained encoders.

    ``spec_options``: extra :class:`~pyterrier_hybrid.retrieval.system_specs.SystemSpec` fields as (name, value) pairs,
    e.g. ``(("debias", "METHOD"),)``; empty for a plain system.
    ``own_recipe``: a trained system with a training configuration of its own (a comparison's
    :class:`~pyterrier_hybrid.experiments.presets.RecipeSystem`): known by its label, not by its ``alpha``.
    """

    label: str
    slug: str
    model: str
    seed: int | None = None
    alpha: float | None = None
    spec_options: tuple[tuple[str, Any], ...] = ()
    own_recipe: bool = False

    @classmethod
    def from_spec(cls, spec: SystemSpec, *, alpha: float | None = None) -> "SystemEntry":
        """The entry of a parsed system string, labelled with its name."""
        return cls(spec.name, slug(spec.name), spec.model, None, alpha, spec.options())

    @property
    def is_bm25(self) -> bool:
        return self.spec().is_bm25

    @property
    def by_alpha(self) -> bool:
        """A paper regime: trained with the shared training and known by its alpha (the sweep's systems)."""
        return self.alpha is not None and not self.own_recipe

    def spec(self) -> SystemSpec:
        """The system as :func:`~pyterrier_hybrid.retrieval.system_specs.build_factory` takes it."""
        return SystemSpec(self.slug, self.model).with_options(self.spec_options)

    def shown(self, where: str) -> str:
        """How progress messages name the system: ``<where>: <label>[ seed N]``."""
        return f"{where}: {self.label}" + (f" seed {self.seed}" if self.seed is not None else "")


@dataclass
class SystemRun:
    """One system evaluated: its entry, result, top runs (for the significance test) and saved run record."""

    system: SystemEntry
    result: Any  # EvaluationResult
    runs: dict[str, Any] = field(default_factory=dict)  # setting type -> TopRun
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.system.label

    @property
    def slug(self) -> str:
        return self.system.slug

    @property
    def model(self) -> str:
        return self.system.model

    @property
    def seed(self) -> int | None:
        return self.system.seed

    @property
    def alpha(self) -> float | None:
        return self.system.alpha

    @property
    def spec_options(self) -> tuple[tuple[str, Any], ...]:
        return self.system.spec_options

    @property
    def by_alpha(self) -> bool:
        return self.system.by_alpha


class SharedEncodings:
    """The dense factories of the one model evaluated last, for :func:`system_factory`'s ``dense_factories``.

    A comparison evaluates a system and then its debiased variant (the same model, the same texts): handing both the
    same factories encodes every candidate and question once instead of twice. Only the last model's factories are
    kept, so memory holds one model at a time; a token limit of its own makes another key (the encoder reads it).
    """

    def __init__(self):
        self._key: tuple[str, int | None] | None = None
        self._factories: dict = {}

    def for_model(self, model: str, max_length: int | None) -> dict:
        """The factories to share for ``model`` read at ``max_length`` tokens (a fresh dict for another model)."""
        if (model, max_length) != self._key:
            self._key, self._factories = (model, max_length), {}
        return self._factories


def system_factory(spec: SystemSpec, options: SystemOptions, max_length: int | None = None, *,
                   dense_factories: dict | None = None):
    """``build_factory(spec, options, dense_factories=...)``; for a dense system with a token limit, its encoder reads
    at most ``max_length`` tokens (``SystemOptions`` has no token limit; the encoder reads its ``max_length`` at
    encoding time, so setting it after construction is the same as ``BiEncoderConfig(max_length=...)``).

    ``dense_factories``: kept by the caller across systems of one model (a system and its debiased variant), so that
    they share one encoder and its cached vectors; the caller must not share it between token limits."""
    factory = build_factory(spec, options, dense_factories=dense_factories)
    if max_length is not None and not spec.is_bm25:
        encoder = find_encoder(factory)
        if encoder is None:
            raise TypeError(f"no encoder found in {factory!r} to set its token limit")
        encoder.max_length = max_length
    return factory
