"""Words and graphemes of a query in any LAReQA language, and which words a typo may touch.

Perturbations edit *words* and count edits in *graphemes* (user-perceived characters):

- Words come from ICU word breaking (UAX #29 plus ICU's dictionaries, through ``icu4py``): Chinese and Thai are
  written without spaces and need a dictionary, and ``\\w+`` would cut Hindi and Thai words at vowel signs.
- Graphemes come from ICU's extended grapheme clusters (``CharacterBreaker``): a Devanagari consonant with its
  vowel signs (and a conjunct such as ``र्स``) is one cluster, so an edit never leaves a bare combining mark.

A segment is a *word* when it contains a letter; numbers and punctuation are never edited (a changed digit is a
different question, not a typo).
"""
from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from icu4py.breakers import CharacterBreaker, WordBreaker

__all__ = [
    "LAREQA_LANGUAGES",
    "UNSPACED_LANGUAGES",
    "SegmentedText",
    "WordFilter",
    "graphemes",
    "is_word",
    "round_half_up",
    "stopwords",
    "topic_rng",
]

# The XQuAD-R languages (MLQA-R's are a subset). Kept here rather than imported from pyterrier_hybrid.datasets so
# that the perturbations do not depend on the release-file machinery.
LAREQA_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")

# Languages written without spaces between words: a Latin word put into such a text (romanisation,
# code-switching) needs spaces around it to stay a separate word.
UNSPACED_LANGUAGES = frozenset({"zh", "th", "ja", "lo", "km", "my"})


def check_language_code(lang: object) -> str:
    if not isinstance(lang, str) or not lang.strip():
        raise ValueError(f"a language must be a non-empty ISO 639-1 code such as 'de', got {lang!r}")
    return lang


def graphemes(text: str, lang: str) -> list[str]:
    """The extended grapheme clusters of ``text`` (ICU ``CharacterBreaker``)."""
    if not text:
        return []
    return list(CharacterBreaker(text, lang))


def is_word(segment: str) -> bool:
    """True for a word segment: one containing a letter (Unicode category L*)."""
    return any(unicodedata.category(ch).startswith("L") for ch in segment)


def round_half_up(x: float) -> int:
    """Python's round() rounds halves to even (round(0.5) == 0); a strength of 0.5 over one word should edit it."""
    return int(x + 0.5)


def topic_rng(seed: int, qid: str, *salt: object) -> random.Random:
    """A random generator that depends only on (seed, qid, salt).

    So a topic's perturbation does not depend on the order or the subset of topics it came with, and does not
    change between processes (Python's ``hash`` of a string is salted per process; BLAKE2 is not).
    """
    key = "\x1f".join(str(part) for part in (seed, qid, *salt)).encode("utf-8")
    return random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big"))


@dataclass(frozen=True)
class SegmentedText:
    """A text cut into ICU word-break segments; ``word_positions`` index the segments that are words."""

    text: str
    lang: str
    segments: tuple[str, ...]
    word_positions: tuple[int, ...]

    @classmethod
    def of(cls, text: str, lang: str) -> "SegmentedText":
        segments = tuple(WordBreaker(text, lang)) if text else ()
        return cls(text, lang, segments, tuple(i for i, seg in enumerate(segments) if is_word(seg)))

    @property
    def words(self) -> list[str]:
        return [self.segments[i] for i in self.word_positions]

    def replace_words(self, replacements: Mapping[int, str], *, space_out: bool = False) -> str:
        """The text with word ``i`` (an index into ``words``) replaced by ``replacements[i]``.

        ``space_out``: in a language written without spaces, put a space between a replaced word and a
        neighbouring word (romanised or foreign words must not run into their neighbours).
        """
        for index in replacements:
            if not 0 <= index < len(self.word_positions):
                raise IndexError(f"word index {index} out of range for {len(self.word_positions)} words")
        replaced_segments = {self.word_positions[i]: new for i, new in replacements.items()}
        pieces = [replaced_segments.get(i, seg) for i, seg in enumerate(self.segments)]
        if not (space_out and self.lang.split("-")[0].split("_")[0] in UNSPACED_LANGUAGES):
            return "".join(pieces)
        words = set(self.word_positions)
        out: list[str] = []
        for i, piece in enumerate(pieces):
            if i > 0 and i in words and (i - 1) in words and (i in replaced_segments or (i - 1) in replaced_segments):
                out.append(" ")
            out.append(piece)
        return "".join(out)


