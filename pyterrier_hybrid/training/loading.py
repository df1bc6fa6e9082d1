"""What a training run trains on, loaded before its trainer is built: the examples (before any model, so that a
source that cannot fill the batches asked for fails first), the base model, and the trainer's datasets of raw texts.

The texts given to the trainer are raw; the prompts ("query: " / "passage: ") are added once, by the trainer's data
collator, through the ``prompts`` training argument.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import HybridTrainingConfig, TrainingConfigError
from .data import TrainingData, candidate_text, load_training_data, split_by_article
from .mixture import TrainingSources, uses_training_sources
from .trainable import encoder_layer_count, freeze_lower_layers, freeze_word_embeddings

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from .distillation_plan import DistillationDatasets, DistillationPlan
    from .pooled import PooledData
    from .sampler import ParallelRows

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PASSAGE_PROMPT", "DEFAULT_QUERY_PROMPT", "TrainingDatasets", "TrainingExamples",
           "build_datasets", "build_training_dataset", "load_base_model", "load_training_examples",
           "training_prompts"]

DEFAULT_QUERY_PROMPT = "query: "
DEFAULT_PASSAGE_PROMPT = "passage: "


def training_prompts(model: SentenceTransformer, config: HybridTrainingConfig) -> tuple[str, str]:
    """(query prompt, passage prompt): the configured ones, else the model's "query" / "passage" prompts, else the
    paper's "query: " / "passage: "."""
    prompts = getattr(model, "prompts", None) or {}
    query = config.query_prompt if config.query_prompt is not None else prompts.get("query", DEFAULT_QUERY_PROMPT)
    passage = config.passage_prompt
    if passage is None:
        passage = prompts.get("passage", prompts.get("document", DEFAULT_PASSAGE_PROMPT))
    return query, passage


def build_training_dataset(
    data: TrainingData, candidate_text_mode: str, prompts: tuple[str, str] = ("", "")
) -> tuple[Dataset, ParallelRows]:
    """The dataset given to the trainer (columns anchor, positive[, negative]: raw texts, one row per example) and
    the sampler's per-row metadata.

    Raises ValueError when a text already starts with its prompt (the collator adds the prompt, so it would be
    there twice) or is empty.
    """
    from datasets import Dataset

    from .sampler import ParallelRows

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


def _check_layer_count(base_model: str, config: HybridTrainingConfig) -> None:
    """Refuse ``freeze_layers`` beyond the model's depth from its configuration, before the weights are loaded."""
    if not config.freeze_layers:
        return
    layers = encoder_layer_count(base_model)
    if layers is not None and config.freeze_layers > layers:
        raise TrainingConfigError(f"freeze_layers is {config.freeze_layers} but {base_model} has {layers} "
                                  "transformer layers")


@dataclass
class TrainingExamples:
    """The examples of a run, loaded before any model, in the form its batching takes: in memory (``data`` split
    by article), streamed or mixed (``sources``), or in whole parallel groups (``pooled``)."""

    data: TrainingData
    train_data: TrainingData
    eval_data: TrainingData
    sources: TrainingSources | None
    pooled: PooledData | None
    distillation: DistillationPlan


