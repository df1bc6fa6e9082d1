"""Registration of the LAReQA collections with ir_datasets (and so with PyTerrier's ``irds:`` datasets).

Ids, for each collection C in {xquad-r, mlqa-r}:
- ``lareqa/C/<lang>``: monolingual: questions in lang, candidates in lang;
- ``lareqa/C/<qlang>-<dlang>``: cross-lingual: questions in qlang (those with an answer in dlang), candidates in
  dlang;
- ``lareqa/C``: multilingual: questions in every language, one pooled candidate set of every language, and every
  parallel answer relevant.

Registration is cheap (no file is read until a dataset's docs, queries or qrels are used) and happens when
``pyterrier_hybrid`` is imported, which ``import pyterrier`` does through the ``pyterrier.modules`` entry point.
The synthetic collection of the tests and benchmarks registers apart (:mod:`.synthetic`), where they ask for it.
"""
# No ``from __future__ import annotations`` here: PyTerrier's text loader (``pt.text.get_text``) reads the field
# types of the record classes from ``__annotations__`` and needs real types, not strings.
from typing import NamedTuple

import ir_datasets
from ir_datasets.formats import BaseDocs, BaseQrels, BaseQueries, TrecQrel
from ir_datasets.indices import Docstore

from .errors import UnknownDatasetIdError
from .lareqa import COLLECTIONS, LAReQACollection
from .release import LANGUAGES, LICENCES, ReleaseFiles
from .settings import lareqa_settings, setting_type_of

NAMESPACE = "lareqa"
QRELS_DEFS = {1: "the candidate sentence contains the answer (answer_start) of the question or of its translation"}


class LAReQADoc(NamedTuple):
    doc_id: str
    text: str
    context: str
    lang: str
    title: str

    def default_text(self) -> str:
        return self.text


class LAReQAQuery(NamedTuple):
    query_id: str
    text: str
    lang: str
    parallel_id: str

    def default_text(self) -> str:
        return self.text


class LAReQASetting(NamedTuple):
    """Which questions and candidates a registered dataset holds."""

    collection: str
    query_langs: tuple[str, ...]
    doc_langs: tuple[str, ...]

    @property
    def kind(self) -> str:
        return setting_type_of(self.query_langs, self.doc_langs)


class _CollectionProvider:
    """Creates each collection once, on first use, and shares it among the datasets registered for it."""

    def __init__(self):
        self._collections: dict[str, LAReQACollection] = {}

    def __call__(self, name: str) -> LAReQACollection:
        if name not in self._collections:
            self._collections[name] = LAReQACollection(name, ReleaseFiles())
        return self._collections[name]


class _InMemoryDocstore(Docstore):
    """LAReQA collections are small (at most ~21k candidates): a dict lookup is all a docstore needs to be."""

    def __init__(self, docs: dict[str, LAReQADoc]):
        super().__init__(LAReQADoc)
        self._docs = docs

    def get_many_iter(self, doc_ids):
        for doc_id in doc_ids:
            if doc_id in self._docs:
                yield self._docs[doc_id]


class LAReQADocs(BaseDocs):
    def __init__(self, provider: _CollectionProvider, setting: LAReQASetting):
        self._provider, self._setting = provider, setting

    def _frame(self):
        return self._provider(self._setting.collection).candidates(self._setting.doc_langs)

    def docs_iter(self):
        for row in self._frame().itertuples(index=False):
            yield LAReQADoc(row.docno, row.text, row.context, row.lang, row.title)

    def docs_count(self) -> int:
        return len(self._frame())

    def docs_cls(self):
        return LAReQADoc

    def docs_store(self, field="doc_id"):
        return _InMemoryDocstore({doc.doc_id: doc for doc in self.docs_iter()})

    def docs_namespace(self) -> str:
        return f"{NAMESPACE}/{self._setting.collection}"

    def docs_lang(self):
        langs = self._setting.doc_langs
        return langs[0] if len(langs) == 1 else None


class LAReQAQueries(BaseQueries):
    def __init__(self, provider: _CollectionProvider, setting: LAReQASetting):
        self._provider, self._setting = provider, setting

    def queries_iter(self):
        collection = self._provider(self._setting.collection)
        for q in collection.questions(self._setting.query_langs, self._setting.doc_langs):
            yield LAReQAQuery(q.qid, q.query, q.lang, q.parallel_id)

    def queries_cls(self):
        return LAReQAQuery

    def queries_namespace(self) -> str:
        return f"{NAMESPACE}/{self._setting.collection}"

    def queries_lang(self):
        langs = self._setting.query_langs
        return langs[0] if len(langs) == 1 else None


