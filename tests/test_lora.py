"""LoRA adapters: only the adapters train, the saved model is a plain sentence-transformers model that encodes like
the adapted one, a LoRA run resumes from its checkpoints, and bad settings are refused before a model is loaded."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyterrier_hybrid.datasets import ParallelExample
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig, TrainingConfigError

pytest.importorskip("peft", reason="LoRA training needs peft (a dependency of the package)")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["query: wer schrieb das buch?", "passage: the book was written by anna.", "query: ¿quién?"]


@pytest.fixture(scope="module")
def parallel_jsonl(tmp_path_factory) -> Path:
    import dataclasses

    questions = {"en": "Who wrote book {i}?", "de": "Wer schrieb Buch {i}?", "es": "¿Quién escribió el libro {i}?"}
    answers = {"en": "Book {i} was written by Anna.", "de": "Buch {i} schrieb Anna.", "es": "Anna escribió el {i}."}
    examples = [ParallelExample(f"p{i}", q, questions[q].format(i=i), p, answers[p].format(i=i), "", f"art{i % 5}")
                for i in range(10) for q in questions for p in answers]
    path = tmp_path_factory.mktemp("data") / "parallel.jsonl"
    path.write_text("".join(json.dumps(dataclasses.asdict(e), ensure_ascii=False) + "\n" for e in examples),
                    encoding="utf-8")
    return path


def lora_config(model: Path, data: Path, out: Path, **overrides) -> HybridTrainingConfig:
    settings = dict(base_model=str(model), train=str(data), alpha=0.5, batch_size=4, max_steps=4, learning_rate=5e-3,
                    warmup=0.0, candidate_text="sentence", max_seq_length=32, eval_fraction=0.0, save_steps=1000,
                    logging_steps=1, output_dir=str(out), seed=5, lora_rank=4, lora_targets=("query", "value"))
    return HybridTrainingConfig(**{**settings, **overrides})


def test_lora_trains_only_the_adapters_and_saves_a_plain_model_that_encodes_like_the_adapted_one(
        tiny_model_path, parallel_jsonl, tmp_path):
    from sentence_transformers import SentenceTransformer
    from transformers import TrainerCallback

    from pyterrier_hybrid.training.trainer import prepare_training

    seen = {}

    class AtTrainEnd(TrainerCallback):  # the model as trained, adapters still separate (the merge comes after)
        def on_train_end(self, args, state, control, model=None, **kwargs):
            seen["weights"] = {n: p.detach().clone() for n, p in model.named_parameters()}
            seen["embeddings"] = model.encode(TEXTS, convert_to_numpy=True)

    prepared = prepare_training(lora_config(tiny_model_path, parallel_jsonl, tmp_path / "out"),
                                callbacks=[AtTrainEnd()])
    model = prepared.trainer.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert any(".query." in n for n in trainable) and not any(".key." in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = prepared.run()

    after = seen["weights"]
    for name, weight in before.items():
        if name in trainable:
            continue
        assert torch.equal(after[name], weight), f"{name} changed"  # bit-identical
    assert any(not torch.equal(after[n], before[n]) for n in trainable if ".lora_B." in n)  # the adapters trained

    assert not (out / "adapter_config.json").exists() and not list(out.rglob("adapter_model*"))
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    saved = SentenceTransformer(str(out), device="cpu")
    assert not any("lora" in n for n, _ in saved.named_parameters())
    np.testing.assert_allclose(saved.encode(TEXTS), seen["embeddings"], atol=2e-5)
    base = SentenceTransformer(str(tiny_model_path), device="cpu")
    assert not np.allclose(saved.encode(TEXTS), base.encode(TEXTS), atol=1e-4)
    config = json.loads((out / CONFIG_FILE).read_text())["config"]
    assert config["lora_rank"] == 4 and config["lora_targets"] == ["query", "value"]


def test_a_lora_run_resumed_from_its_checkpoint_reaches_the_uninterrupted_weights(
        tiny_model_path, parallel_jsonl, tmp_path):
    from sentence_transformers import SentenceTransformer

    from pyterrier_hybrid.training import train

    config = lora_config(tiny_model_path, parallel_jsonl, tmp_path / "out", save_steps=2, save_total_limit=2)
    out = train(config)
    uninterrupted = SentenceTransformer(str(out), device="cpu").encode(TEXTS)
    # As if the run had been stopped after its first checkpoint: only checkpoint-2 is left.
    shutil.rmtree(out / "checkpoints" / "checkpoint-4")
    for path in out.iterdir():
        if path.name not in ("checkpoints", CONFIG_FILE):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    train(config, resume=True)
    np.testing.assert_allclose(SentenceTransformer(str(out), device="cpu").encode(TEXTS), uninterrupted, atol=1e-5)


def test_lora_from_the_cli_records_the_adapter_settings(tiny_model_path, parallel_jsonl, tmp_path):
    from pyterrier_hybrid.cli import main

    # in this process: the command's parsing and run are what is tested here, not a fresh interpreter's imports
    out = tmp_path / "out"
    assert main(["train", "--base-model", str(tiny_model_path), "--train", str(parallel_jsonl), "--lora-rank", "2",
                 "--lora-alpha", "8", "--batch-size", "4", "--max-steps", "2", "--candidate-text", "sentence",
                 "--max-seq-length", "32", "--eval-fraction", "0", "-o", str(out)]) == 0
    config = json.loads((out / CONFIG_FILE).read_text())["config"]
    assert (config["lora_rank"], config["lora_alpha"]) == (2, 8.0)
    assert "lora" not in (out / "model.safetensors").read_bytes()[:20000].decode("latin-1")


@pytest.mark.parametrize("args, message", [
    (["--lora-rank", "-1"], "lora_rank must be >= 0"),
    (["--lora-rank", "4", "--freeze-layers", "2"], "choose one"),
    (["--lora-rank", "4", "--lora-targets", ","], "lora_targets names no layer"),
])
def test_bad_lora_settings_are_one_line_before_a_model_is_built(args, message, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    env = dict(os.environ, PYTERRIER_HYBRID_CACHE=str(cache), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "pyterrier_hybrid.cli", "train", *args, "-o", str(tmp_path / "o")],
                            env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert message in lines[0]
    assert not any(cache.iterdir()) and not (tmp_path / "o").exists()


def test_more_frozen_layers_than_the_model_has_is_refused_before_its_weights_load(
        tiny_model_path, parallel_jsonl, tmp_path, monkeypatch):
    import pyterrier_hybrid.models as models
    from pyterrier_hybrid.training.trainer import prepare_training

    def no_loading(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(models, "load_sentence_transformer", no_loading)
    config = lora_config(tiny_model_path, parallel_jsonl, tmp_path / "out", lora_rank=0, freeze_layers=3)
    with pytest.raises(TrainingConfigError, match="freeze_layers is 3 but .* has 2 transformer layers"):
        prepare_training(config)
