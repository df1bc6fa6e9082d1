"""Hybrid batch training of a sentence-transformers bi-encoder (arXiv 2408.10536).

``train(config)`` fine-tunes ``config.base_model`` on parallel examples with InfoNCE over in-batch negatives
(MultipleNegativesRankingLoss, or its cached variant for large batches), batches drawn by
:class:`~pyterrier_hybrid.training.sampler.HybridBatchSampler`, and writes to ``config.output_dir``:

- the trained model, a normal sentence-transformers folder (``SentenceTransformer(output_dir)`` loads it, prompts
  included);
- ``training_config.json``: the full configuration, the seed and facts of the run (resolved base model, example
  counts, steps, versions);
- ``loss_curve.csv`` / ``loss_curve.png``: training (and validation) loss by step;
- ``README.md``: a short model card;
- ``checkpoints/checkpoint-N``: checkpoints every ``save_steps`` steps; ``train(config, resume=True)`` continues
  the last one and reaches the same weights as an uninterrupted run (the batches are a function of seed, epoch and
  step, and the trainer restores the optimizer, scheduler and random states). A checkpoint whose save was cut off
  (no weights, no ``trainer_state.json``, a temporary file inside) is skipped: the run resumes from the newest
  complete one, with a warning.

The texts given to the trainer are raw; the prompts ("query: " / "passage: ") are added once, by the trainer's data
collator, through the ``prompts`` training argument.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..provenance import versions
from . import memory
from .config import CONFIG_FILE, HybridTrainingConfig, TrainingConfigError
from .data import TrainingData, candidate_text, load_training_data, split_by_article
from .memory import EncoderShape, MemoryPlan, plan_batch_memory
from .mixture import MixtureError, TrainingSources, text_sample, uses_training_sources
from .trainable import (
    add_lora_adapter,
    encoder_layer_count,
    freeze_lower_layers,
    freeze_word_embeddings,
    lora_resuming_trainer,
    merge_lora_adapter,
    uses_lora,
)

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from .sampler import ParallelRows

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_DIR",
    "DEFAULT_PASSAGE_PROMPT",
    "DEFAULT_QUERY_PROMPT",
    "LOSS_CURVE_CSV",
    "LOSS_CURVE_PNG",
    "PreparedTraining",
    "build_training_dataset",
    "freeze_lower_layers",
    "freeze_word_embeddings",
    "plan_memory",
    "prepare_training",
    "train",
    "training_prompts",
]

CHECKPOINT_DIR = "checkpoints"
LOSS_CURVE_CSV = "loss_curve.csv"
LOSS_CURVE_PNG = "loss_curve.png"
DEFAULT_QUERY_PROMPT = "query: "
DEFAULT_PASSAGE_PROMPT = "passage: "
#: The validation losses of a run with several datasets (see distillation_plan), read as its validation loss.
MULTI_DATASET_EVAL_LOSSES = ("eval_pairs_loss", "eval_parallel_loss")
#: The libraries whose versions a training record lists (besides Python and this package).
TRAINING_PACKAGES = ("sentence-transformers", "transformers", "torch", "accelerate")


# --- pieces ---------------------------------------------------------------------------------------------------------


def training_prompts(model: SentenceTransformer, config: HybridTrainingConfig) -> tuple[str, str]:
    """(query prompt, passage prompt): the configured ones, else the model's "query" / "passage" prompts, else the
    paper's "query: " / "passage: "."""
    prompts = getattr(model, "prompts", None) or {}
    query = config.query_prompt if config.query_prompt is not None else prompts.get("query", DEFAULT_QUERY_PROMPT)
    passage = config.passage_prompt
    if passage is None:
        passage = prompts.get("passage", prompts.get("document", DEFAULT_PASSAGE_PROMPT))
    return query, passage


