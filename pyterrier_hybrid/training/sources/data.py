"""Training data for hybrid batch training: parallel examples with optional hard negatives, and where they come from.

Sources (``load_training_data(source)``)
    ``lareqa/mlqa-r`` or ``lareqa/xquad-r``
        The LAReQA training view, ``lareqa_collection(name).parallel_examples()``: every question with its answer
        sentence in every language the question exists in (monolingual pairs included). Hard negatives: another
        sentence of the answer's paragraph (LAReQA's hard case: same context, wrong sentence).
    a path to a ``.jsonl`` file
        Parallel examples, one JSON object per line (blank lines ignored)::

            {"parallel_id": "q17", "query_lang": "de", "query": "Wer ...?",
             "passage_lang": "en", "passage_sentence": "He ...", "passage_context": "The paragraph ...",
             "article": "Some article", "negative_sentence": "...", "negative_context": "..."}

        Required: ``parallel_id`` (shared by the translations of one question; all its rows' passages are
        translations of each other), ``query_lang``, ``query``, ``passage_lang``, ``passage_sentence`` (all
        non-empty strings). Optional: ``passage_context`` (default ""), ``article`` (groups examples for the
        held-out split; default: the parallel id), ``negative_sentence`` / ``negative_context`` (a hard negative
        passage in ``passage_lang``; rows without one are dropped when hard negatives are requested). Other keys
        are ignored. Errors name the file and the line.
    ``irds:LANG=DATASET_ID,LANG=DATASET_ID,...``
        ir_datasets collections whose languages share query and document ids (mMARCO-style translations): for each
        relevant (query_id, doc_id) of the first language's qrels (relevance > 0) and each ordered pair of languages,
        the query text in one language with the document text in the other. The parallel id is the query id and the
        article too (every query is its own group). This yields languages^2 rows per judged pair, in memory: the
        trainer therefore streams these sources instead (:mod:`pyterrier_hybrid.training.sources.streaming`, with hard
        negatives from docpairs and ``max_queries``); this in-memory view is for small collections and inspection.
        No hard negatives.

The candidate text of a passage follows ``candidate_text``: "sentence" or "sentence+context" (the sentence, a space,
the context), by :func:`pyterrier_hybrid.datasets.candidates.candidate_text`, the rule retrieval uses too.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pyterrier_hybrid.datasets.parallel import ParallelExample

from ...datasets.candidates import CANDIDATE_TEXT_OPTIONS, candidate_text
from ...errors import UserError

if TYPE_CHECKING:
    from ..config import HybridTrainingConfig

logger = logging.getLogger(__name__)

__all__ = [
    "CANDIDATE_TEXT_OPTIONS",
    "JsonlFormatError",
    "Passage",
    "TrainingData",
    "candidate_text",
    "configured_training_data",
    "ir_datasets_parallel_examples",
    "lareqa_training_data",
    "load_training_data",
    "read_jsonl",
    "split_by_article",
]

REQUIRED_JSONL_FIELDS: tuple[str, ...] = ("parallel_id", "query_lang", "query", "passage_lang", "passage_sentence")
LAREQA_PREFIX = "lareqa/"
IRDS_PREFIX = "irds:"


class JsonlFormatError(UserError, ValueError):
    """A line of a training JSONL file is not a valid parallel example (the message names file and line)."""


@dataclass(frozen=True)
class Passage:
    """A passage: its sentence and the paragraph it comes from."""

    sentence: str
    context: str = ""


@dataclass(frozen=True)
class TrainingData:
    """Parallel examples with, optionally, one hard negative passage each (aligned with ``examples``)."""

    examples: tuple[ParallelExample, ...]
    negatives: tuple[Passage, ...] | None = None

    def __post_init__(self):
        if self.negatives is not None and len(self.negatives) != len(self.examples):
            raise ValueError(f"{len(self.negatives)} negatives for {len(self.examples)} examples")

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted({e.query_lang for e in self.examples} | {e.passage_lang for e in self.examples}))

    @property
    def num_parallel_ids(self) -> int:
        return len({e.parallel_id for e in self.examples})

    def select(self, indices: Iterable[int]) -> TrainingData:
        indices = list(indices)
        negatives = None if self.negatives is None else tuple(self.negatives[i] for i in indices)
        return TrainingData(tuple(self.examples[i] for i in indices), negatives)

    def sample_parallel_ids(self, n: int | None, seed: int = 0) -> TrainingData:
        """Only the examples of ``n`` parallel ids drawn at random (numpy, ``seed``) among the sorted ids, every
        language of them, in their order here (all if None or if there are no more than ``n``). Drawn rather than
        the first ones: a source lists its languages one after another, and the first ids would be one language's."""
        ids = sorted({e.parallel_id for e in self.examples})
        if n is None or n >= len(ids):
            return self
        kept = {ids[i] for i in np.random.default_rng(seed).choice(len(ids), size=n, replace=False)}
        return self.select(i for i, e in enumerate(self.examples) if e.parallel_id in kept)

    def restrict_languages(self, langs: Sequence[str] | None) -> TrainingData:
        """Only the examples whose query and passage languages are both in ``langs`` (all if None)."""
        if not langs:
            return self
        unknown = sorted(set(langs) - set(self.languages))
        if unknown:
            raise ValueError(f"language(s) {', '.join(unknown)} not in the training data ({', '.join(self.languages)})")
        wanted = set(langs)
        return self.select(i for i, e in enumerate(self.examples)
                           if e.query_lang in wanted and e.passage_lang in wanted)


