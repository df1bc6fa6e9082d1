"""The trainer's dataset of in-memory pairs (anchor, positive[, negative]: raw texts, one row per example) and the
hybrid sampler's metadata of its rows (:class:`~pyterrier_hybrid.training.batching.hybrid.ParallelRows`).

The texts given to the trainer are raw; the prompts ("query: " / "passage: ") are added once, by the trainer's data
collator, through the ``prompts`` training argument.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...datasets.candidates import candidate_text
from .rows import ParallelRows

if TYPE_CHECKING:
    from datasets import Dataset

    from ..sources.data import TrainingData

__all__ = ["build_training_dataset"]


def build_training_dataset(
    data: TrainingData, candidate_text_mode: str, prompts: tuple[str, str] = ("", "")
) -> tuple[Dataset, ParallelRows]:
    """The dataset given to the trainer (columns anchor, positive[, negative]: raw texts, one row per example) and
    the sampler's per-row metadata.

    Raises ValueError when a text already starts with its prompt (the collator adds the prompt, so it would be
    there twice) or is empty.
    """
    from datasets import Dataset

    if len(data) == 0:
        raise ValueError("no training examples")
    query_prompt, passage_prompt = prompts
    anchors = [e.query for e in data.examples]
    positives = [candidate_text(e.passage_sentence, e.passage_context, candidate_text_mode) for e in data.examples]
    negatives = None
    if data.negatives is not None:
        negatives = [candidate_text(n.sentence, n.context, candidate_text_mode) for n in data.negatives]
    for column, texts, prompt in (("query", anchors, query_prompt), ("passage", positives, passage_prompt)):
        for example, text in zip(data.examples, texts):
            if not text.strip():
                raise ValueError(f"empty {column} text (parallel id {example.parallel_id!r}, {example.query_lang}-"
                                 f"{example.passage_lang})")
            if prompt and text.startswith(prompt):
                raise ValueError(
                    f"the {column} text of parallel id {example.parallel_id!r} already starts with the prompt "
                    f"{prompt!r}, which training adds: remove it from the data or set the {column} prompt to ''"
                )
    columns = {"anchor": anchors, "positive": positives}
    if negatives is not None:
        columns["negative"] = negatives
    rows = ParallelRows.from_examples(data.examples, positives, negatives)
    return Dataset.from_dict(columns), rows
