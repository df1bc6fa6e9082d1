"""The training memory model and the fit decision: MNRL when the batch fits, the cached loss with a mini-batch that
fits when it does not, an error naming the option to change when nothing fits; and the trainer acting on it and
recording it (a tiny real model on real LAReQA examples, the machine's memory simulated by a budget)."""
from __future__ import annotations

import json

import pytest

from pyterrier_hybrid.errors import UserError
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig
from pyterrier_hybrid.training.sources.data import lareqa_training_data
from pyterrier_hybrid.training.speed import memory
from pyterrier_hybrid.training.speed.memory import (
    MINI_BATCH_TOKENS,
    EncoderShape,
    MemoryBudgetError,
    estimate_peak_bytes,
    plan_batch_memory,
)

GIB = 2**30
# multilingual-e5-small with its word embeddings trainable (the defaults) and frozen
E5_SMALL = EncoderShape(layers=12, hidden_size=384, heads=12, trainable_parameters=117_653_760)
E5_SMALL_FROZEN = EncoderShape(layers=12, hidden_size=384, heads=12, trainable_parameters=21_639_552)


def plan(encoder=E5_SMALL, lengths=(64, 512), batch=100, budget_gib=16.0, loss="mnrl", mini=32, bf16=False):
    return plan_batch_memory(encoder, lengths, batch, bf16=bf16, loss=loss, mini_batch_size=mini,
                             resident_bytes=2 * GIB, budget_bytes=budget_gib * GIB, budget_source="test")


def test_estimate_grows_with_batch_length_and_hard_negatives_and_cached_loss_is_bounded():
    def mnrl(batch, lengths):
        return estimate_peak_bytes(E5_SMALL, lengths, batch, bf16=False, loss="mnrl", resident_bytes=GIB)

    assert mnrl(64, (64, 256)) > mnrl(32, (64, 256)) > mnrl(16, (64, 256))
    assert mnrl(32, (64, 512)) > 2 * mnrl(32, (64, 256)) - GIB  # attention makes it grow faster than the length
    assert mnrl(32, (64, 256, 256)) > mnrl(32, (64, 256))  # a hard-negative column
    cached = [estimate_peak_bytes(E5_SMALL, (64, 512), batch, bf16=False, loss="cached-mnrl", mini_batch_size=8,
                                  resident_bytes=GIB) for batch in (16, 100, 1000)]
    assert cached[0] == cached[1] == cached[2]  # bounded by the mini-batch, whatever the batch
    frozen = estimate_peak_bytes(E5_SMALL_FROZEN, (64, 256), 32, bf16=False, loss="mnrl", resident_bytes=GIB)
    assert mnrl(32, (64, 256)) - frozen == pytest.approx(12 * (E5_SMALL.trainable_parameters
                                                              - E5_SMALL_FROZEN.trainable_parameters))


def test_frozen_lower_layers_keep_no_activations_so_a_batch_can_fit_the_one_pass_loss():
    def activations(encoder):
        return (estimate_peak_bytes(encoder, (64, 128, 128), 100, bf16=True, loss="mnrl")
                - 12 * encoder.trainable_parameters)

    top_three = EncoderShape(layers=12, hidden_size=384, heads=12, trainable_parameters=5_471_232, graph_layers=3)
    assert activations(top_three) == pytest.approx(activations(E5_SMALL_FROZEN) * 3 / 12)
    full, frozen = (plan(encoder, lengths=(64, 128, 128), bf16=True, budget_gib=20.0)
                    for encoder in (E5_SMALL_FROZEN, top_three))
    assert full.loss == "cached-mnrl" and frozen.loss == "mnrl"


def test_a_batch_that_fits_keeps_mnrl():
    small = plan(lengths=(32, 64), batch=16)
    assert small.loss == "mnrl" and small.mini_batch_size is None and not small.switched
    assert small.estimated_peak_gib <= small.budget_gib


def test_a_batch_that_does_not_fit_switches_to_cached_mnrl_with_a_fitting_mini_batch():
    result = plan(budget_gib=10.0)  # the defaults: batch 100, passages with context at 512 tokens, float32
    assert result.switched and result.loss == "cached-mnrl" and result.configured_loss == "mnrl"
    assert result.mini_batch_size == MINI_BATCH_TOKENS // 512  # roomy: the token cap of a mini-batch binds
    assert result.estimated_peak_gib <= 10.0
    assert "cached-mnrl" in result.reason and str(result.mini_batch_size) in result.reason
    assert json.loads(json.dumps(result.to_dict()))["loss"] == "cached-mnrl"

    tight = plan(budget_gib=5.0)  # the budget binds: the largest mini-batch that fits, one more would not
    assert tight.loss == "cached-mnrl" and 1 <= tight.mini_batch_size < result.mini_batch_size
    assert tight.estimated_peak_gib <= 5.0
    over = estimate_peak_bytes(E5_SMALL, (64, 512), 100, bf16=False, loss="cached-mnrl",
                               mini_batch_size=tight.mini_batch_size + 1, resident_bytes=2 * GIB)
    assert over > 5.0 * GIB


