"""Length-bucketed training forwards (pyterrier_hybrid.training.speed.length_buckets): the same embeddings and gradients
as the padded batch, less padding, the stock forward back after restore."""
from __future__ import annotations

import torch

from pyterrier_hybrid.training.speed.length_buckets import bucket_rows, install_length_buckets

TEXTS = [
    "kurz", "a much longer text, so that the short ones are padded a lot in this batch of texts", "noch ein Satz",
    "x", "un texte moyen en français", "another fairly long English sentence about rivers and mountains", "ja",
    "una frase en español", "short", "ein etwas längerer deutscher Satz über Flüsse", "a", "b c d e f g",
    "tiny", "medium length text here", "one more rather long sentence to make several buckets useful", "end",
]


def test_buckets_sort_rows_by_length_and_keep_a_minimum_size():
    lengths = torch.tensor([5, 1, 9, 3, 7, 2, 8, 4])
    groups = bucket_rows(lengths, buckets=4, min_rows=2)
    assert [g.tolist() for g in groups] == [[1, 5], [3, 7], [0, 4], [6, 2]]
    assert len(bucket_rows(lengths, buckets=4, min_rows=3)) == 2  # 8 rows hold two groups of at least 3
    assert len(bucket_rows(lengths, buckets=4, min_rows=8)) == 1


def embeddings_and_gradients(model, features):
    model.zero_grad(set_to_none=True)
    embeddings = model(dict(features))["sentence_embedding"]
    (embeddings * torch.linspace(-1, 1, embeddings.shape[1])).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return embeddings.detach(), grads


def test_bucketed_training_forward_gives_the_padded_batchs_embeddings_and_gradients(tiny_model_path):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    for module in model.modules():  # dropout off: its masks are drawn per bucket, the rest must be equal
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    features = model.preprocess(TEXTS)
    assert features["attention_mask"].float().mean() < 0.6  # the batch is mostly padding
    padded, padded_grads = embeddings_and_gradients(model, features)

    restore = install_length_buckets(model, buckets=4, min_rows=4)
    widths = []
    inner = model[0].model  # the transformers model; sentence-transformers calls its forward method directly
    stock_inner_forward = inner.forward

    def recording_forward(**kwargs):
        widths.append(tuple(kwargs["input_ids"].shape))
        return stock_inner_forward(**kwargs)

    inner.forward = recording_forward
    try:
        bucketed, bucketed_grads = embeddings_and_gradients(model, features)
    finally:
        del inner.forward
    rows, width = features["input_ids"].shape
    assert len(widths) == 4 and sum(r for r, _ in widths) == rows and max(w for _, w in widths) == width
    assert sum(r * w for r, w in widths) < 0.7 * rows * width  # the padding went
    assert torch.allclose(bucketed, padded, atol=1e-5)
    assert padded_grads.keys() == bucketed_grads.keys()
    for name, grad in padded_grads.items():
        assert torch.allclose(bucketed_grads[name], grad, atol=1e-5, rtol=1e-4), name

    restore()
    assert "forward" not in vars(model[0])
    model.eval()
    assert torch.allclose(model.encode(TEXTS, convert_to_tensor=True), padded, atol=1e-5)
