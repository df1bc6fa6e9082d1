"""Character noise (typos) in queries of any LAReQA language.

The protocol is the usual one of typo-robustness studies of dense retrieval: Zhuang & Zuccon, "Dealing with Typos
for BERT-based Passage Retrieval and Ranking" (EMNLP 2021) and "CharacterBERT and Self-Teaching for Improving the
Robustness of Dense Retrievers on Queries with Typos" (SIGIR 2022); Sidiropoulos & Kanoulas, "Analysing the
Robustness of Dual Encoders for Dense Retrieval Against Misspellings" (SIGIR 2022). Typo types: random insertion,
deletion, substitution, swap of neighbouring characters and keyboard-neighbour substitution; a typo goes into a
word that is not a stopword and is long enough; a query gets a fixed number of typos.

Carried over to eleven scripts:

- words are ICU word-break segments (Chinese and Thai have no spaces) and edits are on grapheme clusters, so a
  Hindi or Thai vowel sign is never split from its consonant (``text.py``);
- "long enough" is counted in graphemes, with per-language defaults (``text.WordFilter``);
- inserted and substituted graphemes are drawn from the query's own lower-case letter graphemes: the English
  protocol draws from a-z, and the query's letters are the same script and register in every language (a random
  code point of the CJK block would be a rare character no one types by mistake). nlpaug's ``RandomCharAug``
  only knows ASCII letters, hence this code;
- keyboard typos use nlpaug's layouts where it has one (``keyboards.py``);
- each edited word gets exactly one grapheme edit, checked by re-segmenting the edited word (an edit whose result
  ICU groups into different clusters, e.g. a Devanagari virama joining the next consonant, is not used).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .base import QueryPerturbation
from .keyboards import KEYBOARD_LANGUAGES, keyboard_layout, keyboard_substitutions
from .text import SegmentedText, WordFilter, graphemes, topic_rng

__all__ = [
    "DEFAULT_OPERATIONS",
    "OPERATIONS",
    "CharacterNoise",
    "GraphemeEdit",
    "NoisyQuery",
    "WordEdit",
    "candidate_edits",
    "query_alphabet",
]

OPERATIONS = ("delete", "insert", "substitute", "swap", "keyboard")
# Keyboard typos need a layout, which not every language has (keyboards.KEYBOARD_LANGUAGES): ask for them
# explicitly rather than have them silently missing in some languages.
DEFAULT_OPERATIONS = ("delete", "insert", "substitute", "swap")


@dataclass(frozen=True)
class GraphemeEdit:
    """One grapheme-level edit of a word.

    operation: delete | insert | substitute | swap | keyboard.
    position: the grapheme index (insert: the index the new grapheme gets; swap: the first of the two).
    grapheme: the inserted or substituted grapheme ("" for delete and swap).
    """

    operation: str
    position: int
    grapheme: str = ""

    def apply(self, word_graphemes: Sequence[str]) -> list[str]:
        g = list(word_graphemes)
        p = self.position
        if self.operation == "delete":
            del g[p]
        elif self.operation == "insert":
            g.insert(p, self.grapheme)
        elif self.operation in ("substitute", "keyboard"):
            g[p] = self.grapheme
        elif self.operation == "swap":
            g[p], g[p + 1] = g[p + 1], g[p]
        else:
            raise ValueError(f"unknown edit operation {self.operation!r}; expected one of {list(OPERATIONS)}")
        return g


@dataclass(frozen=True)
class WordEdit:
    """An edit applied to word ``word_index`` (an index into the query's ICU words)."""

    word_index: int
    original: str
    edited: str
    edit: GraphemeEdit


@dataclass(frozen=True)
class NoisyQuery:
    """A perturbed query with the edits that made it."""

    query: str
    edits: tuple[WordEdit, ...]


def query_alphabet(words: Sequence[str], lang: str) -> tuple[str, ...]:
    """The graphemes a random insertion or substitution may use: the query's lower-case letter graphemes."""
    alphabet = set()
    for word in words:
        for g in graphemes(word, lang):
            if g[0].isalpha() and g == g.lower():
                alphabet.add(g)
    return tuple(sorted(alphabet))


def candidate_edits(
    word_graphemes: Sequence[str],
    operation: str,
    alphabet: Sequence[str] = (),
    keyboard: Mapping[str, tuple[str, ...]] | None = None,
) -> list[GraphemeEdit]:
    """Every single edit of ``operation`` that changes the word (in a fixed order).

    Not yet checked against re-segmentation: see ``is_clean_edit``.
    """
    g = list(word_graphemes)
    n = len(g)
    if operation == "delete":
        return [GraphemeEdit("delete", p) for p in range(n)] if n > 1 else []
    if operation == "insert":
        return [GraphemeEdit("insert", p, a) for p in range(n + 1) for a in alphabet]
    if operation == "substitute":
        return [GraphemeEdit("substitute", p, a) for p in range(n) for a in alphabet if a != g[p]]
    if operation == "swap":
        return [GraphemeEdit("swap", p) for p in range(n - 1) if g[p] != g[p + 1]]
    if operation == "keyboard":
        if keyboard is None:
            raise ValueError("keyboard edits need a keyboard layout")
        return [GraphemeEdit("keyboard", p, s) for p in range(n) for s in keyboard_substitutions(g[p], keyboard)]
    raise ValueError(f"unknown edit operation {operation!r}; expected one of {list(OPERATIONS)}")


def is_clean_edit(word_graphemes: Sequence[str], edit: GraphemeEdit, lang: str) -> bool:
    """True when the edited word re-segments into exactly the intended graphemes (one grapheme edit)."""
    expected = edit.apply(word_graphemes)
    return graphemes("".join(expected), lang) == expected


def check_operations(operations: Sequence[str]) -> tuple[str, ...]:
    if isinstance(operations, str):
        operations = (operations,)
    operations = tuple(operations)
    if not operations:
        raise ValueError(f"operations must name at least one of {list(OPERATIONS)}")
    unknown = [op for op in operations if op not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown typo operations {unknown}; expected some of {list(OPERATIONS)}")
    return tuple(dict.fromkeys(operations))


def check_operation_language(operations: Sequence[str], lang: str) -> None:
    if "keyboard" in operations and lang not in KEYBOARD_LANGUAGES:
        raise ValueError(
            f"keyboard typos are not available for language {lang!r}: they need a keyboard layout, available for "
            f"{list(KEYBOARD_LANGUAGES)}; drop 'keyboard' from operations for this language"
        )


class CharacterNoise(QueryPerturbation):
    """Random typos: ``edits`` words of each query get one grapheme edit each.

    edits: the strength, the number of typos per query (>= 0). A query with fewer editable words gets one typo
        in each editable word (and none if it has none, e.g. a query of stopwords).
    operations: typo types drawn uniformly per edited word, among delete, insert, substitute, swap, keyboard
        (keyboard needs a layout: ``keyboards.KEYBOARD_LANGUAGES``). When the drawn type cannot edit the word
        (a swap in "aaa"), another type is tried, then another word.
    word_filter: which words may be edited (length in graphemes, stopwords).
    seed, lang: see ``QueryPerturbation``.

    Input/output columns: see ``QueryPerturbation``; ``edit_query`` also returns the edits.
    """

    def __init__(
        self,
        edits: int = 1,
        operations: Sequence[str] = DEFAULT_OPERATIONS,
        *,
        word_filter: WordFilter | None = None,
        seed: int = 0,
        lang: str | None = None,
    ):
        if not isinstance(edits, int) or isinstance(edits, bool) or edits < 0:
            raise ValueError(f"edits (typos per query) must be an int >= 0, got {edits!r}")
        self.edits = edits
        self.operations = check_operations(operations)
        self.word_filter = word_filter or WordFilter()
        super().__init__(seed=seed, lang=lang)

    def __repr__(self) -> str:
        return f"CharacterNoise(edits={self.edits}, operations={list(self.operations)}, seed={self.seed})"

    def check_language(self, lang: str) -> None:
        check_operation_language(self.operations, lang)
        self.word_filter.check_language(lang)

    def edit_query(self, query: str, lang: str, qid: str) -> NoisyQuery:
        """The typo'd query of topic ``qid`` and its edits."""
        self.check_language(lang)
        segmented = SegmentedText.of(query, lang)
        words = segmented.words
        rng = topic_rng(self.seed, qid, "character-noise")
        editable = self.word_filter.editable_indices(words, lang)
        rng.shuffle(editable)
        alphabet = query_alphabet(words, lang)
        keyboard = keyboard_layout(lang) if "keyboard" in self.operations else None
        done: list[WordEdit] = []
        for word_index in editable:
            if len(done) == self.edits:
                break
            word_graphemes = graphemes(words[word_index], lang)
            operations = list(self.operations)
            rng.shuffle(operations)
            for operation in operations:
                candidates = candidate_edits(word_graphemes, operation, alphabet, keyboard)
                rng.shuffle(candidates)
                edit = next((e for e in candidates if is_clean_edit(word_graphemes, e, lang)), None)
                if edit is not None:
                    edited = "".join(edit.apply(word_graphemes))
                    done.append(WordEdit(word_index, words[word_index], edited, edit))
                    break
        done.sort(key=lambda e: e.word_index)
        text = segmented.replace_words({e.word_index: e.edited for e in done})
        return NoisyQuery(text, tuple(done))

    def perturb(self, topic: Mapping[str, Any]) -> str:
        return self.edit_query(topic["query"], topic["lang"], topic["qid"]).query