# --- LAReQA ---------------------------------------------------------------------------------------------------------


def lareqa_training_data(
    name: str, langs: Sequence[str] | None = None, hard_negatives: bool = False, seed: int = 0
) -> TrainingData:
    """The LAReQA training view of ``name`` ("mlqa-r" or "xquad-r"), optionally restricted to ``langs``.

    With ``hard_negatives``, each example gets another sentence of its answer's paragraph (drawn with ``seed``);
    examples whose paragraph has a single sentence are dropped (logged).
    """
    from pyterrier_hybrid.datasets import lareqa_collection

    collection = lareqa_collection(name)
    examples = collection.parallel_examples(langs=langs)
    if not hard_negatives:
        return TrainingData(tuple(examples))
    # Sentences of each paragraph, by (language, context): the candidates are every sentence of every paragraph.
    candidates = collection.candidates(langs=sorted({e.passage_lang for e in examples}))
    siblings: dict[tuple[str, str], list[str]] = {}
    for lang, text, context in zip(candidates["lang"], candidates["text"], candidates["context"]):
        siblings.setdefault((lang, context), []).append(text)
    rng = np.random.default_rng(seed)
    kept, negatives = [], []
    for example in examples:
        same_paragraph = siblings.get((example.passage_lang, example.passage_context), [])
        others = [s for s in same_paragraph if s != example.passage_sentence]
        if not others:
            continue
        kept.append(example)
        negatives.append(Passage(others[int(rng.integers(len(others)))], example.passage_context))
    if len(kept) < len(examples):
        logger.info("hard negatives: dropped %d examples whose paragraph has one sentence", len(examples) - len(kept))
    return TrainingData(tuple(kept), tuple(negatives))


# --- JSONL ----------------------------------------------------------------------------------------------------------


def read_jsonl(path: str | Path, hard_negatives: bool = False) -> TrainingData:
    """Parallel examples from a JSONL file (format in the module docstring). With ``hard_negatives``, only the
    examples that have a ``negative_sentence``, with their negatives (the others dropped, logged)."""
    examples, negatives = _read_jsonl(Path(path))
    if not hard_negatives:
        return TrainingData(tuple(examples))
    keep = [i for i, n in enumerate(negatives) if n is not None]
    if not keep:
        raise JsonlFormatError(f"{path}: hard negatives requested but no line has a 'negative_sentence'")
    if len(keep) < len(examples):
        logger.info("%s: dropped %d examples without a negative_sentence", path, len(examples) - len(keep))
    return TrainingData(tuple(examples[i] for i in keep), tuple(negatives[i] for i in keep))


def _read_jsonl(path: Path) -> tuple[list[ParallelExample], list[Passage | None]]:
    if not path.is_file():
        raise FileNotFoundError(f"training file {path} does not exist")
    examples: list[ParallelExample] = []
    negatives: list[Passage | None] = []
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise JsonlFormatError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from e
            if not isinstance(record, dict):
                raise JsonlFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
            missing = [k for k in REQUIRED_JSONL_FIELDS if k not in record]
            if missing:
                raise JsonlFormatError(f"{where}: missing field(s) {', '.join(missing)}")
            for key in REQUIRED_JSONL_FIELDS + ("passage_context", "article", "negative_sentence", "negative_context"):
                if key in record and not isinstance(record[key], str):
                    raise JsonlFormatError(f"{where}: field {key!r} must be a string, got {type(record[key]).__name__}")
            for key in REQUIRED_JSONL_FIELDS:
                if not record[key].strip():
                    raise JsonlFormatError(f"{where}: field {key!r} is empty")
            examples.append(
                ParallelExample(
                    parallel_id=record["parallel_id"],
                    query_lang=record["query_lang"],
                    query=record["query"],
                    passage_lang=record["passage_lang"],
                    passage_sentence=record["passage_sentence"],
                    passage_context=record.get("passage_context", ""),
                    article=record.get("article") or record["parallel_id"],
                )
            )
            negative = record.get("negative_sentence")
            negatives.append(Passage(negative, record.get("negative_context", "")) if negative else None)
    if not examples:
        raise JsonlFormatError(f"{path}: no examples (the file is empty)")
    return examples, negatives


