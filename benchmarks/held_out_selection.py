"""Choose training settings on the training collection's held-out articles, never on the evaluation one.

Every candidate setting trains on the training collection (default MLQA-R) with the trainer's held-out split by
article (``eval_fraction``, drawn with the training seed), and is scored by retrieval on the questions of those
held-out articles against the full candidate pools of that collection (mono / cross / multi mAP, rank distance),
beside the untrained base model. The zero-shot evaluation collection is not touched. ``distillation_selection.py``
and ``trainable_weights_selection.py`` each name their candidates and call :func:`main` here.

Each candidate's model and result are kept under ``--out`` and read back when the script runs again (so an
interrupted selection resumes, and an ``--only`` run adds its rows to the folder's table); the table is
``selection.csv`` / ``selection.md`` with ``selection.png``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from pyterrier_hybrid.datasets import lareqa_collection
from pyterrier_hybrid.evaluation import evaluate_lareqa
from pyterrier_hybrid.evaluation.runner import LAReQAEvaluationConfig
from pyterrier_hybrid.evaluation.subsets import TopicSubset
from pyterrier_hybrid.models import interpolate_weights
from pyterrier_hybrid.precision import native_bf16_available
from pyterrier_hybrid.provenance import git_facts, versions
from pyterrier_hybrid.retrieval.system_specs import SystemOptions, SystemSpec, build_factory
from pyterrier_hybrid.training import HybridTrainingConfig, train
from pyterrier_hybrid.training.sources.data import load_training_data, split_by_article

MEASURES = (("monolingual", "mAP"), ("cross-lingual", "mAP"), ("multilingual", "mAP"),
            ("multilingual", "RankDistance"))
MAPS = [f"{setting} {measure}" for setting, measure in MEASURES if measure == "mAP"]


@dataclass(frozen=True)
class Selection:
    """What a selection compares: the budget every candidate shares and each candidate's changes to it."""

    title: str
    common: HybridTrainingConfig
    #: name -> changes to ``common``
    candidates: dict[str, dict]
    #: candidates made without training (WiSE-FT): name -> (trained candidate, its weight against the base's)
    interpolated: dict[str, tuple[str, float]] = field(default_factory=dict)


def held_out_subset(config: HybridTrainingConfig):
    """The questions of the articles the trainer holds out for ``config`` (its own split, same seed)."""
    data = load_training_data(config.train, config.train_langs, config.hard_negatives, config.seed)
    _, held_out = split_by_article(data, config.eval_fraction, config.seed)
    articles = sorted({e.article for e in held_out.examples})
    collection = lareqa_collection(config.train.removeprefix("lareqa/"))
    return TopicSubset.of_articles(collection, articles), articles


def score(model: str, name: str, subset, candidate_text: str) -> dict:
    factory = build_factory(SystemSpec(name, model), SystemOptions(candidate_text=candidate_text, verbose=False))
    result = evaluate_lareqa(factory, subset, system=name,
                             config=LAReQAEvaluationConfig(per_query=False, cross_check=False))
    values = result.summary_dict()
    return {f"{setting} {measure}": values[setting][measure] for setting, measure in MEASURES}


def main(selection: Selection, doc: str, argv=None) -> int:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default=None, help="comma-separated candidate names (default: all)")
    parser.add_argument("--train", default=selection.common.train,
                        help="training collection whose held-out articles score the candidates "
                             f"(default: {selection.common.train})")
    args = parser.parse_args(argv)
    common = dataclasses.replace(selection.common, train=args.train)
    known = [*selection.candidates, *selection.interpolated]
    names = args.only.split(",") if args.only else known
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown candidate(s) {', '.join(unknown)}; known: {', '.join(known)}")
    args.out.mkdir(parents=True, exist_ok=True)
    subset, articles = held_out_subset(common)
    for name in ["base"] + names:
        result_path = args.out / name / "result.json"
        if result_path.is_file():
            continue
        started = time.perf_counter()
        if name == "base":
            model = "default"
        elif name in selection.interpolated:
            source, weight = selection.interpolated[name]
            model = str(args.out / name / "model")
            interpolate_weights("default", args.out / source / "model", weight).save(model)
        else:
            config = dataclasses.replace(common, output_dir=str(args.out / name / "model"),
                                         **selection.candidates[name])
            model = str(train(config))
        train_s = time.perf_counter() - started
        row = {"candidate": name, **score(model, name, subset, common.candidate_text),
               "train_s": round(train_s, 1), "total_s": round(time.perf_counter() - started, 1),
               "settings": (selection.candidates[name] if name in selection.candidates
                            else {"interpolated": selection.interpolated.get(name)}),
               # bf16 autocast in training and encoding where the processor runs it natively, else float32
               "native_bf16": native_bf16_available(torch.device("cpu")),
               "held_out_articles": len(articles),
               "questions": len(subset.qids)}
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps({**row, **git_facts(), "versions": versions()}, indent=2) + "\n")
        print(json.dumps(row), flush=True)
    # The table shows every candidate scored in this folder so far, so that an --only run adds rows instead of
    # replacing the table with its own subset.
    results = [args.out / name / "result.json" for name in ["base", *known]]
    rows = [json.loads(path.read_text()) for path in results if path.is_file()]
    table = pd.DataFrame(rows)[["candidate", *(f"{s} {m}" for s, m in MEASURES), "train_s", "questions"]]
    table.insert(len(MEASURES) + 1, "mean mAP", table[MAPS].mean(axis=1))
    table.to_csv(args.out / "selection.csv", index=False)
    (args.out / "selection.md").write_text(
        f"# {selection.title} on held-out {common.train} articles ({len(articles)} articles, "
        f"{len(subset.qids)} questions, full candidate pools)\n\n" + table.to_markdown(index=False, floatfmt=".4f")
        + "\n", encoding="utf-8")
    plot(table, args.out / "selection.png")
    print(table.to_markdown(index=False, floatfmt=".4f"))
    return 0


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    maps = table.set_index("candidate")[MAPS]
    maps.columns = ["mono", "cross", "multi"]
    maps.plot.bar(ax=axes[0], rot=20, ylabel="mAP (held-out articles)")
    table.set_index("candidate")["multilingual RankDistance"].plot.bar(ax=axes[1], rot=20, ylabel="rank distance")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