def build_training_dataset(
    data: TrainingData, candidate_text_mode: str, prompts: tuple[str, str] = ("", "")
) -> tuple[Dataset, ParallelRows]:
    """The dataset given to the trainer (columns anchor, positive[, negative]: raw texts, one row per example) and
    the sampler's per-row metadata.

    Raises ValueError when a text already starts with its prompt (the collator adds the prompt, so it would be
    there twice) or is empty.
    """
    from datasets import Dataset

    from .sampler import ParallelRows

    if len(data) == 0:
        raise ValueError("no training examples")
    query_prompt, passage_prompt = prompts
    anchors = [e.query for e in data.examples]
    positives = [candidate_text(e.passage_sentence, e.passage_context, candidate_text_mode) for e in data.examples]
    negatives = None
    if data.negatives is not None:
        negatives = [candidate_text(n.sentence, n.context, candidate_text_mode) for n in data.negatives]
    for column, texts, prompt in (("query", anchors, query_prompt), ("passage", positives, passage_prompt)):
        for example, text in zip(data.examples, texts):
            if not text.strip():
                raise ValueError(f"empty {column} text (parallel id {example.parallel_id!r}, {example.query_lang}-"
                                 f"{example.passage_lang})")
            if prompt and text.startswith(prompt):
                raise ValueError(
                    f"the {column} text of parallel id {example.parallel_id!r} already starts with the prompt "
                    f"{prompt!r}, which training adds: remove it from the data or set the {column} prompt to ''"
                )
    columns = {"anchor": anchors, "positive": positives}
    if negatives is not None:
        columns["negative"] = negatives
    rows = ParallelRows.from_examples(data.examples, positives, negatives)
    return Dataset.from_dict(columns), rows


def plan_memory(
    model: SentenceTransformer, config: HybridTrainingConfig, dataset: Dataset, column_prompts: dict[str, str]
) -> MemoryPlan:
    """The loss and mini-batch this run trains with (see :mod:`pyterrier_hybrid.training.memory`): the memory model's
    estimate of a step's peak for ``config`` against ``config.max_memory_gb`` or the memory available."""
    import torch

    texts = text_sample(dataset, seed=config.seed)  # a streamed dataset's texts are read for a sample only
    columns = [c for c in ("anchor", "positive", "negative") if c in texts]
    lengths = memory.padded_lengths(model, [texts[c] for c in columns], [column_prompts.get(c, "") for c in columns],
                                    seed=config.seed)
    if torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        resident = torch.cuda.memory_allocated()
        budget = (config.max_memory_gb * memory.GIB if config.max_memory_gb is not None
                  else resident + memory.SAFETY_FRACTION * free)
        source = "--max-memory-gb" if config.max_memory_gb is not None else "GPU memory free"
    else:
        resident = memory.current_resident_bytes()
        budget, source = memory.memory_budget_bytes(config.max_memory_gb, resident)
    return plan_batch_memory(
        EncoderShape.of(model), lengths, config.batch_size, bf16=config.bf16, loss=config.loss,
        mini_batch_size=config.mini_batch_size, resident_bytes=resident, budget_bytes=budget, budget_source=source,
    )