# --- ir_datasets ----------------------------------------------------------------------------------------------------


def record_text(record) -> str:
    """The text of an ir_datasets query or document record, as the collection gives it."""
    return record.default_text() if hasattr(record, "default_text") else record.text


def relevant_qrels(dataset, max_queries: int | None = None) -> Iterator[tuple[str, str]]:
    """(query id, doc id) of each relevant (relevance > 0) qrel of ``dataset``, in qrels order, of its first
    ``max_queries`` judged queries (all without ``max_queries``)."""
    seen: set[str] = set()  # only with max_queries, so at most max_queries entries
    for qrel in dataset.qrels_iter():
        if qrel.relevance <= 0:
            continue
        if max_queries is not None and qrel.query_id not in seen:
            if len(seen) >= max_queries:
                continue
            seen.add(qrel.query_id)
        yield qrel.query_id, qrel.doc_id


def ir_datasets_parallel_examples(
    dataset_ids: Mapping[str, str],
    pairs: Sequence[tuple[str, str]] | None = None,
    max_queries: int | None = None,
) -> list[ParallelExample]:
    """Parallel examples from ir_datasets collections that share query and doc ids across languages.

    ``dataset_ids`` maps a language to an ir_datasets id (e.g. ``{"en": "mmarco/v2/en/train", "de":
    "mmarco/v2/de/train"}``). The relevant pairs come from the qrels of the first language (relevance > 0); queries
    are joined by ``query_id`` and documents by ``doc_id`` in every language. ``pairs`` restricts the (query_lang,
    passage_lang) pairs (default: all ordered pairs, monolingual included); ``max_queries`` keeps the first judged
    queries only. A judged pair missing its query or document in some language is skipped for that language.
    """
    if not dataset_ids:
        raise ValueError("dataset_ids is empty: give at least one language=ir_datasets id")
    langs = list(dataset_ids)
    wanted_pairs = _language_pairs(langs, pairs)
    datasets = _load_datasets(dataset_ids)
    reference = datasets[langs[0]]
    if not reference.has_qrels():
        raise ValueError(f"ir_datasets {dataset_ids[langs[0]]!r} has no qrels to take the relevant pairs from")
    judged = list(relevant_qrels(reference, max_queries))
    if not judged:
        raise ValueError(f"ir_datasets {dataset_ids[langs[0]]!r} has no relevant (relevance > 0) qrels")
    judged_queries = {query_id for query_id, _ in judged}
    doc_ids = {doc_id for _, doc_id in judged}

    queries: dict[str, dict[str, str]] = {}
    docs: dict[str, dict[str, str]] = {}
    for lang, dataset in datasets.items():
        if not dataset.has_queries() or not dataset.has_docs():
            raise ValueError(f"ir_datasets {dataset_ids[lang]!r} ({lang}) must provide queries and docs")
        queries[lang] = {q.query_id: record_text(q) for q in dataset.queries_iter() if q.query_id in judged_queries}
        docs[lang] = _lookup_docs(dataset, doc_ids)

    examples = []
    for query_id, doc_id in judged:
        for query_lang, passage_lang in wanted_pairs:
            query = queries[query_lang].get(query_id)
            passage = docs[passage_lang].get(doc_id)
            if not query or not passage:
                continue
            examples.append(ParallelExample(query_id, query_lang, query, passage_lang, passage, "", query_id))
    if not examples:
        raise ValueError("no judged query/document pair exists in the requested languages")
    return examples


