"""The training view of a parallel collection: one record per (question, answer passage) pair in two languages."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParallelExample:
    """A question in ``query_lang`` paired with its answer passage in ``passage_lang``.

    ``parallel_id`` is shared by the translations of one question: two examples with the same parallel id have
    passages that are translations of each other. ``article`` groups examples for a held-out split by article
    (the same value in every language). Monolingual pairs have ``query_lang == passage_lang``.
    """

    parallel_id: str
    query_lang: str
    query: str
    passage_lang: str
    passage_sentence: str
    passage_context: str
    article: str

    @property
    def is_monolingual(self) -> bool:
        return self.query_lang == self.passage_lang
