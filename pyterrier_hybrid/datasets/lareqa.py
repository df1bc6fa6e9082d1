"""LAReQA collections (XQuAD-R, MLQA-R) as retrieval data: candidates, questions, relevance, training pairs.

LAReQA (Roy et al., 2020) turns every sentence of every paragraph of a SQuAD-format file into a retrieval candidate
(encoded with its paragraph as context). A candidate is relevant to a question when it contains the question's
``answer_start``; questions share their ``id`` across languages, so the answers to the translations of a question
are all relevant to it in the multilingual setting.

Identifiers, stable for the pinned release files and unique across languages:
- docno ``<lang>-<paragraph number in the file>-<sentence number in the paragraph>``, e.g. ``de-41-2``;
- qid ``<lang>-<question id>``, e.g. ``de-56beb4343aeaaa14008c925b``; the question id itself is the
  ``parallel_id`` shared by the translations.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from .errors import CorruptReleaseFileError, UnknownLanguageError
from .parallel import ParallelExample
from .release import LANGUAGES, ReleaseFiles, check_collection, check_languages

COLLECTIONS = tuple(LANGUAGES)


@dataclass(frozen=True)
class Candidate:
    docno: str
    text: str
    context: str
    lang: str
    title: str


@dataclass(frozen=True)
class Question:
    qid: str
    query: str
    lang: str
    parallel_id: str
    title: str
    answer_docno: str


@dataclass(frozen=True)
class LanguageFile:
    """The parsed release file of one language."""

    candidates: tuple[Candidate, ...]
    questions: tuple[Question, ...]


def parse_release_file(path: Path, lang: str) -> LanguageFile:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptReleaseFileError(f"corrupt LAReQA file {path}: not valid JSON ({e})") from e
    try:
        return _parse_squad_with_sentences(data, lang)
    except (KeyError, TypeError, IndexError) as e:
        raise CorruptReleaseFileError(
            f"corrupt LAReQA file {path}: not SQuAD v1.1 JSON with sentences and sentence_breaks ({e!r})"
        ) from e


def _parse_squad_with_sentences(data: dict, lang: str) -> LanguageFile:
    candidates: list[Candidate] = []
    questions: list[Question] = []
    paragraph_number = 0
    for article in data["data"]:
        title = article["title"]
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            docnos = []
            for sentence_number, sentence in enumerate(paragraph["sentences"]):
                docno = f"{lang}-{paragraph_number}-{sentence_number}"
                docnos.append(docno)
                candidates.append(Candidate(docno, sentence, context, lang, title))
            breaks = paragraph["sentence_breaks"]
            for qa in paragraph["qas"]:
                answer_start = qa["answers"][0]["answer_start"]
                # Half-open [start, end): sentences of Chinese paragraphs abut, so a closed interval would match two.
                containing = [i for i, (start, end) in enumerate(breaks) if start <= answer_start < end]
                if len(containing) != 1:
                    raise KeyError(f"answer_start {answer_start} of question {qa['id']} is in no sentence")
                questions.append(
                    Question(f"{lang}-{qa['id']}", qa["question"], lang, qa["id"], title, docnos[containing[0]])
                )
            paragraph_number += 1
    return LanguageFile(tuple(candidates), tuple(questions))


class LAReQACollection:
    """One LAReQA collection, parsed lazily language by language from its verified release files."""

    def __init__(self, name: str, files: ReleaseFiles | None = None):
        self.name = check_collection(name)
        self.languages: tuple[str, ...] = LANGUAGES[name]
        self.files = files if files is not None else ReleaseFiles()
        self._parsed: dict[str, LanguageFile] = {}

    def __repr__(self) -> str:
        return f"LAReQACollection({self.name!r}, languages={' '.join(self.languages)})"

    def check_languages(self, langs: Iterable[str] | str | None) -> tuple[str, ...]:
        return check_languages(self.name, langs)

    def language_file(self, lang: str) -> LanguageFile:
        self.check_languages([lang])
        if lang not in self._parsed:
            self._parsed[lang] = parse_release_file(self.files.path(self.name, lang), lang)
        return self._parsed[lang]

    @cached_property
    def _answer_docno(self) -> dict[tuple[str, str], str]:
        """(parallel_id, lang) -> docno of the answer sentence in that language."""
        return {
            (q.parallel_id, lang): q.answer_docno
            for lang in self.languages
            for q in self.language_file(lang).questions
        }

    @cached_property
    def _parallel_langs(self) -> dict[str, tuple[str, ...]]:
        """parallel_id -> the languages the question exists in (collection order)."""
        langs: dict[str, list[str]] = {}
        for lang in self.languages:
            for q in self.language_file(lang).questions:
                langs.setdefault(q.parallel_id, []).append(lang)
        return {pid: tuple(ls) for pid, ls in langs.items()}

    @cached_property
    def _article(self) -> dict[str, str]:
        """parallel_id -> article key, the same in every language (the English title; every LAReQA question has an
        English version), for held-out splits by article."""
        articles: dict[str, str] = {}
        for lang in ("en",) + self.languages:
            for q in self.language_file(lang).questions:
                articles.setdefault(q.parallel_id, q.title)
        return articles

    def questions(self, langs=None, doc_langs=None) -> list[Question]:
        langs = self.check_languages(langs)
        doc_langs = self.check_languages(doc_langs)
        selected = []
        for lang in langs:
            for q in self.language_file(lang).questions:
                if any((q.parallel_id, d) in self._answer_docno for d in doc_langs):
                    selected.append(q)
        return selected

    def candidates(self, langs=None) -> pd.DataFrame:
        """Candidates of the given languages: docno, text (the sentence), context (its paragraph), lang, title."""
        rows = [c for lang in self.check_languages(langs) for c in self.language_file(lang).candidates]
        return pd.DataFrame(rows, columns=["docno", "text", "context", "lang", "title"])

    def topics(self, langs=None, doc_langs=None) -> pd.DataFrame:
        """Questions in ``langs`` (all by default); with ``doc_langs``, only those with an answer in one of them.

        Columns: qid, query, lang, parallel_id, article.
        """
        rows = [
            (q.qid, q.query, q.lang, q.parallel_id, self._article[q.parallel_id])
            for q in self.questions(langs, doc_langs)
        ]
        return pd.DataFrame(rows, columns=["qid", "query", "lang", "parallel_id", "article"])

    def qrels(self, query_langs=None, doc_langs=None) -> pd.DataFrame:
        """Relevance of candidates in ``doc_langs`` to questions in ``query_langs``: qid, docno, label (1)."""
        doc_langs = self.check_languages(doc_langs)
        rows = [
            (q.qid, self._answer_docno[(q.parallel_id, d)], 1)
            for q in self.questions(query_langs, doc_langs)
            for d in doc_langs
            if (q.parallel_id, d) in self._answer_docno
        ]
        return pd.DataFrame(rows, columns=["qid", "docno", "label"])

    def parallel_examples(self, langs=None, pairs: Sequence[tuple[str, str]] | None = None) -> list[ParallelExample]:
        """The training view: for every question and every ordered pair of its languages (monolingual pairs
        included), the question in the first language with its answer sentence and paragraph in the second.

        ``pairs`` restricts to the given (query_lang, passage_lang) pairs.
        """
        langs = self.check_languages(langs)
        if pairs is not None:
            for pair in pairs:
                self.check_languages(pair)
            wanted = set(pairs)
        candidates = {
            c.docno: c for lang in langs for c in self.language_file(lang).candidates
        }
        question = {(q.parallel_id, q.lang): q for lang in langs for q in self.language_file(lang).questions}
        examples = []
        for pid, pid_langs in self._parallel_langs.items():
            present = [lang for lang in pid_langs if lang in langs]
            for query_lang in present:
                for passage_lang in present:
                    if pairs is not None and (query_lang, passage_lang) not in wanted:
                        continue
                    passage = candidates[self._answer_docno[(pid, passage_lang)]]
                    examples.append(
                        ParallelExample(
                            parallel_id=pid,
                            query_lang=query_lang,
                            query=question[(pid, query_lang)].query,
                            passage_lang=passage_lang,
                            passage_sentence=passage.text,
                            passage_context=passage.context,
                            article=self._article[pid],
                        )
                    )
        return examples


def lareqa_collection(name: str, local_dir: str | Path | None = None) -> LAReQACollection:
    """A LAReQA collection ("xquad-r" or "mlqa-r") read from the release files (see ``release.ReleaseFiles``)."""
    return LAReQACollection(name, ReleaseFiles(local_dir=local_dir))


def split_pair(collection: str, pair: str) -> tuple[str, str]:
    """'de-en' -> ('de', 'en'), validating both languages."""
    parts = pair.split("-")
    if len(parts) != 2:
        raise UnknownLanguageError(f"expected a language pair like 'de-en', got {pair!r}")
    return check_languages(collection, [parts[0]])[0], check_languages(collection, [parts[1]])[0]
