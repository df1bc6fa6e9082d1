"""A synthetic parallel collection in ir_datasets, mMARCO-shaped, generated from ids (no files, no download).

Ids (``SIZE`` judged pairs, ``LANG`` one of en, de, fr), loadable once :func:`register_synthetic_collection` has
run: the package's commands and training sources register it when they are asked for such an id
(:func:`pyterrier_hybrid.datasets.irds.load_irds_dataset`), tests and benchmarks call it themselves; importing the
package does not register it::

    pyterrier-hybrid-synthetic/SIZE/LANG               queries, docs (with a docs_store), qrels, docpairs
    pyterrier-hybrid-synthetic/SIZE/LANG/no-docpairs   the same without docpairs
    pyterrier-hybrid-synthetic/SIZE/LANG/disjoint      the same with query ids that share nothing with the others

Like mMARCO's translations, the languages share query and document ids: query ``q{i}`` (i < SIZE) is relevant to
document ``d{i}``; documents ``d{SIZE}`` .. ``d{2 SIZE - 1}`` are the negatives, and the docpair of ``q{i}`` is
``(q{i}, d{i}, d{SIZE + i})``. Texts are words of a per-language vocabulary picked by a hash of the id, the same
word positions in every language (so the "translations" are word-for-word), and a document shares its query's
words. Everything is a pure function of the id: a 1M-pair collection costs no memory until it is read, which is
what the streamed-training benchmark and tests need (mMARCO itself cannot be downloaded there).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import ir_datasets
from ir_datasets.formats import (
    BaseDocPairs,
    BaseDocs,
    BaseQrels,
    BaseQueries,
    GenericDoc,
    GenericDocPair,
    GenericQrel,
    GenericQuery,
)
from ir_datasets.indices import Docstore

__all__ = ["LANGUAGES", "NAMESPACE", "is_synthetic_id", "register_synthetic_collection", "synthetic_id"]

NAMESPACE = "pyterrier-hybrid-synthetic"
"""Set to ``1``, importing the package registers the collection: how tests and benchmarks ask for it in the
processes they start."""
LANGUAGES = ("en", "de", "fr")
VARIANTS = ("no-docpairs", "disjoint")
ID_PATTERN = rf"^{NAMESPACE}/(\d+)/({'|'.join(LANGUAGES)})(?:/({'|'.join(VARIANTS)}))?$"
VOCABULARY_SIZE = 512
QUERY_WORDS = 5
DOC_EXTRA_WORDS = 7
_SYLLABLES = {
    "en": ("ba", "co", "di", "fu", "ga", "he", "ki", "lo", "mu", "ne", "po", "ra", "si", "tu", "vy", "wo"),
    "de": ("ach", "bei", "dor", "ein", "fel", "gut", "hau", "ich", "ker", "lun", "mit", "nach", "ost", "rei",
           "sch", "tal"),
    "fr": ("ai", "beau", "cha", "dou", "eau", "fil", "gre", "jou", "lin", "mai", "noi", "oui", "pre", "que",
           "rou", "sou"),
}


def synthetic_id(size: int, lang: str, variant: str | None = None) -> str:
    """The registered id of one language of the synthetic collection."""
    return f"{NAMESPACE}/{size}/{lang}" + (f"/{variant}" if variant else "")


def is_synthetic_id(dataset_id: str) -> bool:
    """Whether ``dataset_id`` (with or without ``irds:``) names a part of the synthetic collection."""
    return dataset_id.removeprefix("irds:").startswith(f"{NAMESPACE}/")


def _mix(x: int) -> int:
    # splitmix64: a cheap, well-spread integer hash, the same in every process (unlike hash()).
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _word(lang: str, index: int) -> str:
    syllables = _SYLLABLES[lang]
    return syllables[index % 16] + syllables[(index // 16) % 16] + syllables[(index // 256) % 16]


def _words(lang: str, seed: int, count: int) -> list[str]:
    return [_word(lang, _mix(seed * 31 + k) % VOCABULARY_SIZE) for k in range(count)]


class _Collection:
    """Texts and ids of one language of a collection of ``size`` judged pairs."""

    def __init__(self, size: int, lang: str, variant: str | None):
        self.size, self.lang, self.variant = size, lang, variant
        # The disjoint variant numbers its queries after everyone else's: no query id in common.
        self.query_offset = size if variant == "disjoint" else 0

    def query_text(self, i: int) -> str:
        return " ".join(_words(self.lang, i, QUERY_WORDS)) + "?"

    def doc_text(self, j: int) -> str:
        # A negative d{SIZE + i} shares a few words with some query: not trivially separable.
        words = _words(self.lang, j, QUERY_WORDS) if j < self.size else _words(self.lang, _mix(j) % self.size, 3)
        return " ".join(words + _words(self.lang, 1_000_003 + j, DOC_EXTRA_WORDS)) + "."

    def doc(self, doc_id: str) -> GenericDoc | None:
        if not doc_id.startswith("d") or not doc_id[1:].isdigit():
            return None
        j = int(doc_id[1:])
        return GenericDoc(doc_id, self.doc_text(j)) if j < 2 * self.size else None


class SyntheticDocs(BaseDocs):
    def __init__(self, collection: _Collection):
        self._c = collection

    def docs_iter(self) -> Iterator[GenericDoc]:
        return (GenericDoc(f"d{j}", self._c.doc_text(j)) for j in range(2 * self._c.size))

    def docs_count(self) -> int:
        return 2 * self._c.size

    def docs_cls(self):
        return GenericDoc

    def docs_store(self, field="doc_id"):
        return SyntheticDocstore(self._c)

    def docs_namespace(self):
        return NAMESPACE

    def docs_lang(self):
        return self._c.lang


class SyntheticDocstore(Docstore):
    """Answers by id, computing each text (what mMARCO's docs_store does by reading an indexed file)."""

    def __init__(self, collection: _Collection):
        super().__init__(GenericDoc, "doc_id")
        self._c = collection

    def get_many_iter(self, doc_ids: Iterable[str]) -> Iterator[GenericDoc]:
        for doc_id in doc_ids:
            doc = self._c.doc(doc_id)
            if doc is not None:
                yield doc


class SyntheticQueries(BaseQueries):
    def __init__(self, collection: _Collection):
        self._c = collection

    def queries_iter(self) -> Iterator[GenericQuery]:
        offset = self._c.query_offset
        return (GenericQuery(f"q{offset + i}", self._c.query_text(i)) for i in range(self._c.size))

    def queries_cls(self):
        return GenericQuery

    def queries_namespace(self):
        return NAMESPACE

    def queries_lang(self):
        return self._c.lang


class SyntheticQrels(BaseQrels):
    def __init__(self, collection: _Collection):
        self._c = collection

    def qrels_iter(self) -> Iterator[GenericQrel]:
        offset = self._c.query_offset
        return (GenericQrel(f"q{offset + i}", f"d{i}", 1) for i in range(self._c.size))

    def qrels_cls(self):
        return GenericQrel

    def qrels_defs(self):
        return {1: "relevant"}


class SyntheticDocPairs(BaseDocPairs):
    def __init__(self, collection: _Collection):
        self._c = collection

    def docpairs_iter(self) -> Iterator[GenericDocPair]:
        size, offset = self._c.size, self._c.query_offset
        return (GenericDocPair(f"q{offset + i}", f"d{i}", f"d{size + i}") for i in range(size))

    def docpairs_cls(self):
        return GenericDocPair


def _build(dataset_id: str, groups) -> ir_datasets.Dataset:
    size, lang, variant = int(groups[0]), groups[1], groups[2]
    if size < 1:
        raise KeyError(f"{dataset_id}: the size of the synthetic collection must be at least 1")
    collection = _Collection(size, lang, variant)
    parts = [SyntheticDocs(collection), SyntheticQueries(collection), SyntheticQrels(collection)]
    if variant != "no-docpairs":
        parts.append(SyntheticDocPairs(collection))
    return ir_datasets.Dataset(*parts)


def register_synthetic_collection() -> None:
    """Make every ``pyterrier-hybrid-synthetic/...`` id loadable in ir_datasets; safe to call more than once.

    Called where the collection is asked for; importing the package does not call it, since it is no user's data."""
    try:
        # Loading an id succeeds only once the pattern is registered (ir_datasets offers no public way to list
        # patterns); the id it registers costs nothing, the collection being generated from ids.
        ir_datasets.load(synthetic_id(1, LANGUAGES[0]))
    except KeyError:
        ir_datasets.registry.register_pattern(ID_PATTERN, _build)
