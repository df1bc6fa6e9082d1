"""Choose the distillation settings on the training collection's held-out articles, never on the evaluation one.

Every candidate setting trains on the training collection (default MLQA-R) with the trainer's held-out split by
article (``eval_fraction``, drawn with the training seed), and is scored by retrieval on the questions of those
held-out articles against the full candidate pools of that collection (mono / cross / multi mAP, rank distance),
beside the untrained base model. The zero-shot evaluation collection is not touched.

    python benchmarks/distillation_selection.py --out benchmarks/results/distillation/selection
    python benchmarks/distillation_selection.py --out ... --only mean,mean+base     # some candidates
    python benchmarks/distillation_selection.py --train lareqa/xquad-r --out ... # for the reverse direction

Each candidate's model and result are kept under ``--out`` and read back when the script runs again (so an
interrupted selection resumes); the table is ``selection.csv`` / ``selection.md`` with ``selection.png``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd

from pyterrier_hybrid.datasets import lareqa_collection
from pyterrier_hybrid.evaluation import evaluate_lareqa
from pyterrier_hybrid.evaluation.runner import LAReQAEvaluationConfig
from pyterrier_hybrid.evaluation.subsets import TopicSubset
from pyterrier_hybrid.models import interpolate_weights
from pyterrier_hybrid.provenance import git_facts, versions
from pyterrier_hybrid.retrieval.systems import SystemOptions, SystemSpec, build_factory
from pyterrier_hybrid.training import HybridTrainingConfig, train
from pyterrier_hybrid.training.data import load_training_data, split_by_article
from pyterrier_hybrid.training.recipes import DISTILL_CPU_BUDGET

COMMON = DISTILL_CPU_BUDGET  # the budget every candidate shares

#: Candidates: name -> changes to COMMON. Contrastive candidates alternate a contrastive and a distillation batch,
#: so they get twice the steps (the same number of distillation batches).
CANDIDATES: dict[str, dict] = {
    "mean": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean"),
    "english": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="english"),
    "mean+base": dict(contrastive=False, distill_parallel_weight=1.0, distill_base_weight=0.5, distill_target="mean"),
    "hybrid+mean+base": dict(alpha=0.5, max_steps=120, distill_parallel_weight=1.0, distill_base_weight=0.5,
                             distill_target="mean"),
    # More movement away from the base within the same recipe: 4, 10 and 25 times the learning rate, or four times the
    # steps.
    "mean-lr8e-5": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean", learning_rate=8e-5),
    "mean-240steps": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean", max_steps=240),
    "mean-lr2e-4": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean", learning_rate=2e-4),
    "mean-lr5e-4": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean", learning_rate=5e-4),
    # Pooled multi-positive batches (whole groups of every language, 4 groups of MLQA-R's 7 languages: 8 groups do
    # not fit in memory without a cached loss) in turn with the group-mean distillation batches (28 rows as well).
    "pooled+mean-lr8e-5": dict(batching="pooled", batch_size=28, max_steps=120, distill_parallel_weight=1.0,
                               distill_target="mean", learning_rate=8e-5),
    # The same with 16 groups per pooled batch (112 rows, 15 other groups' sentences as negatives), which fits with
    # the cached multi-positive loss, at the chosen recipe's learning rate.
    "pooled112+mean-lr2e-4": dict(batching="pooled", batch_size=112, max_steps=120, distill_parallel_weight=1.0,
                                  distill_target="mean", learning_rate=2e-4),
    # Fewer trained weights: the lowest 3 or 6 transformer layers kept as the base has them (as well as the word
    # embeddings), so that what they know cannot be spent.
    "mean-lr2e-4-frozen3": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean",
                                learning_rate=2e-4, freeze_layers=3),
    "mean-lr2e-4-frozen6": dict(contrastive=False, distill_parallel_weight=1.0, distill_target="mean",
                                learning_rate=2e-4, freeze_layers=6),
}
#: Candidates made without training (WiSE-FT): a trained candidate's weights interpolated with the untrained base's,
#: name -> (trained candidate, its weight). Listed after the candidate they come from.
INTERPOLATED: dict[str, tuple[str, float]] = {
    "mean-lr2e-4-x0.5": ("mean-lr2e-4", 0.5),
    "mean-lr2e-4-x0.75": ("mean-lr2e-4", 0.75),
}

MEASURES = (("monolingual", "mAP"), ("cross-lingual", "mAP"), ("multilingual", "mAP"),
            ("multilingual", "RankDistance"))


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default=None, help="comma-separated candidate names (default: all)")
    parser.add_argument("--train", default=COMMON.train,
                        help="training collection whose held-out articles score the candidates "
                             f"(default: {COMMON.train})")
    args = parser.parse_args(argv)
    common = dataclasses.replace(COMMON, train=args.train)
    known = [*CANDIDATES, *INTERPOLATED]
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
            model, config = "default", None
        elif name in INTERPOLATED:
            source, weight = INTERPOLATED[name]
            model = str(args.out / name / "model")
            interpolate_weights("default", args.out / source / "model", weight).save(model)
        else:
            config = dataclasses.replace(common, output_dir=str(args.out / name / "model"), **CANDIDATES[name])
            model = str(train(config))
        train_s = time.perf_counter() - started
        row = {"candidate": name, **score(model, name, subset, common.candidate_text),
               "train_s": round(train_s, 1), "total_s": round(time.perf_counter() - started, 1),
               "settings": CANDIDATES.get(name) or {"interpolated": INTERPOLATED.get(name)},
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
    table.to_csv(args.out / "selection.csv", index=False)
    (args.out / "selection.md").write_text(
        f"# Distillation settings on held-out {common.train} articles ({len(articles)} articles, "
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
    maps = table.set_index("candidate")[[f"{s} mAP" for s in ("monolingual", "cross-lingual", "multilingual")]]
    maps.columns = ["mono", "cross", "multi"]
    maps.plot.bar(ax=axes[0], rot=20, ylabel="mAP (held-out articles)")
    table.set_index("candidate")["multilingual RankDistance"].plot.bar(ax=axes[1], rot=20, ylabel="rank distance")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
