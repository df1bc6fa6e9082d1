"""``pyterrier-hybrid evaluate``: score retrievers in every LAReQA setting (the package's main job).

For each ``--model`` it writes, under ``--out/<system>/``, the per-setting CSV, the summary (Markdown, CSV, JSON)
and the mAP heatmap (query language x document language); with several models also ``comparison.md`` and the
comparison plots. Any other ir_datasets id with queries, docs and qrels is evaluated as one plain setting.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

LAREQA_PREFIX = "lareqa/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", dest="models", metavar="[NAME=]MODEL",
                        help="bm25, default (the embedded multilingual-e5-small), a sentence-transformers folder or a "
                             "hub id; repeatable. Default: the embedded default model")
    parser.add_argument("--collection", default="lareqa/xquad-r",
                        help="lareqa/xquad-r, lareqa/mlqa-r, or any ir_datasets id with queries, docs and qrels")
    parser.add_argument("--langs", nargs="+", default=None, help="LAReQA languages to evaluate (default: all)")
    parser.add_argument("--candidate-text", choices=["sentence", "sentence+context"], default="sentence+context",
                        help="what is encoded (dense) or indexed (BM25) for a candidate; LAReQA uses sentence+context")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="auto: bfloat16 autocast where the processor supports it, else float32")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="results", help="output folder")


def run(args: argparse.Namespace) -> int:
    from ..retrieval.systems import SystemOptions, SystemSpec, build_factory
    from . import evaluate_irds, evaluate_lareqa
    from .plots import plot_rank_distance_bars, plot_setting_bars
    from .report import results_markdown

    specs = [SystemSpec.parse(m) for m in (args.models or ["default"])]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SystemExit(f"two systems share a name ({', '.join(names)}): name them with NAME=MODEL")
    options = SystemOptions(candidate_text=args.candidate_text, precision=args.precision, batch_size=args.batch_size)
    out = Path(args.out)
    collection = args.collection.removeprefix("irds:")
    results = []
    for spec in specs:
        started = time.perf_counter()
        factory = build_factory(spec, options)
        if collection.startswith(LAREQA_PREFIX) and collection.count("/") == 1:
            result = evaluate_lareqa(factory, collection[len(LAREQA_PREFIX):], args.langs, system=spec.name)
        else:
            if args.langs:
                raise SystemExit("--langs applies to the LAReQA collections (lareqa/xquad-r, lareqa/mlqa-r) only")
            result = evaluate_irds(factory, collection, system=spec.name)
        wall = time.perf_counter() - started
        paths = result.save(out / spec.name)
        (out / spec.name / "run.json").write_text(json.dumps({
            "system": spec.name, "model": spec.model, "collection": collection, "langs": args.langs,
            "candidate_text": args.candidate_text, "precision": args.precision, "wall_time_s": round(wall, 1),
        }, indent=2) + "\n")
        print(f"\n{spec.name}: {wall:.0f} s; results in {out / spec.name} ({', '.join(p.name for p in paths.values())})")
        results.append(result)
    table = results_markdown(results)
    print("\n" + table)
    if len(results) > 1:
        (out / "comparison.md").write_text(table + "\n", encoding="utf-8")
        if collection.startswith(LAREQA_PREFIX):
            plot_setting_bars(results, path=out / "settings_bars.png")
            plot_rank_distance_bars(results, path=out / "rank_distance_bars.png")
        print(f"comparison: {out / 'comparison.md'}; plots: {out}/*.png")
    return 0