class LAReQAQrels(BaseQrels):
    def __init__(self, provider: _CollectionProvider, setting: LAReQASetting):
        self._provider, self._setting = provider, setting

    def qrels_iter(self):
        collection = self._provider(self._setting.collection)
        qrels = collection.qrels(self._setting.query_langs, self._setting.doc_langs)
        for row in qrels.itertuples(index=False):
            yield TrecQrel(row.qid, row.docno, int(row.label), "0")

    def qrels_defs(self):
        return QRELS_DEFS

    def qrels_cls(self):
        return TrecQrel


def settings() -> dict[str, LAReQASetting]:
    """Every registered id with its setting, in a stable order (multilingual, monolingual, cross-lingual)."""
    result = {}
    for collection in COLLECTIONS:
        every = lareqa_settings(LANGUAGES[collection])
        for setting in every[-1:] + every[:-1]:  # the pool (last in evaluation order) first
            suffix = "" if setting.setting_type == "multilingual" else f"/{setting.name}"
            result[f"{NAMESPACE}/{collection}{suffix}"] = LAReQASetting(collection, setting.query_langs,
                                                                        setting.doc_langs)
    return result


def setting_of(dataset_id: str) -> LAReQASetting:
    """The setting behind a LAReQA dataset id; the error lists the valid ids' patterns and languages."""
    dataset_id = dataset_id.removeprefix("irds:")
    known = settings()
    if dataset_id not in known:
        valid = "; ".join(
            f"{NAMESPACE}/{c}, {NAMESPACE}/{c}/LANG, {NAMESPACE}/{c}/QLANG-DLANG with LANG in {' '.join(LANGUAGES[c])}"
            for c in COLLECTIONS
        )
        raise UnknownDatasetIdError(f"unknown LAReQA dataset id {dataset_id!r}; valid ids: {valid}")
    return known[dataset_id]


class _Documentation:
    """The ``documentation()`` constituent that ir_datasets' own datasets provide through YamlDocumentation."""

    def __init__(self, setting: LAReQASetting):
        self._setting = setting

    def documentation(self) -> dict:
        return _documentation(self._setting)


def _documentation(setting: LAReQASetting) -> dict:
    return {
        "pretty_name": f"LAReQA {setting.collection.upper()} ({setting.kind}: queries {'/'.join(setting.query_langs)}, "
        f"candidates {'/'.join(setting.doc_langs)})",
        "desc": "Answer-sentence retrieval from LAReQA (Roy et al., 2020); candidates are the sentences of the "
        "paragraphs, with their paragraph as context.",
        "license": LICENCES[setting.collection],
        "bibtex": "@inproceedings{roy2020lareqa, title={LAReQA: Language-Agnostic Answer Retrieval from a "
        "Multilingual Pool}, author={Roy, Uma and Constant, Noah and Al-Rfou, Rami and Barua, Aditya and "
        "Phillips, Aaron and Yang, Yinfei}, booktitle={EMNLP}, year={2020}}",
    }


UNKNOWN_ID_PATTERN = rf"^{NAMESPACE}/.*$"


def _reject_unknown_id(dataset_id: str, groups) -> None:
    # ir_datasets consults patterns only for ids that are not registered: every such lareqa/ id is a mistake.
    setting_of(dataset_id)


def register_all() -> None:
    """Register every LAReQA id with ir_datasets, and the pattern that makes any other ``lareqa/`` id an error
    listing the valid ones; safe to call more than once."""
    ids = settings()
    registered = set(ir_datasets.registry)  # the registry iterates over its registered ids
    # The pattern and the ids are registered together, so a registry holding none of the ids lacks the pattern too
    # (ir_datasets offers no public way to list patterns).
    if registered.isdisjoint(ids):
        ir_datasets.registry.register_pattern(UNKNOWN_ID_PATTERN, _reject_unknown_id)
    provider = _CollectionProvider()
    for dataset_id, setting in ids.items():
        if dataset_id in registered:
            continue
        ir_datasets.registry.register(
            dataset_id,
            ir_datasets.Dataset(
                LAReQADocs(provider, setting),
                LAReQAQueries(provider, setting),
                LAReQAQrels(provider, setting),
                _Documentation(setting),
            ),
        )


def load_irds_dataset(dataset_id: str):
    """``ir_datasets.load(dataset_id)`` (``irds:`` prefix allowed) for the package's commands and training sources:
    an id of the synthetic collection registers it first, so that it is registered where it is asked for, in every
    process that asks (a command a test starts, a torchrun worker), and never by importing the package."""
    from .synthetic import is_synthetic_id, register_synthetic_collection

    dataset_id = dataset_id.removeprefix("irds:")
    if is_synthetic_id(dataset_id):
        register_synthetic_collection()
    return ir_datasets.load(dataset_id)