def _language_pairs(langs: Sequence[str], pairs: Sequence[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The (query_lang, passage_lang) pairs asked for: ``pairs``, checked against ``langs``, or every ordered pair."""
    if pairs is None:
        return [(q, p) for q in langs for p in langs]
    unknown = sorted({lang for pair in pairs for lang in pair} - set(langs))
    if unknown:
        raise ValueError(f"pairs name language(s) {', '.join(unknown)} without an ir_datasets id")
    return list(pairs)


def _load_datasets(dataset_ids: Mapping[str, str]) -> dict:
    from ...datasets.irds import load_irds_dataset

    datasets = {}
    for lang, dataset_id in dataset_ids.items():
        try:
            datasets[lang] = load_irds_dataset(dataset_id)
        except KeyError as e:
            raise ValueError(f"unknown ir_datasets id {dataset_id!r} (language {lang})") from e
    return datasets


def _lookup_docs(dataset, doc_ids: set[str]) -> dict[str, str]:
    # A docstore answers by id without reading the whole collection (mMARCO has 8.8M passages per language).
    if hasattr(dataset, "docs_store"):
        try:
            found = dataset.docs_store().get_many(doc_ids)
            return {doc_id: record_text(doc) for doc_id, doc in found.items()}
        except NotImplementedError:
            pass
    return {d.doc_id: record_text(d) for d in dataset.docs_iter() if d.doc_id in doc_ids}


def parse_irds_source(source: str) -> dict[str, str]:
    """``irds:en=ID,de=ID`` -> {"en": ID, "de": ID}."""
    spec = source[len(IRDS_PREFIX):]
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lang, sep, dataset_id = part.partition("=")
        if not sep or not lang.strip() or not dataset_id.strip():
            raise ValueError(f"bad ir_datasets source {source!r}: expected irds:LANG=DATASET_ID,LANG=DATASET_ID,...")
        if lang.strip() in mapping:
            raise ValueError(f"bad ir_datasets source {source!r}: language {lang.strip()!r} given twice")
        mapping[lang.strip()] = dataset_id.strip()
    if not mapping:
        raise ValueError(f"bad ir_datasets source {source!r}: no language=dataset id")
    return mapping


# --- dispatch and split ---------------------------------------------------------------------------------------------


def load_training_data(
    source: str | Path, langs: Sequence[str] | None = None, hard_negatives: bool = False, seed: int = 0
) -> TrainingData:
    """Training data from ``source``: "lareqa/mlqa-r", "lareqa/xquad-r", a .jsonl path or "irds:LANG=ID,..." (see
    the module docstring); ``langs`` keeps the examples whose two languages are both in it."""
    source_str = str(source)
    if source_str.startswith(LAREQA_PREFIX):
        return lareqa_training_data(source_str[len(LAREQA_PREFIX):], langs, hard_negatives, seed)
    if source_str.startswith(IRDS_PREFIX):
        if hard_negatives:
            raise ValueError("hard negatives are available for LAReQA and JSONL sources, not for ir_datasets ones")
        mapping = parse_irds_source(source_str)
        if langs:
            unknown = sorted(set(langs) - set(mapping))
            if unknown:
                raise ValueError(f"language(s) {', '.join(unknown)} have no ir_datasets id in {source_str!r}")
            mapping = {lang: mapping[lang] for lang in mapping if lang in set(langs)}
        return TrainingData(tuple(ir_datasets_parallel_examples(mapping)))
    path = Path(source_str)
    if path.suffix == ".jsonl" or path.is_file():
        data = read_jsonl(path, hard_negatives)
        return data.restrict_languages(langs)
    raise ValueError(
        f"unknown training source {source_str!r}: expected lareqa/mlqa-r, lareqa/xquad-r, a .jsonl file or "
        "irds:LANG=DATASET_ID,..."
    )


#: The seed of the parallel ids ``max_parallel_ids`` draws.
PARALLEL_ID_SAMPLE_SEED = 0


def configured_training_data(config: HybridTrainingConfig, source: str | Path | None = None) -> TrainingData:
    """The in-memory examples of ``source`` (default: ``config.train``) as ``config`` asks for them: its languages,
    hard negatives and seed, cut to ``max_parallel_ids`` parallel ids (drawn with :data:`PARALLEL_ID_SAMPLE_SEED`,
    the same slice whatever the run's seed, so that seeds compare on one slice). Training and whatever reproduces a
    run's split (the held-out articles of the robustness study) read the data through this one function."""
    data = load_training_data(config.train if source is None else source, config.train_langs, config.hard_negatives,
                              config.seed)
    return data.sample_parallel_ids(config.max_parallel_ids, seed=PARALLEL_ID_SAMPLE_SEED)


def split_by_article(data: TrainingData, eval_fraction: float, seed: int = 0) -> tuple[TrainingData, TrainingData]:
    """(train, held-out) with ``ceil(eval_fraction * articles)`` articles, drawn with ``seed``, held out whole: the
    translations of a question share its article, so no question is on both sides."""
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    if eval_fraction == 0.0:
        return data, TrainingData(())
    articles = sorted({e.article for e in data.examples})
    if len(articles) < 2:
        raise ValueError(f"cannot hold out articles: the training data has {len(articles)} article(s)")
    num_held_out = min(len(articles) - 1, math.ceil(eval_fraction * len(articles)))
    rng = np.random.default_rng(seed)
    held_out = {articles[i] for i in rng.permutation(len(articles))[:num_held_out]}
    train_idx = [i for i, e in enumerate(data.examples) if e.article not in held_out]
    eval_idx = [i for i, e in enumerate(data.examples) if e.article in held_out]
    return data.select(train_idx), data.select(eval_idx)