def _eval_batch_size(dataset, rows: ParallelRows, config: HybridTrainingConfig, world_size: int) -> int:
    """The largest per-device batch (at most the training one) that fills the fixed validation batches.

    An upper bound comes from counting, per batch type and language, the distinct parallel ids, queries and
    passages; several questions can share one answer sentence, so the bound may still be too large for the
    sampler's rules (distinct ids, queries and passages in a batch). The validation batches are fixed (the eval
    sampler stays at epoch 0 with the training seed), so trying them is exact: lower the size until they draw.
    """
    from .sampler import HybridBatchSampler, SamplerDataError

    mono = rows.query_langs == rows.passage_langs
    positives = np.array([keys[0] for keys in rows.passage_keys])
    pools = []
    if config.alpha > 0:
        pools += [mono & (rows.query_langs == lang) for lang in set(rows.query_langs[mono].tolist())]
    if config.alpha < 1:
        pools.append(~mono)
    limits = [
        min(len(np.unique(rows.parallel_ids[p])), len(np.unique(rows.query_keys[p])), len(np.unique(positives[p])))
        for p in pools
    ]
    size = min(config.batch_size, (min(limits) if limits else 0) // world_size)
    while size >= 2:
        sampler = HybridBatchSampler(
            dataset, size, seed=config.seed, rows=rows, alpha=config.alpha, num_replicas=world_size,
            batches_per_epoch=_eval_batches(rows, size, world_size, config.max_eval_batches),
        )
        try:
            for _ in sampler:
                pass
            return size
        except SamplerDataError:
            size -= 1
    raise ValueError(
        f"the held-out split ({config.eval_fraction:.0%} of the articles) is too small for validation batches "
        f"of 2 or more pairs for every batch type and language: raise eval_fraction or set it to 0"
    )


def _eval_batches(rows: ParallelRows, batch_size: int, world_size: int, cap: int | None = None) -> int:
    """Validation batches per evaluation: about every held-out row once, or ``cap`` if that is fewer."""
    batches = max(1, math.ceil(len(rows) / (batch_size * world_size)))
    return batches if cap is None else min(batches, cap)


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


def _check_output_dir(out: Path, config: HybridTrainingConfig, resume: bool) -> Path | None:
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
        # The memory budget may change between sessions: it picks how a step is computed, not what it computes.
        differences.pop("max_memory_gb", None)
        if differences:
            listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in differences.items())
            raise ValueError(f"cannot resume {out} with a different configuration ({listed})")
    return _last_complete_checkpoint(out, checkpoints)


def _check_layer_count(base_model: str, config: HybridTrainingConfig) -> None:
    """Refuse ``freeze_layers`` beyond the model's depth from its configuration, before the weights are loaded."""
    if not config.freeze_layers:
        return
    layers = encoder_layer_count(base_model)
    if layers is not None and config.freeze_layers > layers:
        raise TrainingConfigError(f"freeze_layers is {config.freeze_layers} but {base_model} has {layers} "
                                  "transformer layers")


