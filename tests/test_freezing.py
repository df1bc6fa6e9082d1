"""Freezing the lower transformer layers: no gradient reaches them, and asking for more layers than the model has is
refused."""
from __future__ import annotations

import pytest
import torch

from pyterrier_hybrid.training.config import HybridTrainingConfig, TrainingConfigError
from pyterrier_hybrid.training.trainer import freeze_lower_layers


@pytest.fixture()
def tiny(tiny_model_path):
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    return SentenceTransformer(str(tiny_model_path), device="cpu")


def test_frozen_layers_get_no_gradient_and_the_others_do(tiny):
    frozen = freeze_lower_layers(tiny, 1)  # the tiny model has 2 layers
    auto_model = tiny[0].auto_model
    assert frozen == sum(p.numel() for m in (auto_model.embeddings, auto_model.encoder.layer[0])
                         for p in m.parameters())
    features = tiny.tokenize(["query: a question", "passage: an answer"])
    tiny(features)["sentence_embedding"].sum().backward()
    for name, weight in tiny.named_parameters():
        if ".pooler." in name:  # BERT's pooler is not used by mean pooling: never a gradient
            continue
        below = ".embeddings." in name or ".encoder.layer.0." in name
        assert (weight.grad is None) == below, name
    assert any(w.grad is not None and w.grad.abs().sum() > 0 for n, w in tiny.named_parameters() if ".layer.1." in n)


def test_more_frozen_layers_than_the_model_has_is_refused(tiny):
    with pytest.raises(ValueError, match="freeze_layers is 3 but the model has 2 transformer layers"):
        freeze_lower_layers(tiny, 3)
    with pytest.raises(TrainingConfigError, match="freeze_layers must be >= 0"):
        HybridTrainingConfig(freeze_layers=-1)


def test_the_memory_model_counts_only_the_layers_above_the_frozen_ones(tiny):
    from pyterrier_hybrid.training.speed.memory import EncoderShape

    assert EncoderShape.of(tiny).layers_with_graph == 2  # everything trains
    freeze_lower_layers(tiny, 1)
    assert EncoderShape.of(tiny).layers_with_graph == 1
    freeze_lower_layers(tiny, 2)
    assert EncoderShape.of(tiny).layers_with_graph == 0
