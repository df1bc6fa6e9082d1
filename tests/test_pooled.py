"""Pooled multi-positive batches: the loss against MultipleNegativesRankingLoss and autograd, the sampler's whole
groups and guarantees, and real (tiny) training runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_distillation import group_examples, write_jsonl

from pyterrier_hybrid.cli import main
from pyterrier_hybrid.datasets import ParallelExample
from pyterrier_hybrid.training.batching.pooled import PooledBatchSampler, PooledDataError
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig, TrainingConfigError
from pyterrier_hybrid.training.losses.multi_positive import MultiPositiveRankingLoss


class _NoModel(torch.nn.Module):
    pass


def test_one_positive_per_group_is_multiple_negatives_ranking_loss():
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(0)
    queries, docs = torch.randn(6, 8), torch.randn(6, 8)
    mnrl = MultipleNegativesRankingLoss(_NoModel(), scale=20.0)
    pooled = MultiPositiveRankingLoss(_NoModel(), scale=20.0)
    expected = mnrl.compute_loss_from_embeddings([queries, docs], None)
    got = pooled.compute_loss_from_embeddings([queries, docs], torch.arange(6))
    torch.testing.assert_close(got, expected)


def test_several_positives_each_against_the_negatives_only():
    torch.manual_seed(1)
    queries, docs = torch.randn(4, 5), torch.randn(4, 5)
    labels = torch.tensor([0, 0, 1, 1])
    loss = MultiPositiveRankingLoss(_NoModel(), scale=3.0).compute_loss_from_embeddings([queries, docs], labels)
    scores = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(docs, dim=1).T * 3.0
    expected = []
    for i in range(4):
        positives = [j for j in range(4) if labels[j] == labels[i]]
        negatives = [j for j in range(4) if labels[j] != labels[i]]
        terms = [-(scores[i, p] - torch.logsumexp(scores[i, [p] + negatives], 0)) for p in positives]
        expected.append(torch.stack(terms).mean())
    torch.testing.assert_close(loss, torch.stack(expected).mean())


def test_the_gradient_matches_finite_differences():
    torch.manual_seed(2)
    queries = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    docs = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 2, 2])
    loss = MultiPositiveRankingLoss(_NoModel(), scale=5.0)
    assert torch.autograd.gradcheck(lambda q, d: loss.compute_loss_from_embeddings([q, d], labels), (queries, docs))


def _groups():
    """Row groups of sizes 3/2 and passage codes; groups 0 and 1 share a passage (one answer, two questions)."""
    sizes = [3, 2, 3, 2, 3, 3, 2, 3]
    groups = np.repeat(np.arange(len(sizes)), sizes)
    passages = np.arange(len(groups))
    passages[3] = passages[0]  # group 1's first passage is group 0's
    return groups, passages


def test_pooled_batches_hold_whole_groups_without_shared_passages_identically_on_every_rank():
    groups, passages = _groups()
    dataset = list(range(len(groups)))
    sampler = PooledBatchSampler(dataset, 6, seed=5, groups=groups, passage_keys=passages, num_replicas=2)
    batches = list(sampler)
    assert len(batches) == len(sampler) and len(batches) % 2 == 0
    for batch in batches:
        assert len(batch) <= 6
        in_batch = set(groups[batch].tolist())
        assert sorted(batch) == sorted(np.flatnonzero(np.isin(groups, list(in_batch))).tolist())  # whole groups
        assert not {0, 1} <= in_batch  # they share a passage: it would be a false negative
        assert len(set(passages[batch].tolist())) == len(batch)
    again = list(PooledBatchSampler(dataset, 6, seed=5, groups=groups, passage_keys=passages, num_replicas=2))
    assert again == batches  # every rank builds the same sequence and takes its share (accelerate: i % ranks)
    sampler.set_epoch(1)
    assert list(sampler) != batches
    with pytest.raises(PooledDataError, match="raise the batch size to at least 3"):
        PooledBatchSampler(dataset, 2, groups=groups, passage_keys=passages)


def test_pooled_settings_that_cannot_run_are_refused():
    for overrides, message in (({"batching": "pooled", "hard_negatives": True}, "hard negatives"),
                               ({"batching": "pooled", "distill_base_weight": 0.5}, "base distillation"),
                               ({"batching": "grouped"}, "batching must be one of")):
        with pytest.raises(TrainingConfigError, match=message):
            HybridTrainingConfig(**overrides)


def _run_train(args, cache=None, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    if cache is not None:
        env["PYTERRIER_HYBRID_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "pyterrier_hybrid.cli", "train", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("loss_args, loss", [((), "mnrl"), (("--loss", "cached-mnrl", "--mini-batch-size", "2"),
                                                                 "cached-mnrl")])
def test_pooled_training_from_the_cli(tiny_model_path, tmp_path, loss_args, loss):
    examples = []
    for i in range(10):
        examples += group_examples(f"p{i}", ("en", "de", "es") if i % 2 else ("de", "es"), article=f"a{i % 5}")
    source = write_jsonl(tmp_path / "groups.jsonl", examples)
    out = tmp_path / "out"
    # in this process: the command's parsing and run are what is tested here, not a fresh interpreter's imports
    assert main(["train", "--base-model", str(tiny_model_path), "--train", str(source), "--batching", "pooled",
                 "--batch-size", "6", "--max-steps", "3", "--candidate-text", "sentence", "--max-seq-length", "48",
                 "--eval-fraction", "0.2", "--eval-steps", "3", "--save-steps", "3", "--distill-parallel", "1",
                 *loss_args, "-o", str(out)]) == 0
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["config"]["batching"] == "pooled" and saved["run"]["global_steps"] == 3
    assert saved["run"]["memory_plan"]["loss"] == loss
    assert saved["run"]["best_validation_loss"] is not None


@pytest.mark.parametrize("batch_size, message", [("2", "raise the batch size to at least 3"),
                                                  ("8", "pooled batching needs parallel groups")])
def test_pooled_errors_are_one_line_before_a_model_is_built(tmp_path, batch_size, message):
    if message.startswith("pooled batching needs"):
        examples = [ParallelExample(f"p{i}", "en", f"q{i}", "en", f"s{i}", "", f"a{i}") for i in range(8)]
    else:
        examples = [e for i in range(4) for e in group_examples(f"p{i}", ("en", "de", "es"), article=f"a{i}")]
    source = write_jsonl(tmp_path / "data.jsonl", examples)
    cache = tmp_path / "cache"
    cache.mkdir()
    result = _run_train(["--train", str(source), "--batching", "pooled", "--batch-size", batch_size, "-o",
                         str(tmp_path / "out")], cache=cache, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert message in lines[0]
    assert not any(cache.iterdir())


def test_the_cached_loss_equals_the_one_pass_loss_and_its_gradients(tiny_model_path):
    from sentence_transformers import SentenceTransformer

    from pyterrier_hybrid.training.losses.multi_positive import CachedMultiPositiveRankingLoss

    model = SentenceTransformer(str(tiny_model_path), device="cpu")
    model.eval()  # no dropout: the two passes see the same network
    queries = [f"question {i} about topic {i % 3}" for i in range(7)]
    passages = [f"answer sentence {i}, on topic {i % 3} and more" for i in range(7)]
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2])

    def loss_and_gradients(loss_fn):
        model.zero_grad()
        features = [model.tokenize(queries), model.tokenize(passages)]
        loss = loss_fn(features, labels)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    expected, expected_grads = loss_and_gradients(MultiPositiveRankingLoss(model, scale=20.0))
    got, got_grads = loss_and_gradients(CachedMultiPositiveRankingLoss(model, scale=20.0, mini_batch_size=3))
    torch.testing.assert_close(got, expected)
    assert expected_grads and got_grads.keys() == expected_grads.keys()
    for name, grad in expected_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-5, rtol=1e-4)
