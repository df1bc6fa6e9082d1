"""The base model of a training run, loaded after its data (a source that cannot fill the batches asked for fails
first): the model with its token limit and frozen weights, and the prompts training adds to its texts.

The texts given to the trainer are raw; the prompts ("query: " / "passage: ") are added once, by the trainer's data
collator, through the ``prompts`` training argument.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .config import HybridTrainingConfig, TrainingConfigError
from .speed.trainable import encoder_layer_count, freeze_lower_layers, freeze_word_embeddings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PASSAGE_PROMPT", "DEFAULT_QUERY_PROMPT", "load_base_model", "training_prompts"]

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


def _check_layer_count(base_model: str, config: HybridTrainingConfig) -> None:
    """Refuse ``freeze_layers`` beyond the model's depth from its configuration, before the weights are loaded."""
    if not config.freeze_layers:
        return
    layers = encoder_layer_count(base_model)
    if layers is not None and config.freeze_layers > layers:
        raise TrainingConfigError(f"freeze_layers is {config.freeze_layers} but {base_model} has {layers} "
                                  "transformer layers")


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