def test_a_cached_mini_batch_too_large_is_lowered_and_one_that_fits_is_kept():
    kept = plan(loss="cached-mnrl", mini=8, budget_gib=16.0)
    assert kept.loss == "cached-mnrl" and kept.mini_batch_size == 8 and not kept.switched
    lowered = plan(loss="cached-mnrl", mini=100, budget_gib=6.0)
    assert lowered.loss == "cached-mnrl" and lowered.mini_batch_size < 100 and lowered.estimated_peak_gib <= 6.0


def test_nothing_fits_is_a_user_error_naming_the_flag():
    with pytest.raises(MemoryBudgetError, match="--max-memory-gb") as caught:
        plan(budget_gib=2.5)  # the resident 2 GiB and the optimizer state of 118M weights leave nothing
    assert isinstance(caught.value, UserError)
    assert "--max-seq-length" in str(caught.value)


def test_max_memory_gb_must_be_positive():
    with pytest.raises(ValueError, match="max_memory_gb"):
        HybridTrainingConfig(max_memory_gb=0)


def test_budget_is_the_explicit_limit_or_a_share_of_the_available_memory():
    assert memory.memory_budget_bytes(3.0, GIB) == (3.0 * GIB, "--max-memory-gb")
    budget, source = memory.memory_budget_bytes(None, GIB)
    assert memory.available_memory_bytes() > 0
    assert budget > GIB and "available" in source  # what the process holds plus a share of what is free


# --- the trainer acts on the plan and records it ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_jsonl(lareqa_dir, tmp_path_factory):
    data = lareqa_training_data("xquad-r", langs=("en", "de"), hard_negatives=False)
    ids = sorted({e.parallel_id for e in data.examples})[::20][:40]
    path = tmp_path_factory.mktemp("memory-data") / "train.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for e in data.examples:
            if e.parallel_id in ids:
                f.write(json.dumps({"parallel_id": e.parallel_id, "query_lang": e.query_lang, "query": e.query,
                                    "passage_lang": e.passage_lang, "passage_sentence": e.passage_sentence,
                                    "passage_context": e.passage_context, "article": e.article}) + "\n")
    return path


def test_trainer_switches_to_the_cached_loss_and_records_the_decision(tiny_model_path, small_jsonl, tmp_path,
                                                                      monkeypatch):
    import torch
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    from pyterrier_hybrid.training.trainer import prepare_training

    torch.set_num_threads(1)
    resident = 1.0 * GIB  # this process's memory, fixed so that the budgets below are exact
    monkeypatch.setattr(memory, "current_resident_bytes", lambda: resident)

    def config(out, max_memory_gb):
        return HybridTrainingConfig(
            base_model=str(tiny_model_path), train=str(small_jsonl), batch_size=16, max_steps=2, learning_rate=1e-3,
            candidate_text="sentence+context", max_seq_length=96, eval_fraction=0.0, save_steps=1000,
            logging_steps=1, output_dir=str(out), seed=3, max_memory_gb=max_memory_gb,
        )

    roomy = prepare_training(config(tmp_path / "roomy", 64.0))
    assert roomy.memory_plan.loss == "mnrl" and type(roomy.trainer.loss) is MultipleNegativesRankingLoss
    lengths = roomy.memory_plan.column_lengths
    assert len(lengths) == 2 and all(1 < n <= 96 for n in lengths)

    shape = EncoderShape.of(roomy.trainer.model)
    needed = {name: estimate_peak_bytes(shape, lengths, 16, bf16=False, loss=name, mini_batch_size=8,
                                        resident_bytes=resident) for name in ("mnrl", "cached-mnrl")}
    tight = (needed["mnrl"] + needed["cached-mnrl"]) / 2 / GIB  # room for mini-batches of 8, not for the batch
    prepared = prepare_training(config(tmp_path / "tight", tight))
    assert prepared.memory_plan.switched and prepared.memory_plan.mini_batch_size >= 8
    assert isinstance(prepared.trainer.loss, CachedMultipleNegativesRankingLoss)
    assert prepared.trainer.loss.mini_batch_size == prepared.memory_plan.mini_batch_size
    out = prepared.run()
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["config"]["loss"] == "mnrl" and saved["config"]["max_memory_gb"] == tight
    assert saved["run"]["memory_plan"]["loss"] == "cached-mnrl"
    assert saved["run"]["memory_plan"]["mini_batch_size"] == prepared.memory_plan.mini_batch_size
    assert saved["run"]["global_steps"] == 2

    with pytest.raises(MemoryBudgetError, match="--max-memory-gb"):
        prepare_training(config(tmp_path / "none", resident / GIB * 1.0000001))