# Stopword lists. The typo protocol leaves function words alone; a list of function words is what it needs.
# NLTK's lists (derived from Snowball's) are function-word lists and bm25s ships them for en/de/es/ru/tr/zh (the
# project depends on bm25s already). stopwords-iso (package ``stopwordsiso``) covers every LAReQA language but
# is much broader (its English list has "world", "information", "system"), so it is used only where NLTK has no
# list here: ar, el, hi, th, vi (its Thai list is PyThaiNLP's).
_BM25S_STOPWORDS = {
    "en": "STOPWORDS_EN_PLUS",
    "de": "STOPWORDS_GERMAN",
    "es": "STOPWORDS_SPANISH",
    "ru": "STOPWORDS_RUSSIAN",
    "tr": "STOPWORDS_TURKISH",
    "zh": "STOPWORDS_CHINESE",
}


@lru_cache(maxsize=None)
def stopwords(lang: str) -> frozenset[str]:
    """The case-folded stopwords of ``lang``; raises ValueError for a language without a list."""
    check_language_code(lang)
    if lang in _BM25S_STOPWORDS:
        import bm25s.stopwords

        words = getattr(bm25s.stopwords, _BM25S_STOPWORDS[lang])
    else:
        import stopwordsiso

        if not stopwordsiso.has_lang(lang):
            raise ValueError(
                f"no stopword list for language {lang!r}; pass skip_stopwords=False to WordFilter, or use one of "
                f"{sorted(set(_BM25S_STOPWORDS) | set(stopwordsiso.langs()))}"
            )
        words = stopwordsiso.stopwords(lang)
    return frozenset(w.casefold() for w in words)


# Minimum word length in graphemes. Typo studies skip words shorter than 3 characters (Latin letters). In the
# abugidas (Hindi, Thai) a grapheme cluster is a consonant with its vowel signs, about a syllable: Hindi "अंक"
# (number) and Thai "ทีม" (team) are two clusters, and a threshold of 3 would leave only 38% of Hindi question words
# editable. A Chinese character is a morpheme and most Chinese words have one or two: with 3, 162 of 300 XQuAD-R
# Chinese questions would have no editable word. So 2 for hi/th/zh, 3 elsewhere.
DEFAULT_MIN_WORD_GRAPHEMES = 3
MIN_WORD_GRAPHEMES_BY_LANGUAGE = {"hi": 2, "th": 2, "zh": 2}


@dataclass(frozen=True)
class WordFilter:
    """Which words a typo may edit: at least ``min_graphemes`` grapheme clusters and not a stopword.

    min_graphemes: None for the per-language default (``MIN_WORD_GRAPHEMES_BY_LANGUAGE``, else 3), or an int
        for every language.
    skip_stopwords: leave the language's stopwords (``stopwords(lang)``, compared case-folded) alone.
    """

    min_graphemes: int | None = None
    skip_stopwords: bool = True

    def __post_init__(self):
        if self.min_graphemes is not None and (not isinstance(self.min_graphemes, int) or self.min_graphemes < 1):
            raise ValueError(f"min_graphemes must be a positive int or None, got {self.min_graphemes!r}")

    def min_length(self, lang: str) -> int:
        if self.min_graphemes is not None:
            return self.min_graphemes
        return MIN_WORD_GRAPHEMES_BY_LANGUAGE.get(lang, DEFAULT_MIN_WORD_GRAPHEMES)

    def check_language(self, lang: str) -> None:
        if self.skip_stopwords:
            stopwords(lang)

    def editable(self, word: str, lang: str) -> bool:
        if not is_word(word) or len(graphemes(word, lang)) < self.min_length(lang):
            return False
        return not (self.skip_stopwords and word.casefold() in stopwords(lang))

    def editable_indices(self, words: Sequence[str], lang: str) -> list[int]:
        return [i for i, word in enumerate(words) if self.editable(word, lang)]
