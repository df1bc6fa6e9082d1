"""Checkpoints of a training run: which one ``resume`` continues, and whether a save finished.

The trainer writes ``checkpoints/checkpoint-N`` every ``save_steps`` steps. A checkpoint whose save was cut off (no
weights, no ``trainer_state.json``, a temporary file inside) is skipped: the run resumes from the newest complete
one, with a warning. A fresh run refuses a folder that holds checkpoints, and a resumed one a different
configuration.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from .config import CONFIG_FILE, HybridTrainingConfig
from .trainer_arguments import CHECKPOINT_DIR

logger = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_DIR", "TEMPORARY_SUFFIXES", "TRAINER_STATE_FILE", "check_output_dir",
           "incomplete_checkpoint_reason"]

#: The trainer writes a checkpoint's weights, optimizer, scheduler and random states first and this file last, so a
#: readable one at the folder's own step means the save finished.
TRAINER_STATE_FILE = "trainer_state.json"
#: Names of files a writer keeps only until it renames them: one left inside a checkpoint means a save was cut off.
TEMPORARY_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".incomplete")


def incomplete_checkpoint_reason(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (a save cut off by a kill, a full disk), or None when complete."""
    files = [p for p in checkpoint.rglob("*") if p.is_file()]
    temporary = [p.name for p in files if p.name.endswith(TEMPORARY_SUFFIXES) or p.name.startswith(("tmp", ".tmp"))]
    if temporary:
        return f"temporary file {temporary[0]} left inside"
    if not any(p.suffix == ".safetensors" or (p.suffix == ".bin" and p.name.startswith("pytorch_model"))
               for p in files):
        return "no model weights"
    state_path = checkpoint / TRAINER_STATE_FILE
    if not state_path.is_file():
        return f"no {TRAINER_STATE_FILE}"
    try:
        step = json.loads(state_path.read_text(encoding="utf-8")).get("global_step")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return f"unreadable {TRAINER_STATE_FILE}"
    if step != int(checkpoint.name.split("-")[-1]):
        return f"{TRAINER_STATE_FILE} is at step {step}"
    return None


def _last_complete_checkpoint(out: Path, checkpoints: list[Path]) -> Path:
    """The newest complete checkpoint. The incomplete ones after it are deleted, with one warning: the trainer
    saves into the same folder names again, and a stale temporary file there would spoil the new save."""
    skipped = []
    for checkpoint in reversed(checkpoints):
        reason = incomplete_checkpoint_reason(checkpoint)
        if reason is None:
            break
        skipped.append(f"{checkpoint.name} ({reason})")
    else:
        raise FileNotFoundError(
            f"nothing to resume: no complete checkpoint in {out / CHECKPOINT_DIR} (incomplete: {', '.join(skipped)})"
        )
    if skipped:
        for stale in checkpoints[len(checkpoints) - len(skipped):]:
            shutil.rmtree(stale, ignore_errors=True)  # every DDP rank gets here; whichever comes first deletes
        if os.environ.get("RANK", "0") == "0":
            logger.warning("resuming from %s, the newest complete checkpoint; deleted the incomplete %s, left by an "
                           "interrupted save", checkpoint.name, ", ".join(reversed(skipped)))
    return checkpoint


def check_output_dir(out: Path, config: HybridTrainingConfig, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a fresh run): the newest complete one (incomplete ones after it
    are skipped and deleted, with a warning); refuses to mix runs in one folder."""
    checkpoints = sorted(
        (p for p in (out / CHECKPOINT_DIR).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    if not resume:
        if checkpoints:
            raise FileExistsError(
                f"{out} holds checkpoints of an earlier run: resume it (--resume) or choose another output folder"
            )
        return None
    if not checkpoints:
        raise FileNotFoundError(f"nothing to resume: no checkpoint in {out / CHECKPOINT_DIR}")
    saved_path = out / CONFIG_FILE
    if saved_path.is_file():
        differences = HybridTrainingConfig.load(saved_path).differences(config)
        # The memory budget may change between runs: it picks how a step is computed, not what it computes.
        differences.pop("max_memory_gb", None)
        if differences:
            listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in differences.items())
            raise ValueError(f"cannot resume {out} with a different configuration ({listed})")
    return _last_complete_checkpoint(out, checkpoints)

