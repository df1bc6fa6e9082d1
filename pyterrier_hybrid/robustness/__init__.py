"""Query perturbations for robustness studies, as PyTerrier transformers placed before a retriever.

    noisy = CharacterNoise(edits=2, seed=1) >> retriever

Every perturbation takes topics (``qid``, ``query``, ``lang`` or ``lang=``; others pass through), returns them
with ``query`` perturbed and the original in ``query_0``, is deterministic per (seed, qid), and has a strength:

- ``CharacterNoise(edits, operations)``: random typos (delete, insert, substitute, swap, keyboard) in words of at
  least 3 graphemes (2 in hi/th/zh) that are not stopwords; ICU words and grapheme clusters in every language.
- ``StripDiacritics(strength)``, ``Romanize(strength)``, ``TraditionalChinese(strength)``, ``Lowercase(strength)``:
  orthographic variants of a fraction of the words.
- ``CodeSwitch(parallel, to, strength)``: a fraction of the words replaced by words of the parallel question in
  another language (``parallel_questions(topics)``).
- ``AdversarialTypos(scorer, qrels, documents, budget)``: greedy worst-case typos against a scorer.
"""
from .adversarial import AdversarialTypos
from .base import QueryPerturbation
from .code_switching import CodeSwitch, parallel_questions, positional_alignment
from .keyboards import KEYBOARD_LANGUAGES, keyboard_layout
from .orthography import (
    DIACRITICS_LANGUAGES,
    ROMANIZATION_LANGUAGES,
    Lowercase,
    Romanize,
    StripDiacritics,
    TraditionalChinese,
    WordVariant,
    strip_diacritics,
)
from .text import LAREQA_LANGUAGES, SegmentedText, WordFilter, graphemes, stopwords
from .typos import DEFAULT_OPERATIONS, OPERATIONS, CharacterNoise, GraphemeEdit, NoisyQuery, WordEdit

__all__ = [
    "DEFAULT_OPERATIONS",
    "DIACRITICS_LANGUAGES",
    "KEYBOARD_LANGUAGES",
    "LAREQA_LANGUAGES",
    "OPERATIONS",
    "ROMANIZATION_LANGUAGES",
    "AdversarialTypos",
    "CharacterNoise",
    "CodeSwitch",
    "GraphemeEdit",
    "Lowercase",
    "NoisyQuery",
    "QueryPerturbation",
    "Romanize",
    "SegmentedText",
    "StripDiacritics",
    "TraditionalChinese",
    "WordEdit",
    "WordFilter",
    "WordVariant",
    "graphemes",
    "keyboard_layout",
    "parallel_questions",
    "positional_alignment",
    "stopwords",
    "strip_diacritics",
]
