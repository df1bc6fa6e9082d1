"""The configuration of a hybrid batch training run (one dataclass, saved as JSON beside the trained model)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..datasets.candidates import CANDIDATE_TEXT_OPTIONS
from ..errors import UserError
from .trainer_arguments import trainer_argument_problems

__all__ = ["BATCHINGS", "CONFIG_FILE", "DISTILL_TARGETS", "LOSSES", "MIXTURES", "HybridTrainingConfig",
           "TrainingConfigError"]

CONFIG_FILE = "training_config.json"
LOSSES: tuple[str, ...] = ("mnrl", "cached-mnrl")
#: How contrastive batches are drawn: the hybrid sampler's pairs, or whole parallel groups with every translation of
#: the answer a positive (:mod:`pyterrier_hybrid.training.regimes.pooled`).
BATCHINGS: tuple[str, ...] = ("hybrid", "pooled")
MIXTURES: tuple[str, ...] = ("proportional", "round-robin")
#: Targets of the parallel distillation (see :mod:`pyterrier_hybrid.training.regimes.distillation`).
DISTILL_TARGETS: tuple[str, ...] = ("english", "mean")


class TrainingConfigError(UserError, ValueError):
    """A training configuration that cannot be run; the message lists every problem found."""


#: Fields added after models were trained and saved, with the value that reproduces how those older runs trained.
FIELDS_ABSENT_FROM_OLDER_RUNS = {"fast_dropout": False, "length_buckets": 1, "trainer_arguments": {}}


@dataclass(frozen=True)
class HybridTrainingConfig:
    """Everything that determines a training run. Defaults follow the paper (arXiv 2408.10536): AdamW, weight decay
    0.01, learning rate 3e-5, batch size 100, alpha 0.5; InfoNCE with in-batch negatives (sentence-transformers'
    MultipleNegativesRankingLoss, cosine similarity, scale 20).

    Attributes:
        base_model: model to start from, resolved by ``pyterrier_hybrid.models.resolve_model`` (None or "default":
            the embedded multilingual-e5-small; else a sentence-transformers folder or hub id).
        train: training source: "lareqa/mlqa-r", "lareqa/xquad-r", a .jsonl file or "irds:LANG=ID,..."
            (see :mod:`pyterrier_hybrid.training.sources.data`; irds: sources are streamed,
            :mod:`pyterrier_hybrid.training.sources.streaming`).
        train_langs: keep only examples whose query and passage languages are both in this list (None: all).
        alpha: probability that a batch is monolingual (else cross-lingual).
        batch_size: pairs per batch on each device (the in-batch negatives of each pair are the others).
        learning_rate, weight_decay: AdamW settings.
        warmup: linear warmup, a fraction of the total steps if < 1, else a number of steps (the paper does not
            state one; 0.1 is the usual sentence-transformers choice).
        max_steps: optimisation steps; when set it overrides ``epochs``.
        epochs: passes over the data; an epoch is (distinct parallel ids) / (batch size x devices) steps.
        seed: seeds model initialisation of new layers, dropout, the held-out split and the batch sampler.
        candidate_text: "sentence+context" (LAReQA's setting: sentence, a space, its paragraph) or "sentence".
        max_seq_length: token limit for training texts (None: the model's own).
        bf16: bfloat16 autocast (on CPU about 2-4x faster than float32 where supported). On a device without
            native bfloat16 matrix products (a CPU without AVX512-BF16 or AMX) the run trains in float32 instead,
            with a warning, and records ``bf16_autocast: false``.
        freeze_word_embeddings: do not train the word-embedding matrix (most of a multilingual model's parameters;
            freezing it saves optimizer memory and time, and keeps rare-language tokens as pre-trained).
        loss: "mnrl" (MultipleNegativesRankingLoss) or "cached-mnrl" (CachedMultipleNegativesRankingLoss, the same
            objective computed in mini-batches of ``mini_batch_size``, for batches larger than memory allows); with
            pooled batching, the multi-positive loss or its cached variant.
        mini_batch_size: mini-batch size of "cached-mnrl".
        fused_optimizer: AdamW as one fused kernel over all trainable weights (``torch.optim.AdamW(fused=True)``;
            the same update; on CPU torch's default is a loop of about ten operations per weight tensor). False
            gives the step of earlier versions (kept for benchmarks/training_speed.py).
        fast_dropout: on CPU, draw dropout masks 15 bits at a time and use the eager attention with that mask
            (:mod:`pyterrier_hybrid.training.speed.fast_dropout`: torch's CPU dropout mask was 40% of a training step).
            Same dropout rate and expectation, another random stream; False gives torch's dropout and attention.
            No effect on GPU.
        length_buckets: in training, run each column of a batch as this many groups of similar length, each padded
            to its own longest text (:mod:`pyterrier_hybrid.training.speed.length_buckets`; same loss and gradients up
            to rounding, a quarter to a half less padding on LAReQA); 1: one padded block per column, as
            sentence-transformers does.
        max_memory_gb: memory (GiB) the run may use; None: what this process holds plus 80% of the memory still
            available. Before the first step the trainer estimates the step's peak
            (:mod:`pyterrier_hybrid.training.speed.memory`); when "mnrl" would not fit it trains with "cached-mnrl"
            (same loss and gradients) in the largest mini-batch that fits, and says so; when nothing fits it stops.
        scale: inverse temperature of the softmax over cosine similarities.
        hard_negatives: add a hard negative passage to each pair (LAReQA: another sentence of the same paragraph).
        query_prompt / passage_prompt: prefixes of queries / passages; None takes the model's prompts "query" /
            "passage" (for models without them: "query: " / "passage: ", as in the paper).
        eval_fraction: fraction of articles held out for a validation loss (0: none).
        eval_steps: evaluate the validation loss every this many steps.
        max_eval_batches: at most this many validation batches per evaluation (None: about every held-out pair
            once). The held-out pairs grow with the square of the languages (XQuAD-R, 20% of the articles: 29,524
            pairs, 923 batches of 32, about 14 minutes on two CPU cores), so a cap keeps validation affordable; the
            capped batches are the first ones the seeded sampler draws, the same at every evaluation.
        early_stopping_patience: stop after this many evaluations without improvement of the validation loss and
            keep the best checkpoint (None: no early stopping).
        output_dir: where the model, its configuration, loss curve, model card and checkpoints/ are written.
        save_steps: checkpoint every this many steps (checkpoints/checkpoint-N, for --resume).
        save_total_limit: keep at most this many checkpoints (None: all).
        logging_steps: record the training loss every this many steps.
        gather_across_devices: with several devices, use the other devices' passages as negatives too.
        max_queries: keep the first this many judged queries of each ``irds:`` source (None: all).
        max_parallel_ids: keep the examples of this many parallel ids of each LAReQA or JSONL source, drawn with a
            fixed seed, every language of them (None: all): a quick run on a slice, whose distillation teacher also
            encodes that slice only.
        extra_train: more training sources, mixed with ``train`` (:mod:`pyterrier_hybrid.training.sources.mixture`):
            each batch comes from one source, the hybrid alpha applied within it.
        mixture: how a mixture picks the source of each batch: "proportional" (at random, in proportion to the
            sources' batches per epoch) or "round-robin" (in turn, until the smallest is exhausted).
        distill_base_weight: weight of the base distillation term: the cosine distance between the student's
            embedding of every text of a batch and the frozen starting model's embedding of it
            (:mod:`pyterrier_hybrid.training.regimes.distillation`); 0: none.
        distill_parallel_weight: weight of the parallel (cross-lingual) distillation batches: each translation of a
            question and of its answer passage is pulled towards one target of its parallel group; these batches
            take turns with the contrastive ones (one dataset per step); 0: none.
        distill_target: that target: "english" (the starting model's embedding of the group's English text, the
            group mean where there is none) or "mean" (the mean of its embeddings of every text of the group).
        freeze_layers: do not train the embeddings and the lowest this many transformer layers (0: train them
            all); the backward pass stops at the first trained layer, so a step is cheaper.
        lora_rank: train LoRA adapters of this rank instead of the model's weights (0: no adapters); they are
            merged into the weights before the model is saved (:mod:`pyterrier_hybrid.training.speed.trainable`).
        lora_alpha: LoRA's scaling numerator (the update is scaled by lora_alpha / lora_rank); None: twice the rank.
        lora_dropout: dropout on the adapters' input.
        lora_targets: names of the linear layers that get adapters ("query", "key", "value", "dense": every linear
            layer of a BERT-style encoder).
        batching: "hybrid" (pairs drawn by the hybrid sampler, alpha) or "pooled" (whole parallel groups per batch,
            every translation of the answer a positive of every translation of the question; alpha plays no part).
        contrastive: train the InfoNCE batches at all; False trains the parallel distillation batches alone (alpha
            and hard negatives then play no part).
        trainer_arguments: any other option of sentence-transformers' ``SentenceTransformerTrainingArguments``, by
            name (e.g. ``{"gradient_accumulation_steps": 2, "max_grad_norm": 0.5}``), given to the trainer as it is
            and saved with the configuration; those the fields above set, and those the run wires to its own parts
            (output folder, batch sampler, prompts, validation), are refused
            (:mod:`pyterrier_hybrid.training.trainer_arguments`).
    """

    base_model: str | None = None
    train: str = "lareqa/mlqa-r"
    train_langs: tuple[str, ...] | None = None
    alpha: float = 0.5
    batch_size: int = 100
    learning_rate: float = 3e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_steps: int | None = None
    epochs: float = 1.0
    seed: int = 42
    candidate_text: str = "sentence+context"
    max_seq_length: int | None = None
    bf16: bool = False
    freeze_word_embeddings: bool = False
    loss: str = "mnrl"
    mini_batch_size: int = 32
    fused_optimizer: bool = True
    fast_dropout: bool = True
    length_buckets: int = 4
    max_memory_gb: float | None = None
    scale: float = 20.0
    hard_negatives: bool = False
    query_prompt: str | None = None
    passage_prompt: str | None = None
    eval_fraction: float = 0.05
    eval_steps: int = 500
    max_eval_batches: int | None = None
    early_stopping_patience: int | None = None
    output_dir: str = "runs/hybrid"
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    gather_across_devices: bool = False
    max_queries: int | None = None
    max_parallel_ids: int | None = None
    extra_train: tuple[str, ...] = ()
    mixture: str = "proportional"
    distill_base_weight: float = 0.0
    distill_parallel_weight: float = 0.0
    distill_target: str = "mean"
    contrastive: bool = True
    freeze_layers: int = 0
    lora_rank: int = 0
    lora_alpha: float | None = None
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("query", "key", "value", "dense")
    batching: str = "hybrid"
    trainer_arguments: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def lora_scaling_alpha(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_rank

    @property
    def distills(self) -> bool:
        return self.distill_base_weight > 0 or self.distill_parallel_weight > 0

    def __post_init__(self):
        if self.train_langs is not None:
            object.__setattr__(self, "train_langs", tuple(self.train_langs))
        object.__setattr__(self, "extra_train", tuple(str(s) for s in self.extra_train))
        object.__setattr__(self, "lora_targets", tuple(str(s) for s in self.lora_targets))
        object.__setattr__(self, "output_dir", str(self.output_dir))
        object.__setattr__(self, "trainer_arguments", dict(self.trainer_arguments))  # a copy: never shared
        problems = (self._alpha_problems() + self._range_problems() + self._choice_problems()
                    + self._early_stopping_problems() + self._distillation_problems() + self._pooled_problems()
                    + self._lora_problems() + trainer_argument_problems(self.trainer_arguments))
        if problems:
            raise TrainingConfigError("invalid training configuration: " + "; ".join(problems))

    def _alpha_problems(self) -> list[str]:
        if not 0.0 <= self.alpha <= 1.0:
            return [f"alpha must be in [0, 1] (probability of a monolingual batch), got {self.alpha}"]
        if self.alpha < 1.0 and self.train_langs is not None and len(set(self.train_langs)) < 2:
            # Found here, before any data or model is loaded; the sampler would fail much later.
            return [
                f"alpha {self.alpha} < 1 asks for cross-lingual batches, which need query/passage pairs in two "
                f"different languages, but train_langs names only {', '.join(self.train_langs) or 'none'}: "
                "add a second language or set alpha to 1 (monolingual batches only)"
            ]
        return []

    def _range_problems(self) -> list[str]:
        problems = []
        for name in ("batch_size", "mini_batch_size", "eval_steps", "save_steps", "logging_steps", "length_buckets"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("max_steps", "max_eval_batches", "max_seq_length", "save_total_limit", "max_queries",
                     "max_parallel_ids"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer or None, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup < 0 or (self.warmup >= 1 and self.warmup != int(self.warmup)):
            problems.append(f"warmup must be a fraction in [0, 1) or a whole number of steps, got {self.warmup}")
        if self.max_memory_gb is not None and not self.max_memory_gb > 0:
            problems.append(f"max_memory_gb must be positive or None, got {self.max_memory_gb}")
        if self.epochs <= 0:
            problems.append(f"epochs must be positive, got {self.epochs}")
        if self.scale <= 0:
            problems.append(f"scale must be positive, got {self.scale}")
        if not 0.0 <= self.eval_fraction < 1.0:
            problems.append(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.freeze_layers < 0:
            problems.append(f"freeze_layers must be >= 0, got {self.freeze_layers}")
        return problems

    def _choice_problems(self) -> list[str]:
        choices = (("candidate_text", CANDIDATE_TEXT_OPTIONS), ("loss", LOSSES), ("mixture", MIXTURES))
        return [f"{name} must be one of {allowed}, got {getattr(self, name)!r}" for name, allowed in choices
                if getattr(self, name) not in allowed]

    def _early_stopping_problems(self) -> list[str]:
        if self.early_stopping_patience is None:
            return []
        problems = []
        if self.early_stopping_patience < 1:
            problems.append(f"early_stopping_patience must be a positive integer, got {self.early_stopping_patience}")
        if self.eval_fraction == 0.0:
            problems.append("early stopping needs a validation split: set eval_fraction > 0")
        if self.save_steps % self.eval_steps != 0:
            problems.append(
                f"early stopping keeps the best checkpoint, so save_steps ({self.save_steps}) must be a multiple "
                f"of eval_steps ({self.eval_steps})"
            )
        return problems

    def _lora_problems(self) -> list[str]:
        if self.lora_rank < 0:
            return [f"lora_rank must be >= 0 (0: no adapters), got {self.lora_rank}"]
        if self.lora_rank == 0:
            return []
        problems = []
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            problems.append(f"lora_alpha must be positive or None, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            problems.append(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.lora_targets:
            problems.append("lora_targets names no layer to adapt")
        if self.freeze_layers:
            problems.append("LoRA adapters and freeze_layers are two ways of training fewer weights: choose one")
        return problems

    def _pooled_problems(self) -> list[str]:
        if self.batching not in BATCHINGS:
            return [f"batching must be one of {BATCHINGS}, got {self.batching!r}"]
        if self.batching != "pooled":
            return []
        unsupported = [(self.hard_negatives, "hard negatives"),
                       (self.distill_base_weight > 0, "the base distillation term")]
        return [f"pooled batching does not support {what} yet" for flag, what in unsupported if flag]

    def _distillation_problems(self) -> list[str]:
        problems = []
        for name in ("distill_base_weight", "distill_parallel_weight"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0 (0 turns the term off), got {getattr(self, name)}")
        if self.distill_target not in DISTILL_TARGETS:
            problems.append(f"distill_target must be one of {DISTILL_TARGETS}, got {self.distill_target!r}")
        if not self.contrastive and not self.distill_parallel_weight > 0:
            problems.append("contrastive=False trains the parallel distillation batches alone: set "
                            "distill_parallel_weight > 0")
        return problems

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["train_langs"] is not None:
            data["train_langs"] = list(data["train_langs"])
        data["extra_train"] = list(data["extra_train"])
        data["lora_targets"] = list(data["lora_targets"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HybridTrainingConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingConfigError(f"unknown training configuration field(s): {', '.join(unknown)}")
        # A configuration saved before a field existed was trained the way the stock value listed there trains.
        absent = {name: value for name, value in FIELDS_ABSENT_FROM_OLDER_RUNS.items() if name not in data}
        return cls(**{**absent, **data})

    def save(self, path: str | Path, **extra: Any) -> None:
        """Write the configuration (and ``extra`` facts of the run, under "run") as JSON."""
        payload = {"config": self.to_dict(), **({"run": extra} if extra else {})}
        Path(path).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> HybridTrainingConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8"))["config"])

    def differences(self, other: HybridTrainingConfig) -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: name -> (self's, other's)."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}
