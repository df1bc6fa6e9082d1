"""Lazy names for a package's ``__init__``: importing the package stays cheap, each name loads its module on use.

    from pyterrier_hybrid._lazy import lazy_exports
    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"Comparison": ".comparison", ...})
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]],
                                                                     list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``: ``exports`` maps each public name to the module
    (relative to ``package``, e.g. ``".presets"``) that defines it."""
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(names))

    return __getattr__, __dir__, names
