"""bfloat16 autocast in training only where the device runs it natively; the run record says what was used."""
from __future__ import annotations

import json
import logging

import pytest

from pyterrier_hybrid import precision
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig
from pyterrier_hybrid.training.trainer import autocast_as_supported, prepare_training


@pytest.mark.parametrize("native", [True, False])
def test_bf16_is_kept_only_where_native_and_the_fallback_says_so(monkeypatch, caplog, native):
    monkeypatch.setattr(precision, "native_bf16_available", lambda device: native)
    asked = HybridTrainingConfig(bf16=True, max_steps=3)
    with caplog.at_level(logging.WARNING):
        resolved = autocast_as_supported(asked)
    assert resolved.bf16 is native
    assert resolved.max_steps == 3 and asked.bf16  # nothing else changes; the asked configuration is untouched
    assert ("training in float32" in caplog.text) is (not native)
    assert autocast_as_supported(HybridTrainingConfig(bf16=False)).bf16 is False  # float32 is never switched on


def _tiny_jsonl(path):
    rows = []
    for pid in range(12):
        for query_lang in ("en", "de"):
            for passage_lang in ("en", "de"):
                rows.append({"parallel_id": f"q{pid}", "query_lang": query_lang,
                             "query": f"question {pid} in {query_lang}", "passage_lang": passage_lang,
                             "passage_sentence": f"answer {pid} written in {passage_lang}",
                             "passage_context": f"paragraph of answer {pid}", "article": f"a{pid % 4}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("native", [True, False])
def test_a_run_records_the_precision_it_trained_in(tiny_model_path, tmp_path, monkeypatch, native):
    monkeypatch.setattr(precision, "native_bf16_available", lambda device: native)
    config = HybridTrainingConfig(
        base_model=str(tiny_model_path), train=str(_tiny_jsonl(tmp_path / "train.jsonl")), batch_size=4,
        max_steps=1, candidate_text="sentence", eval_fraction=0.0, save_steps=1000, bf16=True,
        output_dir=str(tmp_path / "out"), seed=1,
    )
    prepared = prepare_training(config)
    assert prepared.trainer.args.bf16 is native and prepared.config.bf16  # the trainer gets what the device runs
    out = prepared.run()
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["config"]["bf16"] is True  # what was asked, so that a rerun of the same configuration reuses it
    assert saved["run"]["bf16_autocast"] is native
