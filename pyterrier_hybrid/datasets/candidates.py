"""What a model reads for a LAReQA candidate: the sentence alone, or the sentence followed by its paragraph.

LAReQA's own setting encodes ``sentence + " " + context``; the package also offers the sentence alone. This module
is the one definition of that rule, used by training (the passages of training pairs) and retrieval (the candidates
an encoder or BM25 reads), so the two always read the same text.
"""
from __future__ import annotations

__all__ = ["CANDIDATE_TEXT_OPTIONS", "candidate_text", "check_candidate_text", "join_candidate_text"]

#: The values of every ``candidate_text`` option.
CANDIDATE_TEXT_OPTIONS: tuple[str, ...] = ("sentence", "sentence+context")


def check_candidate_text(mode: str) -> str:
    """``mode`` if it is one of :data:`CANDIDATE_TEXT_OPTIONS`, else a ValueError naming the options."""
    if mode not in CANDIDATE_TEXT_OPTIONS:
        raise ValueError(f"candidate_text must be one of {CANDIDATE_TEXT_OPTIONS}, got {mode!r}")
    return mode


def join_candidate_text(sentence: str, context: str) -> str:
    """LAReQA's candidate text: the sentence, then a space, then its context paragraph."""
    return sentence + " " + context


def candidate_text(sentence: str, context: str, mode: str) -> str:
    """The text a model reads for a candidate in ``mode``: the sentence, or :func:`join_candidate_text`."""
    if check_candidate_text(mode) == "sentence":
        return sentence
    return join_candidate_text(sentence, context)
