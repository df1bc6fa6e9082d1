"""Resuming after a training process was killed while it wrote a checkpoint.

The real case runs ``pyterrier-hybrid train`` in a subprocess that SIGKILLs itself halfway through writing one file
of one checkpoint (a deterministic kill: a wrapper around the writer stops the process after half the bytes), then
resumes it with ``--resume``. The other tests build the folders such a kill leaves by hand (a temporary file and no
weights, no trainer state, a truncated trainer state) and check which checkpoint ``--resume`` picks.

The data is a small synthetic JSONL source, so these tests need no LAReQA files.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyterrier_hybrid.training.checkpoints import CHECKPOINT_DIR, check_output_dir, incomplete_checkpoint_reason
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
LANGS = ("en", "de", "es")
WORDS = {
    "en": ["river", "mountain", "city", "king", "music", "science", "ocean", "forest"],
    "de": ["Fluss", "Berg", "Stadt", "König", "Musik", "Wissenschaft", "Ozean", "Wald"],
    "es": ["río", "montaña", "ciudad", "rey", "música", "ciencia", "océano", "bosque"],
}
QUESTION = {"en": "What is said about the {} number {}?", "de": "Was wird über {} Nummer {} gesagt?",
            "es": "¿Qué se dice sobre {} número {}?"}
ANSWER = {"en": "The {} number {} is very old.", "de": "{} Nummer {} ist sehr alt.", "es": "{} número {} es muy viejo."}

# Wraps a checkpoint file's writer: at checkpoint-STEP it writes half of FILE's bytes and SIGKILLs the process,
# as a kill (or a full disk) in the middle of that write would leave it. FILE is optimizer.pt (torch.save) or
# model.safetensors (safetensors, as transformers calls it).
KILLING_DRIVER = r'''
import io, os, signal, sys

import torch

torch.set_num_threads(1)
step, name = sys.argv[1].split(":")
folder = f"checkpoint-{step}"


def is_target(path):
    return (isinstance(path, (str, os.PathLike)) and os.path.basename(os.fspath(path)) == name
            and os.path.basename(os.path.dirname(os.fspath(path))) == folder)


def die_halfway(path, data):
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


torch_save = torch.save


def save(obj, f, *args, **kwargs):
    if is_target(f):
        buffer = io.BytesIO()
        torch_save(obj, buffer, *args, **kwargs)
        die_halfway(f, buffer.getvalue())
    return torch_save(obj, f, *args, **kwargs)


torch.save = save

import safetensors.torch
import transformers.modeling_utils as modeling_utils

safe_save_file = modeling_utils.safe_save_file


def save_file(tensors, filename, metadata=None):
    if is_target(filename):
        die_halfway(filename, safetensors.torch.save(tensors, metadata=metadata))
    return safe_save_file(tensors, filename, metadata=metadata)


modeling_utils.safe_save_file = save_file

from pyterrier_hybrid.cli import main

sys.exit(main(sys.argv[2:]))
'''


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def parallel_jsonl(tmp_path_factory) -> Path:
    """24 questions with their answers in 3 languages, every ordered language pair: 216 parallel examples."""
    path = tmp_path_factory.mktemp("data") / "parallel.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(24):
            for q in LANGS:
                for p in LANGS:
                    f.write(json.dumps({
                        "parallel_id": f"p{i}", "article": f"a{i % 6}",
                        "query_lang": q, "query": QUESTION[q].format(WORDS[q][i % 8], i),
                        "passage_lang": p, "passage_sentence": ANSWER[p].format(WORDS[p][i % 8], i),
                    }, ensure_ascii=False) + "\n")
    return path


def train_args(model: Path, data: Path, out: Path, max_steps: int) -> list[str]:
    return ["train", "--base-model", str(model), "--train", str(data), "--batch-size", "8", "--lr", "2e-3",
            "--warmup", "0", "--candidate-text", "sentence", "--max-seq-length", "48", "--eval-fraction", "0",
            "--max-steps", str(max_steps), "--save-steps", "5", "--logging-steps", "5", "--seed", "13",
            "-o", str(out)]


def subprocess_env() -> dict[str, str]:
    """One thread, and this tree's package first on the path (the driver script lives in a temporary folder)."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=path)


def run_killed_at(kill: str, args: list[str], driver: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(driver), kill, *args], env=subprocess_env(), capture_output=True,
                          text=True, timeout=600)


def parameters(path: Path):
    from sentence_transformers import SentenceTransformer

    return {name: p.detach().clone() for name, p in SentenceTransformer(str(path)).named_parameters()}


