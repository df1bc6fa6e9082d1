"""Orthographic and dialect-like variants of queries: what people type when they skip marks, write in Latin
letters, or use the other Chinese script.

Every variant works word by word (ICU words) on a fraction of the words: ``strength`` in [0, 1] is the fraction
of the query's *changeable* words (those the variant changes) that are changed, rounded half up, chosen by
(seed, qid). strength=1 changes every such word, as in a query typed entirely without accents; a smaller strength
gives mixed queries (Hinglish-style partial romanisation is common).

- ``StripDiacritics``: marks that writers drop (ar de el es hi ru tr vi).
- ``Romanize``: Latin-letter writing (ar el hi ru th zh).
- ``TraditionalChinese``: simplified -> traditional characters (zh), with OpenCC.
- ``Lowercase``: case dropped (every language; a no-op for the caseless scripts ar hi th zh).
"""
from __future__ import annotations

import abc
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .base import QueryPerturbation
from .text import SegmentedText, round_half_up, topic_rng

__all__ = [
    "DIACRITICS_LANGUAGES",
    "ROMANIZATION_LANGUAGES",
    "Lowercase",
    "Romanize",
    "StripDiacritics",
    "TraditionalChinese",
    "WordVariant",
    "strip_diacritics",
]


class WordVariant(QueryPerturbation):
    """A perturbation that rewrites a fraction ``strength`` of the words a word-level variant changes.

    Subclasses set ``languages`` (None: any) and implement ``variant(word, lang)``. ``space_out``: in a language
    written without spaces, separate rewritten words from their neighbours with spaces (Latin words must not run
    together).
    """

    languages: ClassVar[tuple[str, ...] | None] = None
    space_out: ClassVar[bool] = False

    def __init__(self, strength: float = 1.0, *, seed: int = 0, lang: str | None = None):
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength (fraction of changeable words) must be in [0, 1], got {strength!r}")
        self.strength = float(strength)
        super().__init__(seed=seed, lang=lang)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(strength={self.strength}, seed={self.seed})"

    def check_language(self, lang: str) -> None:
        if self.languages is not None and lang not in self.languages:
            raise ValueError(
                f"{type(self).__name__} is not defined for language {lang!r}; supported: {list(self.languages)}"
            )

    @abc.abstractmethod
    def variant(self, word: str, lang: str) -> str:
        """The variant of one word (the word itself when the variant does not change it)."""

    def word_variants(self, words: list[str], lang: str) -> list[str]:
        """The variant of every word of a query (a subclass may look at neighbouring words)."""
        return [self.variant(word, lang) for word in words]

    def rewrite(self, query: str, lang: str, qid: str) -> tuple[str, dict[int, str]]:
        """The rewritten query and the rewritten words (word index -> new word)."""
        self.check_language(lang)
        segmented = SegmentedText.of(query, lang)
        variants = dict(enumerate(self.word_variants(segmented.words, lang)))
        changeable = [i for i, new in variants.items() if new != segmented.words[i]]
        count = round_half_up(self.strength * len(changeable))
        chosen = sorted(topic_rng(self.seed, qid, type(self).__name__).sample(changeable, count))
        replacements = {i: variants[i] for i in chosen}
        return segmented.replace_words(replacements, space_out=self.space_out), replacements

    def perturb(self, topic: Mapping[str, Any]) -> str:
        return self.rewrite(topic["query"], topic["lang"], topic["qid"])[0]


# --- Diacritics ---------------------------------------------------------------------------------------------------
# Hand-written on purpose: unidecode/anyascii transliterate a whole script to ASCII, which is romanisation (below),
# not "the same script without its optional marks"; and German writers replace umlauts by ae/oe/ue, which
# NFD-stripping does not give. What each language drops:
#   ar  harakat, tanwin, shadda, sukun, dagger alef, and hamza/madda on their seats (أ إ آ -> ا, ؤ -> و,
#       ئ -> ي): every combining mark after canonical decomposition. Edited text rarely carries harakat (4 of the
#       first 40 XQuAD-R questions do); hamza is the mark informal Arabic most often leaves out ("اين" for "أين");
#   de  ä ö ü ß -> ae oe ue ss (the standard spelling without umlauts, DIN 5007-2);
#   el  tonos and dialytika (Greek typed without accents, as in all-caps or informal text);
#   es  acute accents and diaeresis (á é í ó ú ü -> a e i o u); ñ is a letter of its own and kept;
#   hi  nukta (ज़ -> ज, फ़ -> फ) and chandrabindu -> anusvara (ँ -> ं), which informal Hindi commonly drops. Vowel
#       signs (matras) are NOT removed: they are the vowels of the word, not optional marks, and a Hindi word
#       without its matras is a different or meaningless word;
#   ru  ё -> е (standard practice: ё is usually written е, so XQuAD-R's Russian questions rarely have one) and
#       stress marks;
#   tr  ç ğ ı İ ö ş ü â î û -> c g i I o s u a i u (Turkish typed on a non-Turkish keyboard);
#   vi  every tone and vowel mark and đ -> d (Vietnamese "không dấu", common in informal writing and URLs).
# Thai tone marks and vowels are obligatory (no variant), English and Chinese have none.

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss", "ẞ": "SS"})
_TURKISH = str.maketrans(
    {"ç": "c", "ğ": "g", "ı": "i", "İ": "I", "ö": "o", "ş": "s", "ü": "u", "â": "a", "î": "i", "û": "u",
     "Ç": "C", "Ğ": "G", "Ö": "O", "Ş": "S", "Ü": "U", "Â": "A", "Î": "I", "Û": "U"}
)
_COMBINING_ACUTE, _COMBINING_DIAERESIS = "\u0301", "\u0308"
_DEVANAGARI_NUKTA, _CHANDRABINDU, _ANUSVARA = "\u093c", "\u0901", "\u0902"


