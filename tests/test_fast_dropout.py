"""The CPU training step's dropout (pyterrier_hybrid.training.speed.fast_dropout): the same dropout as torch's, drawn
cheaply; installing it changes no output outside training and the saved model is the stock architecture."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig
from pyterrier_hybrid.training.speed.fast_dropout import (
    FAST_ATTENTION,
    FastDropout,
    fast_dropout,
    install_fast_dropout,
    keep_mask,
)


def test_mask_drops_at_the_rate_asked_and_follows_torchs_seed():
    torch.manual_seed(7)
    first = keep_mask(torch.Size([2000, 1000]), 0.1)
    torch.manual_seed(7)
    again = keep_mask(torch.Size([2000, 1000]), 0.1)
    other = keep_mask(torch.Size([2000, 1000]), 0.1)
    assert first.dtype == torch.bool and first.shape == (2000, 1000)
    assert torch.equal(first, again) and not torch.equal(first, other)
    # 2 million draws: the standard error of the rate is 0.0002
    assert abs((1 - first.float().mean().item()) - 0.1) < 0.0015
    assert abs((1 - keep_mask(torch.Size([1_000_000]), 0.5).float().mean().item()) - 0.5) < 0.003
    # every 16-bit slice of the 64-bit random words is used alike (the words' top bit is always 0)
    by_slice = (~first).reshape(-1, 4).float().mean(dim=0)
    assert (by_slice - 0.1).abs().max().item() < 0.003


def test_dropout_zeroes_or_rescales_and_its_gradient_is_the_same_mask():
    torch.manual_seed(0)
    x = (torch.rand(300, 200) + 1.0).requires_grad_()
    y = fast_dropout(x, 0.25)
    kept = y != 0
    assert 0.70 < kept.float().mean().item() < 0.80
    assert torch.allclose(y[kept], x[kept] / 0.75)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.75)
    assert fast_dropout(x, 0.25, training=False) is x and fast_dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="dropout probability"):
        fast_dropout(x, 1.0)


def test_installed_model_encodes_padded_batches_as_before_and_restores(tiny_model_path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    auto = model[0].auto_model
    texts = ["kurz", "a much longer text, so that the short one is padded in the batch", "noch ein Satz hier"]
    before = model.encode(texts, convert_to_tensor=True)
    implementation = auto.config._attn_implementation
    stock = [m for m in model.modules() if type(m) is nn.Dropout]
    restore = install_fast_dropout(model)
    assert stock and not any(type(m) is nn.Dropout for m in model.modules())
    assert sum(isinstance(m, FastDropout) for m in model.modules()) == len(stock)
    assert auto.config._attn_implementation == FAST_ATTENTION
    # evaluation: no dropout, the padding mask applied as before (an attention without its mask would differ here)
    assert torch.allclose(model.encode(texts, convert_to_tensor=True), before, atol=1e-5)
    # training: dropout is on, in the hidden layers and the attention
    model.train()
    features = model.tokenize(texts)
    torch.manual_seed(1)
    one = model(dict(features))["sentence_embedding"]
    torch.manual_seed(2)
    two = model(dict(features))["sentence_embedding"]
    assert not torch.allclose(one, two)
    model.eval()
    restore()
    assert auto.config._attn_implementation == implementation
    assert [m for m in model.modules() if isinstance(m, nn.Dropout)] == stock


def test_a_configuration_saved_before_the_field_existed_reads_as_torchs_dropout(tmp_path):
    config = HybridTrainingConfig(output_dir=str(tmp_path / "m"))
    payload = {"config": {k: v for k, v in config.to_dict().items() if k != "fast_dropout"}}
    (tmp_path / CONFIG_FILE).write_text(json.dumps(payload))
    assert HybridTrainingConfig.load(tmp_path / CONFIG_FILE).fast_dropout is False
    assert config.fast_dropout is True