def test_a_run_killed_while_saving_resumes_from_the_last_complete_checkpoint(tiny_model_path, parallel_jsonl,
                                                                              tmp_path):
    from pyterrier_hybrid.cli import main

    driver = tmp_path / "killing_driver.py"
    driver.write_text(KILLING_DRIVER)
    out = tmp_path / "killed"
    args = train_args(tiny_model_path, parallel_jsonl, out, max_steps=25)
    checkpoints = out / CHECKPOINT_DIR

    # killed while writing the weights of checkpoint-15: a truncated model.safetensors and nothing after it
    first = run_killed_at("15:model.safetensors", args, driver)
    assert first.returncode == -9, first.stderr[-3000:]
    assert incomplete_checkpoint_reason(checkpoints / "checkpoint-15") == "no trainer_state.json"
    assert incomplete_checkpoint_reason(checkpoints / "checkpoint-10") is None

    # resumed from checkpoint-10, then killed while writing the optimizer state of checkpoint-20
    second = run_killed_at("20:optimizer.pt", args + ["--resume"], driver)
    assert second.returncode == -9, second.stderr[-3000:]
    warnings = [line for line in second.stderr.splitlines() if "deleted the incomplete" in line]
    assert len(warnings) == 1, second.stderr[-3000:]
    assert warnings[0].endswith("resuming from checkpoint-10, the newest complete checkpoint; deleted the incomplete "
                                "checkpoint-15 (no trainer_state.json), left by an interrupted save")
    assert "Traceback" not in second.stderr
    assert incomplete_checkpoint_reason(checkpoints / "checkpoint-15") is None  # saved again, completely

    # resumed from checkpoint-15 (the second kill's checkpoint-20 skipped) to the end
    third = subprocess.run([sys.executable, "-m", "pyterrier_hybrid.cli", *args, "--resume"],
                           env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "resuming from checkpoint-15, the newest complete checkpoint; deleted the incomplete checkpoint-20" \
        in third.stderr
    run = json.loads((out / CONFIG_FILE).read_text())["run"]
    assert run["global_steps"] == 25 and run["resumed_from"].endswith("checkpoint-15")

    # the same weights as a run that was never killed
    whole = tmp_path / "whole"
    assert main(train_args(tiny_model_path, parallel_jsonl, whole, max_steps=25)) == 0
    a, b = parameters(whole), parameters(out)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


# --- the folders a kill leaves, made by hand ---------------------------------------------------------------------


def complete_checkpoint(path: Path, step: int) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "optimizer.pt").write_bytes(b"optimizer")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("temporary file, no weights", "temporary file model.safetensors.tmp left inside"),
        ("no weights", "no model weights"),
        ("no trainer state", "no trainer_state.json"),
        ("truncated trainer state", "unreadable trainer_state.json"),
        ("trainer state of another step", "trainer_state.json is at step 10"),
    ],
)
def test_resume_skips_and_deletes_an_incomplete_checkpoint(damage, reason, tmp_path, caplog):
    out = tmp_path / "run"
    config = HybridTrainingConfig(output_dir=str(out))
    complete_checkpoint(out / CHECKPOINT_DIR / "checkpoint-5", 5)
    complete_checkpoint(out / CHECKPOINT_DIR / "checkpoint-10", 10)
    broken = complete_checkpoint(out / CHECKPOINT_DIR / "checkpoint-15", 15)
    if damage == "temporary file, no weights":
        (broken / "model.safetensors").rename(broken / "model.safetensors.tmp")
    elif damage == "no weights":
        (broken / "model.safetensors").unlink()
    elif damage == "no trainer state":
        (broken / "trainer_state.json").unlink()
    elif damage == "truncated trainer state":
        (broken / "trainer_state.json").write_text('{"global_st')
    else:
        (broken / "trainer_state.json").write_text(json.dumps({"global_step": 10}))

    assert incomplete_checkpoint_reason(broken) == reason
    with caplog.at_level(logging.WARNING):
        assert check_output_dir(out, config, resume=True) == out / CHECKPOINT_DIR / "checkpoint-10"
    assert not broken.exists()  # the trainer saves checkpoint-15 again; nothing stale is left for it
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == ("resuming from checkpoint-10, the newest complete checkpoint; deleted the incomplete "
                       f"checkpoint-15 ({reason}), left by an interrupted save")


def test_resume_with_only_incomplete_checkpoints_is_an_error(tmp_path):
    out = tmp_path / "run"
    broken = complete_checkpoint(out / CHECKPOINT_DIR / "checkpoint-5", 5)
    (broken / "trainer_state.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"no complete checkpoint .*checkpoint-5 \(no trainer_state.json\)"):
        check_output_dir(out, HybridTrainingConfig(output_dir=str(out)), resume=True)
    assert broken.exists()  # nothing to resume from: nothing is deleted


def test_a_complete_checkpoint_is_resumed_without_a_warning(tmp_path, caplog):
    out = tmp_path / "run"
    complete_checkpoint(out / CHECKPOINT_DIR / "checkpoint-5", 5)
    last = complete_checkpoint(out / CHECKPOINT_DIR / "checkpoint-10", 10)
    with caplog.at_level(logging.WARNING):
        assert check_output_dir(out, HybridTrainingConfig(output_dir=str(out)), resume=True) == last
    assert not caplog.records
