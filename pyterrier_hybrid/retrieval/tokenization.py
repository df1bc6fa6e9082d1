"""Word tokenisation for BM25 in every LAReQA language, without Java.

``MultilingualTokenizer.tokenize(text, lang)`` turns a text into index terms:

1. Unicode normalisation (NFKC by default: full-width Latin letters and digits in Chinese text become ASCII, and
   composed/decomposed forms of the same letter, e.g. Devanagari nukta letters, become one form), and removal of
   invisible format characters (byte order marks, soft hyphens, zero-width joiners; a zero-width space becomes a
   space, since Thai and Khmer writers use it to separate words).
2. ICU word breaking (UAX #29 plus ICU's dictionaries), through ``icu4py``, which bundles ICU: Chinese and Thai
   are segmented into dictionary words, Hindi words keep their vowel signs, Arabic, Greek and Cyrillic words keep
   their letters. A regular expression cannot do this: ``\\w+`` splits Devanagari and Thai at combining vowel
   signs and leaves a Chinese sentence as one token.
3. Segments that contain no letter or digit (spaces, punctuation) are dropped.
4. Case folding (``str.casefold``), with the Turkish dotted/dotless i handled first (see ``_fold_case``).
5. Optional stopword removal (the NLTK-derived lists shipped with bm25s, for the languages that have one).
6. Optional Snowball stemming (PyStemmer) for the languages Snowball covers; of the LAReQA languages these are
   ar, de, el, en, es, hi, ru and tr; th, vi and zh have no stemmer and are left unstemmed (Chinese and Thai do
   not inflect, and ICU gives Vietnamese syllables, the usual unit of Vietnamese BM25).

Defaults (stemming on, stopwords kept) were chosen by measurement (benchmarks/bm25_tokenizers.py, BM25 mAP on
XQuAD-R monolingual, mean over 11 languages, sentence + paragraph): bm25s' regex tokeniser 0.683 (Chinese 0.095),
ICU words 0.783, ICU + Snowball 0.814, ICU + Snowball + stopwords 0.813 (helps tr, hurts en/es/zh).

Languages are ISO 639 codes (``"de"``, optionally with a region, ``"pt-BR"``). A code that is not shaped like a
language code (``"german"``, ``""``, ``None``) raises ``ValueError``. A well-formed code that ICU and Snowball do
not know (e.g. ``"sw"``) is *accepted*: ICU then applies its root word-break rules (script-based, so they still
segment any script correctly) and no stemmer is used. We cannot tell a rare-but-real code from a made-up one
without a full ISO 639 table, and refusing real languages would be the worse failure for a baseline; use
``MultilingualTokenizer.has_stemmer(lang)`` to check what a language gets.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["MultilingualTokenizer", "Tokenizer", "TokenizerConfig"]

# A BCP 47 primary language subtag (2-3 letters) with optional subtags ("zh", "pt-BR", "zh_Hant_TW").
_LANGUAGE_CODE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")

# Turkish and Azerbaijani write the genitive/case suffix of a proper noun after an apostrophe ("Türkiye'nin");
# Lucene's TurkishAnalyzer drops everything from the apostrophe on (ApostropheFilter) so that the name matches
# its bare form. ICU keeps such a word as one segment, so we do the same here.
_APOSTROPHE_SUFFIX_LANGUAGES = frozenset({"tr", "az"})
_APOSTROPHES = ("'", "\u2019")

# Languages whose case mapping differs from the default Unicode one for I/i (Turkish dotless ı, dotted İ).
_TURKIC_CASE_LANGUAGES = frozenset({"tr", "az"})


class Tokenizer(Protocol):
    """What a BM25 retriever needs from a tokeniser: the terms of a text in a given language."""

    def tokenize(self, text: str, lang: str) -> list[str]: ...


@dataclass(frozen=True)
class TokenizerConfig:
    """How ``MultilingualTokenizer`` turns text into terms.

    stem: apply the language's Snowball stemmer when PyStemmer has one.
    casefold: case-fold terms (``str.casefold``, Turkish-aware).
    normalization: Unicode normal form applied before word breaking, or None for none.
    min_length: drop terms shorter than this many characters (counted before stemming). 1 keeps every word,
        which matters for Chinese, where many words are one character.
    remove_stopwords: drop the stopwords of the language (bm25s' lists; languages without a list keep every word).
    """

    stem: bool = True
    casefold: bool = True
    normalization: Literal["NFC", "NFKC"] | None = "NFKC"
    min_length: int = 1
    remove_stopwords: bool = False

    def __post_init__(self):
        if self.normalization not in ("NFC", "NFKC", None):
            raise ValueError(f"normalization must be 'NFC', 'NFKC' or None, got {self.normalization!r}")
        if self.min_length < 1:
            raise ValueError(f"min_length must be at least 1, got {self.min_length}")


class MultilingualTokenizer:
    """ICU word breaking + case folding + optional stopwords and Snowball stemming, per language.

    Stemmers and stopword lists are created lazily and cached on the instance (PyStemmer stemmers are not
    thread-safe, so an instance should not be shared between threads).
    """

    def __init__(self, config: TokenizerConfig | None = None):
        self.config = config if config is not None else TokenizerConfig()
        self._stemmers: dict[str, object | None] = {}
        self._stopwords: dict[str, frozenset[str]] = {}

    def __repr__(self) -> str:
        return f"MultilingualTokenizer({self.config!r})"

    @staticmethod
    def language(lang: str) -> str:
        """The lower-case primary language subtag of ``lang``; ValueError if it is not a language code."""
        if not isinstance(lang, str) or not _LANGUAGE_CODE.match(lang):
            raise ValueError(
                f"unknown language {lang!r}: expected an ISO 639 language code such as 'de', 'zh' or 'pt-BR'"
            )
        return re.split(r"[-_]", lang, maxsplit=1)[0].lower()

    def has_stemmer(self, lang: str) -> bool:
        """Whether PyStemmer has a Snowball stemmer for ``lang`` (independent of ``config.stem``)."""
        return self._stemmer(self.language(lang)) is not None

    def tokenize(self, text: str, lang: str) -> list[str]:
        """The terms of ``text`` read as language ``lang`` (an ISO 639 code)."""
        language = self.language(lang)
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        from icu4py.breakers import WordBreaker

        config = self.config
        if config.normalization is not None:
            text = unicodedata.normalize(config.normalization, text)
        text = text.translate(_format_character_table())
        if not text or text.isspace():
            return []
        words = [w for w in WordBreaker(text, language) if _has_letter_or_digit(w)]
        if language in _APOSTROPHE_SUFFIX_LANGUAGES:
            words = [_strip_apostrophe_suffix(w) for w in words]
        if config.casefold:
            words = [_fold_case(w, language) for w in words]
        if config.min_length > 1:
            words = [w for w in words if len(w) >= config.min_length]
        if config.remove_stopwords:
            stopwords = self._stopword_set(language)
            if stopwords:
                words = [w for w in words if w not in stopwords]
        if config.stem:
            stemmer = self._stemmer(language)
            if stemmer is not None:
                # Snowball can stem a whole word away (Greek "όταν" -> ""); keep the word then, since an empty
                # term is no word and bm25s reserves "" for its own empty-document token.
                words = [stem or word for word, stem in zip(words, stemmer.stemWords(words))]
        return words

    def _stemmer(self, language: str):
        if language not in self._stemmers:
            import Stemmer

            try:
                # PyStemmer accepts ISO 639 codes as algorithm names ("de", "deu", "ger").
                self._stemmers[language] = Stemmer.Stemmer(language)
            except KeyError:
                self._stemmers[language] = None
        return self._stemmers[language]

    def _stopword_set(self, language: str) -> frozenset[str]:
        if language not in self._stopwords:
            from bm25s import stopwords as bm25s_stopwords

            list_name = _BM25S_STOPWORD_LISTS.get(language)
            words = getattr(bm25s_stopwords, list_name) if list_name else ()
            # Fold the list like the text, so that "Der" in a text meets "der" in the list.
            self._stopwords[language] = frozenset(
                _fold_case(unicodedata.normalize("NFKC", w), language) for w in words
            )
        return self._stopwords[language]


# The stopword lists in bm25s.stopwords (NLTK's, plus Korean from stopwords-iso), by language code.
_BM25S_STOPWORD_LISTS = {
    "da": "STOPWORDS_DANISH",
    "de": "STOPWORDS_GERMAN",
    "en": "STOPWORDS_EN",
    "es": "STOPWORDS_SPANISH",
    "fr": "STOPWORDS_FRENCH",
    "it": "STOPWORDS_ITALIAN",
    "ko": "STOPWORDS_KOREAN",
    "nl": "STOPWORDS_DUTCH",
    "no": "STOPWORDS_NORWEGIAN",
    "pt": "STOPWORDS_PORTUGUESE",
    "ru": "STOPWORDS_RUSSIAN",
    "sv": "STOPWORDS_SWEDISH",
    "tr": "STOPWORDS_TURKISH",
    "zh": "STOPWORDS_CHINESE",
}


@functools.cache
def _format_character_table() -> dict[int, str | None]:
    """str.translate table: every Unicode format character (category Cf) removed, the zero-width space made a space.

    ICU's word breaker keeps format characters inside words (a soft hyphen or a byte order mark would make
    "ab\u00adcd" differ from "abcd"); Lucene's ICU folding drops them for the same reason. Computed from
    unicodedata rather than listed by hand, so it follows the Unicode version of Python.
    """
    table: dict[int, str | None] = {
        code_point: None for code_point in range(0x110000) if unicodedata.category(chr(code_point)) == "Cf"
    }
    table[0x200B] = " "  # ZERO WIDTH SPACE separates words in Thai, Khmer and Burmese text
    return table


def _has_letter_or_digit(segment: str) -> bool:
    # str.isalnum covers every Unicode letter (L*) and number (N*) category; ICU returns spaces and punctuation
    # as segments of their own, and those are not terms.
    return any(ch.isalnum() for ch in segment)


def _strip_apostrophe_suffix(word: str) -> str:
    for apostrophe in _APOSTROPHES:
        head, sep, _ = word.partition(apostrophe)
        if sep and head:
            return head
    return word


def _fold_case(word: str, language: str) -> str:
    if language in _TURKIC_CASE_LANGUAGES:
        # Python's casefold is language-independent: "İ" would become "i" + COMBINING DOT ABOVE and "I" would
        # become "i", which is wrong for Turkish (I -> ı, İ -> i) and breaks matching and Snowball stemming.
        word = word.replace("I", "ı").replace("İ", "i")
    return word.casefold()
