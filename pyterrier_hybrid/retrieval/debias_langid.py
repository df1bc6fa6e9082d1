"""Language identification for queries (or passages) that carry no ``lang`` column, for :mod:`.debias`.

Two libraries whose models ship inside their wheels (no download at run time) are supported:

- ``py3langid`` (PyPI ``py3langid``, a dependency): langid.py's naive Bayes model of 97 languages (4.5 MB); the
  default, because it was the more accurate of the two on the LAReQA questions: restricted to the collection's
  languages it identified 99.93% of the 13,090 XQuAD-R questions and 99.95% of the 4,199 MLQA-R questions
  (lingua: 99.40% and 99.50%), and it is faster (``benchmarks/results/debias/langid.md``);
- ``lingua`` (PyPI ``lingua-language-detector``, the optional extra ``lingua``): n-gram models of 75 languages
  in Rust (96 MB).

Both are restricted to the languages the debiasing was fitted on (``languages``), which is both more accurate and
what the debiasing can use: a language it has no statistics for gets the pooled treatment anyway.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pyterrier_hybrid.errors import UserError

BACKENDS: tuple[str, ...] = ("py3langid", "lingua")
DEFAULT_BACKEND = "py3langid"


class LanguageIdentificationError(UserError, ValueError):
    """A language identifier cannot be built (unknown backend, library missing, language it does not know)."""


@dataclass(frozen=True)
class LanguageIdentifierConfig:
    """Which library identifies languages, and among which ISO 639-1 codes (``None``: all it knows)."""

    backend: str = DEFAULT_BACKEND
    languages: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise LanguageIdentificationError(
                f"unknown language identifier {self.backend!r}; choose one of {', '.join(BACKENDS)}")


class LanguageIdentifier:
    """Maps texts to ISO 639-1 codes (``identifier(texts) -> list[str]``); ``None`` for a text it cannot place.

    Args:
        languages: candidate languages (ISO 639-1); ``None`` for every language the library knows.
        backend: "py3langid" (default) or "lingua".
    """

    def __init__(self, languages: Sequence[str] | None = None, backend: str = DEFAULT_BACKEND):
        self.config = LanguageIdentifierConfig(backend, tuple(sorted(languages)) if languages else None)
        self._detect = _lingua(self.config.languages) if backend == "lingua" else _py3langid(self.config.languages)

    def __repr__(self) -> str:
        langs = ",".join(self.config.languages) if self.config.languages else "all"
        return f"LanguageIdentifier(backend={self.config.backend!r}, languages={langs})"

    def __call__(self, texts: Sequence[str]) -> list[str | None]:
        return self._detect([str(t) for t in texts])

    def to_dict(self) -> dict:
        return {"backend": self.config.backend,
                "languages": list(self.config.languages) if self.config.languages else None}

    @classmethod
    def from_dict(cls, data: dict) -> "LanguageIdentifier":
        return cls(data.get("languages"), data.get("backend", DEFAULT_BACKEND))


def _lingua(languages: tuple[str, ...] | None):
    try:
        from lingua import IsoCode639_1, LanguageDetectorBuilder
    except ImportError as error:  # an optional extra
        raise LanguageIdentificationError(
            "language identification with 'lingua' needs the package lingua-language-detector "
            "(pip install 'pyterrier-hybrid[lingua]')") from error
    if languages:
        codes = []
        for lang in languages:
            code = getattr(IsoCode639_1, lang.upper(), None)
            if code is None:
                raise LanguageIdentificationError(f"lingua does not know the language {lang!r}")
            codes.append(code)
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes) if len(codes) > 1 else None
        if builder is None:  # lingua needs two languages at least: a single one is trivially "identified"
            only = languages[0]
            return lambda texts: [only] * len(texts)
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    detector = builder.build()

    def detect(texts: list[str]) -> list[str | None]:
        found = detector.detect_languages_in_parallel_of(texts)
        return [language.iso_code_639_1.name.lower() if language is not None else None for language in found]

    return detect


def _py3langid(languages: tuple[str, ...] | None):
    try:
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as Py3LangId
    except ImportError as error:  # pragma: no cover - the dependency is declared
        raise LanguageIdentificationError("language identification with 'py3langid' needs the package py3langid") \
            from error
    identifier = Py3LangId.from_model_file(MODEL_FILE, norm_probs=False)
    if languages:
        unknown = sorted(set(languages) - set(identifier.labels))
        if unknown:
            raise LanguageIdentificationError(f"py3langid does not know the languages {unknown}")
        identifier.set_languages(list(languages))
    return lambda texts: [identifier.classify(text)[0] for text in texts]


__all__ = ["BACKENDS", "LanguageIdentificationError", "LanguageIdentifier", "LanguageIdentifierConfig"]