def _drop_marks(text: str, marks: Callable[[str], bool]) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not marks(ch)))


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) == "Mn"


def _spanish(text: str) -> str:
    return _drop_marks(text, lambda ch: ch in (_COMBINING_ACUTE, _COMBINING_DIAERESIS))


def _hindi(text: str) -> str:
    return _drop_marks(text, lambda ch: ch == _DEVANAGARI_NUKTA).replace(_CHANDRABINDU, _ANUSVARA)


def _russian(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("ё", "е").replace("Ё", "Е")
    return _drop_marks(text, lambda ch: ch == _COMBINING_ACUTE)


def _vietnamese(text: str) -> str:
    return _drop_marks(text, _is_mark).replace("đ", "d").replace("Đ", "D")


_DIACRITIC_RULES: dict[str, Callable[[str], str]] = {
    "ar": lambda text: _drop_marks(text, _is_mark),
    "de": lambda text: unicodedata.normalize("NFC", text).translate(_GERMAN),
    "el": lambda text: _drop_marks(text, _is_mark),
    "es": _spanish,
    "hi": _hindi,
    "ru": _russian,
    "tr": lambda text: unicodedata.normalize("NFC", text).translate(_TURKISH),
    "vi": _vietnamese,
}
DIACRITICS_LANGUAGES = tuple(sorted(_DIACRITIC_RULES))


def strip_diacritics(text: str, lang: str) -> str:
    """``text`` without the marks that writers of ``lang`` drop (see the table above)."""
    if lang not in _DIACRITIC_RULES:
        raise ValueError(
            f"diacritics removal is not defined for language {lang!r}; supported: {list(DIACRITICS_LANGUAGES)} "
            "(Thai marks are obligatory; English and Chinese have none)"
        )
    return _DIACRITIC_RULES[lang](text)


class StripDiacritics(WordVariant):
    """Words written without their optional marks (``strip_diacritics``); languages: ``DIACRITICS_LANGUAGES``."""

    languages = DIACRITICS_LANGUAGES

    def variant(self, word: str, lang: str) -> str:
        stripped = strip_diacritics(word, lang)
        # A word already in NFC without marks must count as unchanged, whatever its input normal form.
        return word if stripped == unicodedata.normalize("NFC", word) else stripped


# --- Romanisation -------------------------------------------------------------------------------------------------
# One library per script, chosen by comparing their output on XQuAD-R questions:
#   zh  pypinyin: picks the reading of polyphonic characters from its phrase dictionary (贾 -> jia, where uroman
#       gives "gu"); tone-less pinyin as typed into a pinyin input method, syllables of an ICU word joined
#       ("fangshou");
#   th  PyThaiNLP's "royin" engine, the Royal Thai General System (the official romanisation; rule-based, no
#       model download); anyascii cleans the rare mark it leaves (แซ็ค -> "sae็k");
#   ar  uroman: writes the article and long vowels ("albanthrz", "dfa'"), where anyascii drops the alef
#       ("lbnthrz", "df`"); it takes a few seconds to load, once per transformer;
#   hi  anyascii: deletes the inherent final/medial schwa as Hindi speakers write ("kitne", "pas"); uroman and
#       the indic-transliteration schemes keep it ("kitane", ITRANS capitals such as "DifeMsa");
#   el, ru  anyascii: standard letter-by-letter transliteration (η -> i, ντ -> nt as in Greeklish; uroman writes
#       phonetic "pondous"); Russian "Skol'ko ochkov" (BGN/PCGN-like).
ROMANIZATION_BACKENDS = {"ar": "uroman", "el": "anyascii", "hi": "anyascii", "ru": "anyascii", "th": "royin",
                         "zh": "pypinyin"}
ROMANIZATION_LANGUAGES = tuple(sorted(ROMANIZATION_BACKENDS))
_MAI_YAMOK = "\u0e46"
_UROMAN_LANGUAGE_CODES = {"ar": "ara", "el": "ell", "hi": "hin", "ru": "rus", "th": "tha", "zh": "zho"}


class Romanize(WordVariant):
    """Words written in Latin letters; languages: ``ROMANIZATION_LANGUAGES`` (ar el hi ru th zh).

    backends: override the library of some languages, e.g. ``{"el": "uroman"}``; a backend is one of "anyascii",
    "uroman" (any of these languages), "pypinyin" (zh), "royin" (th).
    In Chinese and Thai the romanised words are separated from their neighbours by spaces.
    """

    languages = ROMANIZATION_LANGUAGES
    space_out = True
    _BACKEND_LANGUAGES: ClassVar[dict[str, tuple[str, ...]]] = {
        "anyascii": ROMANIZATION_LANGUAGES,
        "uroman": ROMANIZATION_LANGUAGES,
        "pypinyin": ("zh",),
        "royin": ("th",),
    }

    def __init__(
        self,
        strength: float = 1.0,
        *,
        backends: Mapping[str, str] | None = None,
        seed: int = 0,
        lang: str | None = None,
    ):
        self.backends = dict(ROMANIZATION_BACKENDS)
        for language, backend in (backends or {}).items():
            if language not in ROMANIZATION_BACKENDS:
                raise ValueError(
                    f"romanisation is not defined for {language!r}; supported: {list(ROMANIZATION_LANGUAGES)}"
                )
            if language not in self._BACKEND_LANGUAGES.get(backend, ()):
                raise ValueError(
                    f"romanisation backend {backend!r} is not available for {language!r}; choose among "
                    f"{[b for b, langs in self._BACKEND_LANGUAGES.items() if language in langs]}"
                )
            self.backends[language] = backend
        self._uroman = None  # loaded on first use (a few seconds)
        super().__init__(strength, seed=seed, lang=lang)

    def word_variants(self, words: list[str], lang: str) -> list[str]:
        out = super().word_variants(words, lang)
        if lang == "th":
            # ๆ (mai yamok) repeats the word before it; romanised text writes the word twice (ต่าง ๆ -> tang tang).
            for i, word in enumerate(words):
                if word == _MAI_YAMOK and i > 0:
                    out[i] = out[i - 1]
        return out

    def variant(self, word: str, lang: str) -> str:
        backend = self.backends[lang]
        if backend == "pypinyin":
            from pypinyin import lazy_pinyin

            return "".join(lazy_pinyin(word))
        if backend == "royin":
            from anyascii import anyascii
            from pythainlp.transliterate import romanize

            if word.endswith(_MAI_YAMOK) and len(word) > 1:  # ICU keeps an attached ๆ in the word: เด็กๆ
                stem = self.variant(word[:-1], lang)
                return f"{stem} {stem}"
            return anyascii(romanize(word, engine="royin"))
        if backend == "uroman":
            if self._uroman is None:
                import uroman

                self._uroman = uroman.Uroman()
            return self._uroman.romanize_string(word, lcode=_UROMAN_LANGUAGE_CODES[lang])
        from anyascii import anyascii

        return anyascii(word)


# --- Chinese scripts ----------------------------------------------------------------------------------------------
class TraditionalChinese(WordVariant):
    """Simplified Chinese words written in traditional characters, with OpenCC (phrase-aware: 头发 -> 頭髮,
    发展 -> 發展). ``config``: an OpenCC simplified-to-traditional configuration: "s2t" (OpenCC standard),
    "s2tw" (Taiwan), "s2twp" (Taiwan, with Taiwanese phrases: 软件 -> 軟體) or "s2hk" (Hong Kong)."""

    languages = ("zh",)
    CONFIGS = ("s2t", "s2tw", "s2twp", "s2hk")

    def __init__(self, strength: float = 1.0, *, config: str = "s2t", seed: int = 0, lang: str | None = None):
        if config not in self.CONFIGS:
            raise ValueError(f"unknown OpenCC configuration {config!r}; expected one of {list(self.CONFIGS)}")
        import opencc

        self.config = config
        self._converter = opencc.OpenCC(f"{config}.json")
        super().__init__(strength, seed=seed, lang=lang)

    def variant(self, word: str, lang: str) -> str:
        return self._converter.convert(word)


# --- Case ---------------------------------------------------------------------------------------------------------
class Lowercase(WordVariant):
    """Words typed in lower case (Turkish-aware: I -> ı, İ -> i). A no-op for caseless scripts (ar hi th zh);
    the one orthographic variant that applies to English."""

    def variant(self, word: str, lang: str) -> str:
        if lang in ("tr", "az"):
            word = word.replace("I", "ı").replace("İ", "i")
        return word.lower()