def _callbacks(factory, train_dataset, config: HybridTrainingConfig) -> list:
    from transformers import EarlyStoppingCallback, ProgressCallback, TrainerCallback

    class LossProgressCallback(ProgressCallback):
        """The progress bar (steps/s from tqdm) with the latest training loss and learning rate as postfix,
        instead of one printed dict per logging step."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or self.training_bar is None or not logs:
                return
            if "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs.get('learning_rate', 0):.2e}")
            elif "eval_loss" in logs:
                self.training_bar.write(f"step {state.global_step}: validation loss {logs['eval_loss']:.4f}")

    class SamplerEpochCallback(TrainerCallback):
        """Hands the epoch to the hybrid sampler at every epoch start. The trainer does it too, except when resuming
        under distributed training, where the sampler sits under two wrappers it does not look through."""

        def on_epoch_begin(self, args, state, control, **kwargs):
            sampler = factory.sampler_for(train_dataset)
            if sampler is not None:
                sampler.set_epoch(int(state.epoch or 0))

    callbacks: list = [SamplerEpochCallback()]
    callbacks.append(LossProgressCallback())
    if config.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    return callbacks


# --- outputs ----------------------------------------------------------------------------------------------------------


def _loss_rows(log_history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by_step: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        if "loss" not in entry and not ({"eval_loss", *MULTI_DATASET_EVAL_LOSSES} & set(entry)):
            continue
        row = by_step.setdefault(int(entry["step"]), {"step": int(entry["step"])})
        row["epoch"] = entry.get("epoch", row.get("epoch"))
        entry = {**entry, **{"eval_loss": v for k, v in entry.items() if k in MULTI_DATASET_EVAL_LOSSES}}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
            if key in entry:
                row[key] = entry[key]
    return [by_step[s] for s in sorted(by_step)]


def write_loss_curve(log_history: Sequence[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """``loss_curve.csv`` (step, epoch, loss, eval_loss, learning_rate, grad_norm) and ``loss_curve.png``."""
    rows = _loss_rows(log_history)
    fields = ["step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm"]
    with (out / LOSS_CURVE_CSV).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})

    import matplotlib

    matplotlib.use("Agg")  # no display needed, safe in threads and on servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    train_points = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    eval_points = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    if train_points:
        ax.plot(*zip(*train_points), label="training loss")
    if eval_points:
        ax.plot(*zip(*eval_points), marker="o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("InfoNCE loss")
    ax.set_title("Hybrid batch training")
    if train_points or eval_points:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / LOSS_CURVE_PNG, dpi=100)
    plt.close(fig)
    return rows


def write_model_card(out: Path, config: HybridTrainingConfig, run: dict[str, Any]) -> None:
    last = run.get("final_training_loss")
    best_eval = run.get("best_validation_loss")
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sentence-transformers, cross-lingual-retrieval, pyterrier-hybrid]",
        f"language: [{', '.join(run['languages'])}]",
        "---",
        "",
        "# Hybrid-batch-trained multilingual bi-encoder",
        "",
        f"Fine-tuned from `{run['base_model']}` by `pyterrier-hybrid train` with hybrid batch training "
        "(arXiv 2408.10536): each batch is monolingual (one language) with probability "
        f"alpha={config.alpha:g}, else cross-lingual, and never holds two translations of one question.",
        "",
        f"- training data: `{config.train}`, {run['train_examples']} examples ({run['train_parallel_ids']} parallel "
        f"ids), languages {', '.join(run['languages'])}; {run['eval_examples']} held-out examples",
        f"- loss: {config.loss} (InfoNCE, in-batch negatives{', hard negatives' if config.hard_negatives else ''}, "
        f"cosine x {config.scale:g}); batch {config.batch_size}; AdamW lr {config.learning_rate:g}, weight decay "
        f"{config.weight_decay:g}, warmup {config.warmup:g}; {run['global_steps']} steps; seed {config.seed}",
        f"- passages: {config.candidate_text}; prompts {run['query_prompt']!r} / {run['passage_prompt']!r}",
        f"- final training loss: {last:.4f}" if last is not None else "- final training loss: n/a",
    ]
    if best_eval is not None:
        lines.append(f"- best validation loss: {best_eval:.4f}")
    if config.distills:
        lines.append(
            f"- distillation from the frozen starting model (cosine distance): every text to its own embedding x "
            f"{config.distill_base_weight:g}; parallel batches x {config.distill_parallel_weight:g} towards the "
            f"group's {config.distill_target} target; contrastive batches: {'yes' if config.contrastive else 'no'}"
        )
    lines += [
        "",
        "Full configuration: `training_config.json`; loss by step: `loss_curve.csv` / `loss_curve.png`.",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "model = SentenceTransformer(PATH)",
        'queries = model.encode_query(["..."])      # adds the query prompt',
        'passages = model.encode_document(["..."])  # adds the passage prompt',
        "```",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


# --- the run ----------------------------------------------------------------------------------------------------------


@dataclass
class PreparedTraining:
    """A training run ready to start: the sentence-transformers trainer wired with the hybrid sampler, and what it
    was built from. ``run()`` trains and writes the outputs; the parts are exposed for inspection and tests."""

    config: HybridTrainingConfig
    trainer: Any  # SentenceTransformerTrainer
    sampler_factory: Any  # HybridBatchSamplerFactory
    data: TrainingData
    train_data: TrainingData
    eval_data: TrainingData
    train_dataset: Any  # datasets.Dataset
    eval_dataset: Any | None
    base_model: str
    prompts: tuple[str, str]
    checkpoint: Path | None
    world_size: int
    memory_plan: MemoryPlan
    #: undo the training-only changes of the model (fast dropout, length buckets) before it is saved
    restorers: tuple[Callable[[], None], ...] = ()

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def train_sampler(self):
        """The hybrid sampler of the training dataloader (built by the trainer when training starts)."""
        return self.sampler_factory.sampler_for(self.train_dataset)

    @property
    def steps_per_epoch(self) -> int:
        """Optimisation steps of one epoch (of every dataset in turn when the run trains several)."""
        return len(self.trainer.get_train_dataloader()) // self.world_size

    def run(self) -> Path:
        trainer, config, out = self.trainer, self.config, self.output_dir
        try:
            trainer.train(resume_from_checkpoint=str(self.checkpoint) if self.checkpoint is not None else None)
        finally:
            for restore in self.restorers:  # the saved model is the stock architecture
                restore()
        if uses_lora(config):  # the saved model is a plain one: adapters folded into the weights
            merge_lora_adapter(trainer.model)
        if trainer.is_world_process_zero():
            trainer.model.save(str(out))
            loss_rows = write_loss_curve(trainer.state.log_history, out)
            train_losses = [r["loss"] for r in loss_rows if "loss" in r]
            eval_losses = [r["eval_loss"] for r in loss_rows if "eval_loss" in r]
            run = {
                "status": "finished",
                "seed": config.seed,
                "base_model": self.base_model,
                "languages": list(self.data.languages),
                "train_examples": len(self.train_data),
                "train_parallel_ids": self.train_data.num_parallel_ids,
                "eval_examples": len(self.eval_data),
                "eval_batch_size": trainer.args.per_device_eval_batch_size if self.eval_dataset is not None else None,
                "world_size": self.world_size,
                "global_steps": trainer.state.global_step,
                "steps_per_epoch": self.steps_per_epoch,
                "resumed_from": str(self.checkpoint) if self.checkpoint is not None else None,
                "query_prompt": self.prompts[0],
                "passage_prompt": self.prompts[1],
                "final_training_loss": train_losses[-1] if train_losses else None,
                "best_validation_loss": min(eval_losses) if eval_losses else None,
                "best_checkpoint": trainer.state.best_model_checkpoint,
                "memory_plan": self.memory_plan.to_dict(),
                "versions": versions(TRAINING_PACKAGES),
            }
            config.save(out / CONFIG_FILE, **run)
            write_model_card(out, config, run)
        trainer.accelerator.wait_for_everyone()
        return out


def prepare_training(
    config: HybridTrainingConfig, *, resume: bool = False, callbacks: Sequence[Any] = ()
) -> PreparedTraining:
    """Load the data and the model and build the trainer for ``config`` (see :func:`train`)."""
    import torch
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from transformers import ProgressCallback

    from .distillation_plan import DistillationPlan
    from .fast_dropout import install_fast_dropout
    from .length_buckets import install_length_buckets
    from .pooled import MultiPositiveRankingLoss, PooledData
    from .sampler import HybridBatchSamplerFactory, ParallelRows, check_feasible

    out = Path(config.output_dir)
    checkpoint = _check_output_dir(out, config, resume)
    from pyterrier_hybrid.models import load_sentence_transformer, resolve_model  # the default is built here

    # The data first: a source that cannot fill the batches asked for fails before a model is built or loaded.
    # Streamed (irds:) sources and mixtures of sources go through TrainingSources (training/mixture.py).
    if uses_training_sources(config) and (config.distills or not config.contrastive or config.batching == "pooled"):
        raise TrainingConfigError(
            "distillation and pooled batches train on the parallel groups of a LAReQA or JSONL source; a streamed "
            "irds: source or a mixture of sources has none: drop those options or train on lareqa/... or a .jsonl "
            "file")
    sources = TrainingSources.load(config) if uses_training_sources(config) else None
    if sources is not None:
        data, train_data, eval_data = sources.summaries()
    else:
        data = load_training_data(config.train, config.train_langs, config.hard_negatives, config.seed)
        train_data, eval_data = split_by_article(data, config.eval_fraction, config.seed)
        if config.contrastive and config.batching == "hybrid":
            check_feasible(ParallelRows.from_examples(train_data.examples), config.alpha, config.batch_size)
    pooled = None
    if config.batching == "pooled":  # no parallel groups, or a group larger than a batch: fails here
        pooled = PooledData.of(train_data, eval_data, config.candidate_text, config.batch_size)
    distillation = DistillationPlan.of(config, train_data, eval_data)  # no parallel groups: fails here

    base_model = resolve_model(config.base_model)
    _check_layer_count(base_model, config)

    model = load_sentence_transformer(base_model, device="cuda" if torch.cuda.is_available() else "cpu")
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
    prompts = training_prompts(model, config)
    query_prompt, passage_prompt = prompts

    if pooled is not None:
        train_dataset, train_rows = pooled.dataset(pooled.train_groups), None
    elif sources is None:
        train_dataset, train_rows = build_training_dataset(train_data, config.candidate_text, prompts)
    # The collator prepends these to the raw texts, once; the dataset texts carry no prompt (checked above).
    text_columns = sources.columns if sources is not None else train_dataset.column_names
    column_prompts = {
        column: prompt
        for column, prompt in (("anchor", query_prompt), ("positive", passage_prompt), ("negative", passage_prompt))
        if prompt and column in text_columns
    }

    has_eval = len(eval_data) > 0
    eval_dataset = eval_rows = None
    if pooled is not None and pooled.eval_groups is not None and config.contrastive:
        eval_dataset = pooled.dataset(pooled.eval_groups)
    elif has_eval and config.contrastive and sources is None and pooled is None:
        eval_dataset, eval_rows = build_training_dataset(eval_data, config.candidate_text, prompts)
    # The teacher is the model as loaded, so its embeddings are taken before any training-only change below.
    distill_datasets = distillation.build(model, prompts, train_dataset if sources is None else None, eval_dataset)
    train_dataset, eval_dataset = distill_datasets.train_dataset, distill_datasets.eval_dataset
    if uses_lora(config):  # after the teacher's embeddings: the teacher is the model without adapters
        trainable = add_lora_adapter(model, config)
        logger.info("LoRA rank %d on %s: %d trainable weights", config.lora_rank, ",".join(config.lora_targets),
                    trainable)
    evaluates = distill_datasets.has_eval if sources is None else has_eval
    restorers = []  # training-only changes of the model, undone before it is saved
    if config.fast_dropout and model.device.type == "cpu":
        restorers.append(install_fast_dropout(model))
    if config.length_buckets > 1:
        restorers.append(install_length_buckets(model, config.length_buckets))
    early_stopping = config.early_stopping_patience is not None
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / CHECKPOINT_DIR),
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        optim="adamw_torch_fused" if config.fused_optimizer else "adamw_torch",
        lr_scheduler_type="linear",
        warmup_steps=config.warmup,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        num_train_epochs=config.epochs,
        seed=config.seed,
        bf16=config.bf16,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if evaluates else "no",
        eval_steps=config.eval_steps if evaluates else None,
        load_best_model_at_end=early_stopping,
        metric_for_best_model=distill_datasets.eval_metric if early_stopping else None,
        greater_is_better=False if early_stopping else None,
        prompts=column_prompts or None,
        report_to="none",
        disable_tqdm=False,
    )
    world_size = max(1, args.world_size)
    factory = HybridBatchSamplerFactory(alpha=config.alpha, num_replicas=world_size)
    if sources is not None:
        if sources.mixed and world_size > 1:
            # sentence-transformers' mixture samplers hand consecutive batches to different ranks, which would
            # split one source's global batch across sources.
            raise MixtureError("a mixture of training sources trains on one device only (several were given)")
        train_dataset, eval_dataset, eval_batch_size = sources.build(factory, prompts, world_size)
        if eval_dataset is not None:
            args.per_device_eval_batch_size = eval_batch_size
        if sources.mixed:
            args.multi_dataset_batch_sampler = sources.multi_dataset_batch_sampler()
    elif pooled is not None:
        pooled.register(factory, train_dataset, pooled.train_groups, world_size)
        if eval_dataset is not None:
            args.per_device_eval_batch_size = config.batch_size
            pooled.register(factory, eval_dataset, pooled.eval_groups, world_size,
                            batches_per_epoch=config.max_eval_batches)
        distill_datasets.register(factory, world_size, config.max_eval_batches, args)
    else:
        factory.register(train_dataset, train_rows)
        distill_datasets.register(factory, world_size, config.max_eval_batches, args)
    if eval_dataset is not None and sources is None and pooled is None:
        eval_batch_size = _eval_batch_size(eval_dataset, eval_rows, config, world_size)
        args.per_device_eval_batch_size = eval_batch_size
        # The same fixed validation batches at every evaluation (the eval sampler stays at epoch 0).
        eval_batches = _eval_batches(eval_rows, eval_batch_size, world_size, config.max_eval_batches)
        logger.info("validation: %d batches of %d pairs per evaluation (%d held-out pairs)",
                    eval_batches, eval_batch_size, len(eval_rows))
        factory.register(eval_dataset, eval_rows, batches_per_epoch=eval_batches)
    args.batch_sampler = factory

    if args.process_index == 0:
        out.mkdir(parents=True, exist_ok=True)

    memory_plan = plan_memory(model, config, train_dataset, column_prompts)
    if memory_plan.switched:
        logger.warning("memory: %s", memory_plan.reason)
    else:
        logger.info("memory: %s", memory_plan.reason)
    if args.process_index == 0 and checkpoint is None:
        config.save(out / CONFIG_FILE, status="started", seed=config.seed, base_model=base_model,
                    memory_plan=memory_plan.to_dict())

    if pooled is not None:
        if memory_plan.loss != "mnrl":
            raise TrainingConfigError(f"pooled batches of {config.batch_size} rows do not fit in memory and have no "
                                      "cached loss yet: lower the batch size")
        loss = MultiPositiveRankingLoss(model, scale=config.scale)
    else:
        loss = distill_datasets.contrastive_loss(
            model, memory_plan, scale=config.scale, gather_across_devices=config.gather_across_devices)
    trainer_train, trainer_eval, trainer_loss = distill_datasets.trainer_inputs(
        model, train_dataset, eval_dataset, loss, args, world_size)
    trainer_class = SentenceTransformerTrainer
    if uses_lora(config):
        trainer_class = lora_resuming_trainer(trainer_class)
    trainer = trainer_class(
        model=model, args=args, train_dataset=trainer_train, eval_dataset=trainer_eval, loss=trainer_loss
    )
    trainer.remove_callback(ProgressCallback)
    for callback in _callbacks(factory, train_dataset, config) + list(callbacks):
        trainer.add_callback(callback)
    return PreparedTraining(
        config=config,
        trainer=trainer,
        sampler_factory=factory,
        data=data,
        train_data=train_data,
        eval_data=eval_data,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        base_model=base_model,
        prompts=prompts,
        checkpoint=checkpoint,
        world_size=world_size,
        memory_plan=memory_plan,
        restorers=tuple(restorers),
    )


def train(config: HybridTrainingConfig, *, resume: bool = False, callbacks: Sequence[Any] = ()) -> Path:
    """Train a bi-encoder as ``config`` says and return the output folder (see the module docstring).

    ``resume`` continues from the last checkpoint in ``output_dir/checkpoints`` (the configuration must be the same);
    ``callbacks`` are extra ``transformers.TrainerCallback`` objects.
    """
    return prepare_training(config, resume=resume, callbacks=callbacks).run()