def load_training_examples(config: HybridTrainingConfig) -> TrainingExamples:
    """The data first: a source that cannot fill the batches asked for fails before a model is built or loaded.
    Streamed (irds:) sources and mixtures of sources go through TrainingSources (training/mixture.py)."""
    from .distillation_plan import DistillationPlan
    from .pooled import PooledData
    from .sampler import ParallelRows, check_feasible

    if uses_training_sources(config) and (config.distills or not config.contrastive or config.batching == "pooled"):
        raise TrainingConfigError(
            "distillation and pooled batches train on the parallel groups of a LAReQA or JSONL source; a streamed "
            "irds: source or a mixture of sources has none: drop those options or train on lareqa/... or a .jsonl "
            "file")
    sources = TrainingSources.load(config) if uses_training_sources(config) else None
    if sources is not None:
        data, train_data, eval_data = sources.summaries()
    else:
        data = load_training_data(config.train, config.train_langs, config.hard_negatives, config.seed)
        train_data, eval_data = split_by_article(data, config.eval_fraction, config.seed)
        if config.contrastive and config.batching == "hybrid":
            check_feasible(ParallelRows.from_examples(train_data.examples), config.alpha, config.batch_size)
    pooled = None
    if config.batching == "pooled":  # no parallel groups, or a group larger than a batch: fails here
        pooled = PooledData.of(train_data, eval_data, config.candidate_text, config.batch_size)
    distillation = DistillationPlan.of(config, train_data, eval_data)  # no parallel groups: fails here
    return TrainingExamples(data, train_data, eval_data, sources, pooled, distillation)


def load_base_model(config: HybridTrainingConfig) -> tuple[str, SentenceTransformer]:
    """(resolved base model, the model loaded with its token limit and frozen weights as ``config`` says)."""
    from pyterrier_hybrid.models import load_sentence_transformer, resolve_model  # the default is built here
    from pyterrier_hybrid.precision import training_device

    base_model = resolve_model(config.base_model)
    _check_layer_count(base_model, config)
    model = load_sentence_transformer(base_model, device=str(training_device()))
    if config.max_seq_length is not None:
        model.max_seq_length = config.max_seq_length
    if config.freeze_word_embeddings:
        frozen = freeze_word_embeddings(model)
        logger.info("froze %d word-embedding weights", frozen)
    if config.freeze_layers:
        try:
            frozen = freeze_lower_layers(model, config.freeze_layers)
        except ValueError as e:
            raise TrainingConfigError(str(e)) from None
        logger.info("froze the embeddings and the lowest %d layers: %d weights", config.freeze_layers, frozen)
    return base_model, model


@dataclass
class TrainingDatasets:
    """The in-memory datasets of a run (None where streamed sources build theirs with the samplers) and the prompt
    the collator prepends to each text column."""

    train: Any
    train_rows: ParallelRows | None
    eval: Any | None
    eval_rows: ParallelRows | None
    column_prompts: dict[str, str]
    distillation: DistillationDatasets
    evaluates: bool


def build_datasets(config: HybridTrainingConfig, examples: TrainingExamples, model: SentenceTransformer,
                   prompts: tuple[str, str]) -> TrainingDatasets:
    """The trainer's datasets of raw texts, with the distillation's teacher table encoded by the model as loaded
    (so call this before any training-only change of the model)."""
    query_prompt, passage_prompt = prompts
    sources, pooled = examples.sources, examples.pooled
    train_dataset = train_rows = eval_dataset = eval_rows = None
    if pooled is not None:
        train_dataset = pooled.dataset(pooled.train_groups)
    elif sources is None:
        train_dataset, train_rows = build_training_dataset(examples.train_data, config.candidate_text, prompts)
    # The collator prepends these to the raw texts, once; the dataset texts carry no prompt (checked when built).
    text_columns = sources.columns if sources is not None else train_dataset.column_names
    column_prompts = {
        column: prompt
        for column, prompt in (("anchor", query_prompt), ("positive", passage_prompt), ("negative", passage_prompt))
        if prompt and column in text_columns
    }
    has_eval = len(examples.eval_data) > 0
    if pooled is not None and pooled.eval_groups is not None and config.contrastive:
        eval_dataset = pooled.dataset(pooled.eval_groups)
    elif has_eval and config.contrastive and sources is None and pooled is None:
        eval_dataset, eval_rows = build_training_dataset(examples.eval_data, config.candidate_text, prompts)
    distill = examples.distillation.build(model, prompts, train_dataset, eval_dataset)
    evaluates = distill.has_eval if sources is None else has_eval
    return TrainingDatasets(distill.train_dataset, train_rows, distill.eval_dataset, eval_rows, column_prompts,
                            distill, evaluates)
