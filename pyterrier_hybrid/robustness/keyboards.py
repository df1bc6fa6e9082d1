"""Keyboard layouts for keyboard-neighbour typos, from nlpaug's layout files.

nlpaug ships neighbour maps (key -> keys around it) for en, de (QWERTZ), es, tr (Turkish Q), th (Kedmanee) and a
few languages outside LAReQA. We use its *data* but not its ``KeyboardAug``: that augmenter splits text on
``\\W`` and joins tokens back with spaces (``Türkiye'nin`` -> ``Türkiye ' nin``, and a Thai sentence is one
"word"), draws from the global ``random`` state, and its ``Keyboard`` model with ``special_char=False`` drops
every non-ASCII key (all of Thai). Reading the JSON through the installed package's folder also avoids importing
nlpaug, which imports torch (~3 s).

Vietnamese is typed on the US QWERTY layout (tones and vowel marks come from the Telex/VNI input methods), so it
gets the English map; a key typo then hits a base letter. No library here provides Arabic, Greek, Hindi
(InScript) or Russian (ЙЦУКЕН) neighbour maps, and Chinese is typed through pinyin input methods, so keyboard
typos are not offered for ar, el, hi, ru, zh (asking for them raises an error naming the supported languages).
"""
from __future__ import annotations

import importlib.util
import json
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

__all__ = ["KEYBOARD_LANGUAGES", "keyboard_layout", "keyboard_substitutions"]

# LAReQA language -> nlpaug layout file
_NLPAUG_LAYOUT_OF = {"de": "de", "en": "en", "es": "es", "th": "th", "tr": "tr", "vi": "en"}
KEYBOARD_LANGUAGES = tuple(sorted(_NLPAUG_LAYOUT_OF))


def _nlpaug_keyboard_dir() -> Path:
    spec = importlib.util.find_spec("nlpaug")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("keyboard typos read nlpaug's keyboard layouts: pip install nlpaug")
    return Path(list(spec.submodule_search_locations)[0]) / "res" / "char" / "keyboard"


def _kind(ch: str) -> str:
    return unicodedata.category(ch)[0]


@lru_cache(maxsize=None)
def keyboard_layout(lang: str) -> Mapping[str, tuple[str, ...]]:
    """Lower-case key -> neighbouring keys of the same kind (letter for letter, combining mark for mark).

    Digits and punctuation are dropped: a typo inside a word that puts a digit or a symbol there is not what
    keyboard-neighbour noise models in the typo literature (and would change word breaking).
    """
    if lang not in _NLPAUG_LAYOUT_OF:
        raise ValueError(
            f"no keyboard layout for language {lang!r}; keyboard typos are available for {list(KEYBOARD_LANGUAGES)} "
            "(nlpaug has no Arabic, Greek, Hindi or Russian layout, and Chinese is typed through input methods)"
        )
    path = _nlpaug_keyboard_dir() / f"{_NLPAUG_LAYOUT_OF[lang]}.json"
    with open(path, encoding="utf-8") as f:
        raw: dict[str, list[str]] = json.load(f)
    layout: dict[str, tuple[str, ...]] = {}
    for key, neighbours in raw.items():
        if len(key) != 1 or _kind(key) not in ("L", "M"):
            continue
        same_kind = sorted({n for n in neighbours if len(n) == 1 and n != key and _kind(n) == _kind(key)})
        if same_kind:
            layout[key] = tuple(same_kind)
    return layout


def keyboard_substitutions(grapheme: str, layout: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Every grapheme that one neighbouring key press makes of ``grapheme``.

    One code point of the cluster is replaced by a neighbour of its key (so in Thai a consonant keeps its vowel
    and tone marks: a wrong consonant key), with the case kept.
    """
    out: list[str] = []
    for position, ch in enumerate(grapheme):
        upper = ch != ch.lower() and len(ch.lower()) == 1
        key = ch.lower() if upper else ch
        for neighbour in layout.get(key, ()):
            replacement = neighbour.upper() if upper and len(neighbour.upper()) == 1 else neighbour
            candidate = grapheme[:position] + replacement + grapheme[position + 1 :]
            if candidate != grapheme and candidate not in out:
                out.append(candidate)
    return out
